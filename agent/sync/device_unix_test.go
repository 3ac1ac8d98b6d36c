//go:build !windows

package sync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeviceFileMode(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	if _, err := LoadOrEnroll(context.Background(), dir, h.p.BaseURL, h.p.Tenant, h.secret, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "device.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	for _, mode := range []os.FileMode{0o644, 0o604, 0o640} {
		os.Chmod(path, mode)
		_, err := LoadOrEnroll(context.Background(), dir, h.p.BaseURL, h.p.Tenant, h.secret, nil)
		if err == nil || !strings.Contains(err.Error(), "readable or writable by other users") {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadOrEnroll(context.Background(), dir, h.p.BaseURL, h.p.Tenant, "", nil); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}
