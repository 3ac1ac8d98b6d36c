package health

// syncDir does nothing on Windows: a directory cannot be opened for
// writing there, and NTFS journals renames itself.
func syncDir(dir string) error { return nil }
