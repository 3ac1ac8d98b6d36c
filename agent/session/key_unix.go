//go:build unix

package session

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkKeyFile refuses a key file that anyone but the service's account
// could read or change.
func checkKeyFile(fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("other accounts can access it (mode %04o): make it 0600, owned by the agent service's account", perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by the agent service's account (uid %d)", st.Uid, os.Geteuid())
	}
	return nil
}

// protectKey and unprotectKey: on Unix the key is stored as is; the file's
// mode and owner protect it.
func protectKey(key []byte) ([]byte, error)    { return key, nil }
func unprotectKey(blob []byte) ([]byte, error) { return blob, nil }
