//go:build !windows

package sync

import (
	"fmt"
	"io/fs"
)

// checkPrivate refuses a file that anyone but its owner may read or
// write: it holds the device's private key.
func checkPrivate(fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("readable or writable by other users (mode %v): it holds the device key; chmod 600 it, or remove it to enrol again", perm)
	}
	return nil
}
