//go:build windows

package session

import (
	"bytes"
	"fmt"
	"io/fs"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows file modes mean nothing and ProgramData is readable by every
// user, so the key file holds the key sealed with DPAPI for the service's
// account (LocalSystem): copied elsewhere, or read by another account, it
// does not open.

// dpapiEntropy ties the blob to this use, so that another program of the
// same account does not unseal it by accident.
var dpapiEntropy = []byte("vigie agent session store key v1")

func checkKeyFile(fs.FileInfo) error { return nil }

func protectKey(key []byte) ([]byte, error) {
	var out windows.DataBlob
	if err := windows.CryptProtectData(blob(key), nil, blob(dpapiEntropy), 0, nil, windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, fmt.Errorf("DPAPI CryptProtectData: %w", err)
	}
	return takeBlob(&out), nil
}

func unprotectKey(sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("empty")
	}
	var out windows.DataBlob
	if err := windows.CryptUnprotectData(blob(sealed), nil, blob(dpapiEntropy), 0, nil, windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, fmt.Errorf("DPAPI CryptUnprotectData (was it written by another account or machine?): %w", err)
	}
	return takeBlob(&out), nil
}

func blob(b []byte) *windows.DataBlob {
	if len(b) == 0 {
		return &windows.DataBlob{}
	}
	return &windows.DataBlob{Size: uint32(len(b)), Data: &b[0]}
}

// takeBlob copies a blob DPAPI allocated, and frees it.
func takeBlob(b *windows.DataBlob) []byte {
	if b.Data == nil {
		return nil
	}
	defer windows.LocalFree(windows.Handle(unsafe.Pointer(b.Data)))
	return bytes.Clone(unsafe.Slice(b.Data, b.Size))
}
