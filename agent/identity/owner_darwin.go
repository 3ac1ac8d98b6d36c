package identity

// macOS has no /proc, and the direct ways to a socket's owner need cgo
// (libproc's proc_pidfdinfo, walking every process's descriptors) or the
// undocumented, version-dependent record layouts of the
// net.inet.tcp.pcblist_n sysctl. lsof(8) ships with every macOS, does the
// libproc walk itself and prints a stable format: it is the simplest correct
// way. Its cost is a process start and a scan of every process's descriptors,
// some tens of milliseconds per lookup, paid once per connection (the cache
// absorbs repeated calls); lsofOwner narrows the scan to the client's port.

func init() {
	ownerID = lsofOwner("/usr/sbin/lsof")
}
