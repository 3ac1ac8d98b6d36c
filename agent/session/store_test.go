package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a Manager's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// signedIn returns options with alice signed in as 1000 and bob as 1001,
// stored in dir, and the tokens each got.
func signedIn(t *testing.T) (Options, *fakePlatform, map[string]string) {
	f := newFakePlatform()
	o := testOptions(t, f, t.TempDir())
	m := newTestManager(t, o)
	login(t, m, f, "1000", "alice")
	login(t, m, f, "1001", "bob")
	toks := map[string]string{}
	for _, u := range []string{"1000", "1001"} {
		tok, err := m.Token(u)
		if err != nil {
			t.Fatal(err)
		}
		toks[u] = tok
	}
	return o, f, toks
}

// TestStoreSurvivesRestart: a new Manager on the same folder and key has
// every user's tokens, and the files are private.
func TestStoreSurvivesRestart(t *testing.T) {
	o, _, toks := signedIn(t)
	m := newTestManager(t, o)
	for u, want := range toks {
		if got, err := m.Token(u); err != nil || got != want {
			t.Errorf("after restart, Token(%s) = %q, %v; want %q", u, got, err, want)
		}
	}
	st := m.Status()
	if len(st) != 2 || !st[0].LoggedIn || !st[1].LoggedIn || st[0].SessionExpires.Before(time.Now().Add(6*24*time.Hour)) {
		t.Errorf("status after restart: %+v", st)
	}
	for path, want := range map[string]os.FileMode{o.KeyFile: 0o600, o.StateDir: 0o700 | os.ModeDir,
		filepath.Join(o.StateDir, "1000.session"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", path, fi.Mode(), err, want)
		}
	}
	// Nothing readable on disk.
	data, _ := os.ReadFile(filepath.Join(o.StateDir, "1000.session"))
	if bytes.Contains(data, []byte(toks["1000"])) || bytes.Contains(data, []byte("rt-")) {
		t.Error("the file shows a token in clear")
	}
}

func withLog(o Options) (Options, *logBuffer) {
	lb := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(lb, nil))
	return o, lb
}

func movedAside(t *testing.T, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", name, err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, name+".unreadable-*")); len(aside) != 1 {
		t.Errorf("%s was not moved aside: %v", name, aside)
	}
}

// TestStoreCorruptedFile: a damaged file signs its user out, is moved aside
// (kept), and the log says why; other users are unaffected.
func TestStoreCorruptedFile(t *testing.T) {
	o, _, toks := signedIn(t)
	path := filepath.Join(o.StateDir, "1000.session")
	data, _ := os.ReadFile(path)
	data[len(data)-5] ^= 0x40
	os.WriteFile(path, data, 0o600)
	os.WriteFile(filepath.Join(o.StateDir, "1002.session"), []byte("garbage"), 0o600)

	o, lb := withLog(o)
	m := newTestManager(t, o)
	for _, u := range []string{"1000", "1002"} {
		if _, err := m.Token(u); err != ErrNeedsLogin {
			t.Errorf("Token(%s) with a damaged file: %v, want ErrNeedsLogin", u, err)
		}
	}
	if got, err := m.Token("1001"); err != nil || got != toks["1001"] {
		t.Errorf("Token(1001): %v", err)
	}
	movedAside(t, o.StateDir, "1000.session")
	movedAside(t, o.StateDir, "1002.session")
	log := lb.String()
	if !strings.Contains(log, "moved aside") || !strings.Contains(log, "user=1000") || !strings.Contains(log, "does not decrypt") ||
		!strings.Contains(log, "user=1002") || !strings.Contains(log, "not a Vigie session file") {
		t.Errorf("log does not say what happened:\n%s", log)
	}
	// The user signs in again and the new file is used.
	m2 := newTestManager(t, o)
	if _, err := m2.Token("1000"); err != ErrNeedsLogin {
		t.Errorf("moved-aside file read again: %v", err)
	}
}

// TestStoreFileOfAnotherUser: alice's file copied over bob's, or renamed to
// a user who never signed in, does not open: the user ID is bound in.
func TestStoreFileOfAnotherUser(t *testing.T) {
	o, _, toks := signedIn(t)
	alice := filepath.Join(o.StateDir, "1000.session")
	data, _ := os.ReadFile(alice)
	os.WriteFile(filepath.Join(o.StateDir, "1001.session"), data, 0o600)
	os.WriteFile(filepath.Join(o.StateDir, "1002.session"), data, 0o600)
	o, lb := withLog(o)
	m := newTestManager(t, o)
	for _, u := range []string{"1001", "1002"} {
		if tok, err := m.Token(u); err != ErrNeedsLogin {
			t.Errorf("Token(%s) with alice's file: %q %v, want ErrNeedsLogin", u, tok, err)
		}
	}
	if got, err := m.Token("1000"); err != nil || got != toks["1000"] {
		t.Errorf("alice: %v", err)
	}
	movedAside(t, o.StateDir, "1001.session")
	movedAside(t, o.StateDir, "1002.session")
	if !strings.Contains(lb.String(), "copied from another user") {
		t.Errorf("log:\n%s", lb)
	}
}

// TestStoreOtherTenant: tokens stored for another platform or tenant are
// not used (the agent was moved to another tenant).
func TestStoreOtherTenant(t *testing.T) {
	o, _, _ := signedIn(t)
	o.Tenant = "other"
	o, lb := withLog(o)
	m := newTestManager(t, o)
	if _, err := m.Token("1000"); err != ErrNeedsLogin {
		t.Errorf("token of another tenant: %v", err)
	}
	movedAside(t, o.StateDir, "1000.session")
	if !strings.Contains(lb.String(), "not of this agent's platform and tenant") {
		t.Errorf("log:\n%s", lb)
	}
}

// TestStoreWrongKey: with another key every file is unreadable, and the
// manager still starts.
func TestStoreWrongKey(t *testing.T) {
	o, _, _ := signedIn(t)
	os.Remove(o.KeyFile)
	m := newTestManager(t, o)
	if st := m.Status(); len(st) != 0 {
		t.Errorf("status with another key: %+v", st)
	}
	movedAside(t, o.StateDir, "1000.session")
}

func TestKeyFile(t *testing.T) {
	o, _, _ := signedIn(t)
	if err := os.Chmod(o.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "0644") || !strings.HasPrefix(err.Error(), "session: ") {
		t.Errorf("key file 0644: %v, want an error naming the mode", err)
	}
	os.Chmod(o.KeyFile, 0o600)
	os.WriteFile(o.KeyFile, []byte("short"), 0o600)
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("short key: %v", err)
	}
	os.Remove(o.KeyFile)
	os.Mkdir(o.KeyFile, 0o700)
	if _, err := New(o); err == nil {
		t.Error("key file is a folder: no error")
	}
}

func TestFileName(t *testing.T) {
	for id, want := range map[string]string{
		"1000": "1000.session",
		"S-1-5-21-3623811015-3361044348-30300820-1013": "S-1-5-21-3623811015-3361044348-30300820-1013.session",
		"..":     "%2E%2E.session",
		"a/b\\c": "a%2Fb%5Cc.session",
		"é":      "%C3%A9.session",
	} {
		if got := fileName(id); got != want {
			t.Errorf("fileName(%q) = %q, want %q", id, got, want)
		}
		if back, ok := userOfFile(want); !ok || back != id {
			t.Errorf("userOfFile(%q) = %q %v", want, back, ok)
		}
	}
	for _, name := range []string{".session", "1000", "%2e%2e.session", "a%2.session", "%31000.session"} {
		if id, ok := userOfFile(name); ok {
			t.Errorf("userOfFile(%q) = %q, want refused", name, id)
		}
	}
}

func FuzzFileName(f *testing.F) {
	for _, s := range []string{"1000", "S-1-5-18", "", "..", "%41", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name := fileName(id)
		if strings.ContainsAny(name, `/\:`) || name == "."+fileSuffix && id != "" {
			t.Fatalf("fileName(%q) = %q", id, name)
		}
		if back, ok := userOfFile(name); id != "" && (!ok || back != id) {
			t.Fatalf("userOfFile(fileName(%q)) = %q %v", id, back, ok)
		}
	})
}

// FuzzOpen: whatever is in a file, opening it fails cleanly or yields the
// sealed record; it never panics.
func FuzzOpen(f *testing.F) {
	fp := newFakePlatform()
	m := newTestManager(f, testOptions(f, fp, f.TempDir()))
	good, _ := json.Marshal(record{User: "1000", Issuer: m.issuer, AccessToken: "a", RefreshToken: "r"})
	f.Add(m.seal("1000", good))
	f.Add([]byte("vigie-session\x00\x01"))
	f.Add([]byte{})
	// One file, rewritten for each input: a folder per input would make
	// the fuzzer spend its time creating and removing folders.
	path := filepath.Join(f.TempDir(), "1000.session")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if rec, err := m.readFile("1000", path); err == nil && rec.User != "1000" {
			t.Fatalf("read a record of %q", rec.User)
		}
	})
}
