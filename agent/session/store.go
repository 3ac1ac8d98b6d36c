package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vigie/agent/internal/atomicfile"
)

// The store: one file per user under StateDir, named after the user ID,
// sealed with AES-256-GCM under the key in KeyFile. The additional data is
// the file format's magic and the user ID, so a file copied or renamed to
// another user's name does not open. Files are written whole (temporary
// file, fsync, rename); one that does not open is moved aside, its user
// signed out, and the reason logged.

const (
	fileSuffix = ".session"
	keySize    = 32 // AES-256
	maxFile    = 1 << 20
)

// fileMagic starts every session file: the format and its version.
var fileMagic = []byte("vigie-session\x00\x01")

// record is a session file's plaintext.
type record struct {
	User           string    `json:"user"`
	Issuer         string    `json:"issuer"` // PlatformURL/t/tenant the tokens are for
	AccessToken    string    `json:"access_token"`
	RefreshToken   string    `json:"refresh_token"`
	Issued         time.Time `json:"issued"`
	AccessExpires  time.Time `json:"access_expires"`
	SessionExpires time.Time `json:"session_expires"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"`
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session: key: %w", err)
	}
	return cipher.NewGCM(block)
}

func additionalData(userID string) []byte {
	return append(bytes.Clone(fileMagic), userID...)
}

// seal encrypts a user's file: magic, nonce, ciphertext.
func (m *Manager) seal(userID string, plain []byte) []byte {
	nonce := make([]byte, m.aead.NonceSize())
	rand.Read(nonce)
	out := append(bytes.Clone(fileMagic), nonce...)
	return m.aead.Seal(out, nonce, plain, additionalData(userID))
}

// open decrypts a user's file.
func (m *Manager) open(userID string, data []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(data, fileMagic)
	if !ok {
		return nil, errors.New("not a Vigie session file (or a version this agent does not know)")
	}
	ns := m.aead.NonceSize()
	if len(rest) < ns+m.aead.Overhead() {
		return nil, errors.New("truncated")
	}
	plain, err := m.aead.Open(nil, rest[:ns], rest[ns:], additionalData(userID))
	if err != nil {
		return nil, errors.New("does not decrypt for this user: corrupted, sealed with another key, or copied from another user's file")
	}
	return plain, nil
}

// fileName is the user's file name: the user ID with every byte other than
// [A-Za-z0-9_-] percent-encoded (a Linux uid and a Windows SID stay
// readable), and fileSuffix.
func fileName(userID string) string {
	var b strings.Builder
	for i := 0; i < len(userID); i++ {
		c := userID[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String() + fileSuffix
}

// userOfFile is fileName's inverse; ok is false for a name fileName does
// not make.
func userOfFile(name string) (userID string, ok bool) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok || base == "" {
		return "", false
	}
	id, err := url.PathUnescape(base)
	if err != nil || fileName(id) != name {
		return "", false
	}
	return id, true
}

// persist writes the user's current tokens, or removes the file when there
// are none. Writes of one user are ordered, and each writes the state of
// the moment it runs, so the last one leaves the latest state on disk.
func (m *Manager) persist(u *user) {
	u.saveMu.Lock()
	defer u.saveMu.Unlock()
	m.mu.Lock()
	t, last := u.tok, u.lastRefresh
	m.mu.Unlock()
	path := filepath.Join(m.o.StateDir, fileName(u.id))
	if t == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Error("session: could not remove the signed-out user's tokens", "user", u.id, "file", path, "err", err)
		}
		return
	}
	plain, err := json.Marshal(record{User: u.id, Issuer: m.issuer, AccessToken: t.access, RefreshToken: t.refresh,
		Issued: t.issued, AccessExpires: t.accessExp, SessionExpires: t.sessionExp, LastRefresh: last})
	if err == nil {
		err = atomicfile.Write(path, m.seal(u.id, plain), 0o600)
	}
	if err != nil {
		m.log.Error("session: could not save the user's tokens; after a restart they will have to sign in again", "user", u.id, "file", path, "err", err)
	}
}

// loadAll reads every user's file at start.
func (m *Manager) loadAll() error {
	entries, err := os.ReadDir(m.o.StateDir)
	if err != nil {
		return fmt.Errorf("session: state folder: %w", err)
	}
	now := m.now()
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(m.o.StateDir, name)
		if strings.Contains(name, fileSuffix+".tmp-") {
			os.Remove(path) // a write a crash interrupted; the file it was replacing is intact
			continue
		}
		if !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		id, ok := userOfFile(name)
		if !ok || !e.Type().IsRegular() {
			m.moveAside(path, id, "not a file this agent writes")
			continue
		}
		rec, err := m.readFile(id, path)
		switch {
		case err != nil:
			m.moveAside(path, id, err.Error())
			continue
		case rec.Issuer != m.issuer:
			m.moveAside(path, id, fmt.Sprintf("tokens of %s, not of this agent's platform and tenant (%s)", rec.Issuer, m.issuer))
			continue
		case !now.Before(rec.SessionExpires):
			m.log.Info("session: stored login session has ended; the user must sign in again", "user", id)
			os.Remove(path)
			continue
		}
		t := &tokens{access: rec.AccessToken, refresh: rec.RefreshToken, issued: rec.Issued,
			accessExp: rec.AccessExpires, sessionExp: rec.SessionExpires}
		m.mu.Lock()
		u := m.userLocked(id)
		m.setTokensLocked(u, t) // an access token that expired while the agent was stopped is refreshed at once
		u.lastRefresh = rec.LastRefresh
		m.mu.Unlock()
	}
	return nil
}

func (m *Manager) readFile(userID, path string) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, errors.New("too large")
	}
	plain, err := m.open(userID, data)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, fmt.Errorf("unreadable content: %w", err)
	}
	if rec.User != userID || rec.AccessToken == "" || rec.RefreshToken == "" || rec.AccessExpires.IsZero() || rec.SessionExpires.IsZero() {
		return nil, errors.New("incomplete content")
	}
	return &rec, nil
}

// moveAside renames a file that cannot be used, so that it is kept for a
// person to look at and never read again.
func (m *Manager) moveAside(path, userID, reason string) {
	to := path + ".unreadable-" + m.now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, to); err != nil {
		m.log.Error("session: stored tokens cannot be used, and could not be moved aside; the user must sign in again",
			"user", userID, "file", path, "reason", reason, "err", err)
		return
	}
	m.log.Error("session: stored tokens cannot be used; moved aside, the user must sign in again",
		"user", userID, "file", path, "moved_to", to, "reason", reason)
}

// loadKey reads the store's key, creating it (and the folders) on first
// use. A key file others can read is refused.
func loadKey(path, stateDir string) ([]byte, error) {
	for _, dir := range []string{stateDir, filepath.Dir(path)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("session: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("session: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("session: key file %s is not a regular file", path)
	}
	if err := checkKeyFile(fi); err != nil {
		return nil, fmt.Errorf("session: key file %s: %w", path, err)
	}
	blob, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("session: key file: %w", err)
	}
	key, err := unprotectKey(blob)
	if err != nil {
		return nil, fmt.Errorf("session: key file %s: %w", path, err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("session: key file %s: %d bytes, want %d (to start over, delete it: every user will have to sign in again)", path, len(key), keySize)
	}
	return key, nil
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, keySize)
	rand.Read(key)
	blob, err := protectKey(key)
	if err != nil {
		return nil, fmt.Errorf("session: protecting the new key: %w", err)
	}
	if err := atomicfile.Write(path, blob, 0o600); err != nil {
		return nil, fmt.Errorf("session: creating the key file: %w", err)
	}
	return key, nil
}
