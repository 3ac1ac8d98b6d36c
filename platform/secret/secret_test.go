package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal([]byte("private key"), "signing-key/acme")
	if bytes.Contains(sealed, []byte("private key")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if pt, err := s.Open(sealed, "signing-key/acme"); err != nil || string(pt) != "private key" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := s.Open(sealed, "signing-key/other"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened for another purpose: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, "signing-key/acme"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a tampered value: %v", err)
	}
	if _, err := s.Open([]byte("short"), "x"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened garbage: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(s.Seal([]byte("x"), "p"), "p"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with another master key: %v", err)
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("accepted a short key")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("create: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Error("accepted a world-readable key file")
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Error("accepted a short key file")
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("NewToken: %q %q", a, b)
	}
	h := HashToken(a)
	if len(h) != 64 || !TokenMatches(a, h) || TokenMatches(b, h) || TokenMatches(a, h[:63]) {
		t.Fatal("TokenMatches")
	}
	for header, ok := range map[string]bool{"Bearer " + a: true, "bearer " + a: true, "  Bearer   " + a + " ": true,
		"Basic " + a: false, "Bearer": false, "Bearer ": false, a: false, "": false} {
		if got := BearerMatches(header, h); got != ok {
			t.Errorf("BearerMatches(%q) = %v", header, got)
		}
	}
}
