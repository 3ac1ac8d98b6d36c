//go:build !unix && !windows

package session

import (
	"fmt"
	"io/fs"
)

func checkKeyFile(fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("other accounts can access it (mode %04o): make it 0600", perm)
	}
	return nil
}

func protectKey(key []byte) ([]byte, error)    { return key, nil }
func unprotectKey(blob []byte) ([]byte, error) { return blob, nil }
