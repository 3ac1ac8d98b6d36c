// Package atomicfile writes a file so that a crash leaves the old content
// or the new, never half of one: the agent's tokens, device key, caches
// and saved OS settings all go through it.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write writes data to a temporary file next to path, with exactly perm
// (whatever the umask; where the OS supports modes), syncs it, renames it
// over path, and syncs the folder where the OS allows (best effort: the
// rename is what matters).
func Write(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync() // unsupported on Windows; fine
		d.Close()
	}
	return nil
}
