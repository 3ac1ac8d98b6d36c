// Package secret seals the platform's private material at rest (token
// signing keys, SAML SP keys) with AES-256-GCM under one master key, kept in
// a file readable only by the platform's account.
//
// It is not a key-management system: rotation of the master key is a
// re-encryption the operator runs, not something this package schedules.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// KeySize is the master key's length: 32 bytes (AES-256).
const KeySize = 32

// Sealer encrypts and decrypts with one master key.
type Sealer struct {
	aead cipher.AEAD
}

// ErrOpen means a sealed value did not decrypt: wrong master key, wrong
// purpose, or tampered data.
var ErrOpen = errors.New("secret: cannot open sealed value (wrong master key, or tampered)")

// New returns a Sealer for a 32-byte master key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: master key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// LoadOrCreateKey reads the master key file, creating it with a random key
// (mode 0600) when it does not exist. A file that is readable by others is
// refused: the key protects every tenant's signing keys.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secret: creating master key: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("secret: writing master key: %w", err)
		}
		return key, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("secret: reading master key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret: master key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: master key %s is %d bytes, want %d", path, len(key), KeySize)
	}
	return key, nil
}

// Seal encrypts plaintext for a purpose (for example "signing-key/acme"):
// a value sealed for one purpose does not open for another, so a row copied
// from one tenant to another is useless.
func (s *Sealer) Seal(plaintext []byte, purpose string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secret: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return s.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// Open decrypts a value sealed for purpose.
func (s *Sealer) Open(sealed []byte, purpose string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
