package sysproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

var testSettings = Settings{
	PACURL:    "http://127.0.0.1:3129/proxy.pac",
	ProxyAddr: "127.0.0.1:3129",
	Bypass:    []string{".corp.example", "10.0.0.0/8"},
}

// Uids of the fake accounts: real other accounts when the test runs as
// root (so that ownership is checked), else our own.
func testIDs() (alice, bob, carol int) {
	if os.Geteuid() == 0 {
		return 1000, 1001, 1002
	}
	return os.Geteuid(), os.Geteuid(), os.Geteuid()
}

const aliceKioslaverc = `[$Version]
update_info=kio_settings.upd:use_proxy_type

[Cache Settings]
MaxCacheSize=51200

[Proxy Settings]
NoProxyFor=localhost
ProxyType=0
httpProxy=

[UserAgent]
SendLanguageSettings=true
`

const origEnvironment = "# system-wide environment\nPATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\"\nLANG=en_GB.UTF-8\n"

// fakeRoot builds a small system under a temporary directory: accounts in
// etc/passwd, alice with a KDE config, bob with an empty home, carol with
// no home yet, a service account outside /home, etc/environment,
// etc/profile.d and an etc/dconf as libdconf installs it.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	alice, bob, carol := testIDs()
	write := func(name, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", fmt.Sprintf(`root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
svc:x:998:998::/var/lib/svc:/usr/sbin/nologin
alice:x:%d:%d:Alice:/home/alice:/bin/bash
bob:x:%d:%d:Bob:/home/bob/:/bin/bash
carol:x:%d:%d:Carol:/home/carol:/bin/bash
`, alice, alice, bob, bob, carol, carol), 0o644)
	write("etc/environment", origEnvironment, 0o644)
	write("etc/profile.d/bash_completion.sh", "# not ours\n", 0o644)
	write("home/alice/.config/kioslaverc", aliceKioslaverc, 0o640)
	write("home/alice/.bashrc", "# alice\n", 0o644)
	for _, d := range []string{"home/bob", "var/lib/svc", "etc/dconf/db"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"home/alice", "home/alice/.config", "home/alice/.config/kioslaverc", "home/alice/.bashrc"} {
		if err := os.Lchown(filepath.Join(root, p), alice, alice); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(root, "home/bob"), bob, bob); err != nil {
		t.Fatal(err)
	}
	return root
}

// fakeDconf stands in for `dconf compile` (its output is the key files it
// read) and records the other programs run.
type fakeDconf struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeDconf) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	f.mu.Unlock()
	switch {
	case name == "dconf" && len(args) == 3 && args[0] == "compile":
		var db bytes.Buffer
		db.WriteString("GVariant fake database\n")
		for _, dir := range []string{args[2], filepath.Join(args[2], "locks")} {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				if e.Type().IsRegular() {
					b, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						return nil, err
					}
					db.Write(b)
				}
			}
		}
		return nil, os.WriteFile(args[1], db.Bytes(), 0o644)
	case name == "dbus-send":
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected command %s %q", name, args)
}

func (f *fakeDconf) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func newTestManager(t *testing.T, root string, run func(context.Context, string, ...string) ([]byte, error)) (*Manager, string) {
	t.Helper()
	stateDir := filepath.Join(t.TempDir(), "state")
	if run == nil {
		run = (&fakeDconf{}).run
	}
	return New(Options{StateDir: stateDir, Root: root, Run: run}), stateDir
}

// entry is one file system entry as snapshot sees it.
type entry struct {
	mode     fs.FileMode
	uid, gid uint32
	data     string // content, or link target
	mtime    time.Time
}

// snapshot records every entry under root.
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.data, e.mtime = string(b), fi.ModTime()
		case fi.Mode()&fs.ModeSymlink != 0:
			e.data, _ = os.Readlink(p)
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameTree fails unless two snapshots have the same entries, modes,
// owners and contents (and file mtimes, with mtimes).
func sameTree(t *testing.T, what string, want, got map[string]entry, mtimes bool) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.mode != w.mode || g.uid != w.uid || g.gid != w.gid:
			diffs = append(diffs, fmt.Sprintf("%s: mode/owner %v %d:%d, want %v %d:%d", p, g.mode, g.uid, g.gid, w.mode, w.uid, w.gid))
		case g.data != w.data:
			diffs = append(diffs, fmt.Sprintf("%s: content\n%q\nwant\n%q", p, g.data, w.data))
		case mtimes && !g.mtime.Equal(w.mtime):
			diffs = append(diffs, p+": rewritten")
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s:\n%s", what, strings.Join(diffs, "\n"))
	}
}

func readRoot(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustCheck(t *testing.T, m *Manager, want ...string) {
	t.Helper()
	got, err := m.Check(t.Context())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Check = %q, want %q", got, want)
	}
}

func TestApplyThenRestore(t *testing.T) {
	root := fakeRoot(t)
	before := snapshot(t, root)
	m, stateDir := newTestManager(t, root, nil)
	ctx := t.Context()

	if _, err := m.Check(ctx); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Check before Apply: %v, want ErrNotApplied", err)
	}
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	alice, bob, _ := testIDs()

	// KDE, for every user with a home under /home.
	wantAlice := strings.Replace(aliceKioslaverc, "ProxyType=0\n", "ProxyType=2\n", 1)
	wantAlice = strings.Replace(wantAlice, "httpProxy=\n", "httpProxy=\nProxy Config Script=http://127.0.0.1:3129/proxy.pac\n", 1)
	if got := readRoot(t, root, "home/alice/.config/kioslaverc"); got != wantAlice {
		t.Errorf("alice's kioslaverc:\n%s\nwant\n%s", got, wantAlice)
	}
	wantBob := "[Proxy Settings]\nProxy Config Script=http://127.0.0.1:3129/proxy.pac\nProxyType=2\n"
	if got := readRoot(t, root, "home/bob/.config/kioslaverc"); got != wantBob {
		t.Errorf("bob's kioslaverc:\n%s\nwant\n%s", got, wantBob)
	}
	after := snapshot(t, root)
	for p, want := range map[string]struct {
		mode fs.FileMode
		uid  int
	}{
		"home/alice/.config/kioslaverc": {0o640, alice}, // kept
		"home/bob/.config":              {fs.ModeDir | 0o700, bob},
		"home/bob/.config/kioslaverc":   {0o600, bob},
		"etc/environment":               {0o644, os.Geteuid()},
		"etc/profile.d/vigie-proxy.sh":  {0o644, os.Geteuid()},
	} {
		if e := after[p]; e.mode != want.mode || int(e.uid) != want.uid {
			t.Errorf("%s: mode %v owner %d, want %v %d", p, e.mode, e.uid, want.mode, want.uid)
		}
	}
	for _, p := range []string{"home/carol", "var/lib/svc/.config"} {
		if _, ok := after[p]; ok {
			t.Errorf("%s was created", p)
		}
	}

	// The environment, for command-line programs.
	env := readRoot(t, root, "etc/environment")
	if !strings.HasPrefix(env, origEnvironment) {
		t.Errorf("etc/environment lost its lines:\n%s", env)
	}
	for _, l := range []string{"http_proxy=http://127.0.0.1:3129", "HTTPS_PROXY=http://127.0.0.1:3129",
		"no_proxy=localhost,127.0.0.1,::1,.corp.example,10.0.0.0/8"} {
		if !strings.Contains(env, "\n"+l+"\n") {
			t.Errorf("etc/environment lacks %s:\n%s", l, env)
		}
	}
	if got := readRoot(t, root, "etc/profile.d/vigie-proxy.sh"); !strings.Contains(got, "https_proxy='http://127.0.0.1:3129'\n") || !strings.Contains(got, "\nexport http_proxy ") {
		t.Errorf("profile.d script:\n%s", got)
	}
	out, err := exec.Command("sh", "-c", ". "+filepath.Join(root, "etc/profile.d/vigie-proxy.sh")+"; env").Output()
	if err != nil || !strings.Contains(string(out), "\nNO_PROXY=localhost,127.0.0.1,::1,.corp.example,10.0.0.0/8\n") {
		t.Errorf("sourcing the profile.d script: %v\n%s", err, out)
	}

	// GNOME, through the system dconf database.
	if got := readRoot(t, root, "etc/dconf/profile/user"); got != dconfNewProfile {
		t.Errorf("dconf profile:\n%s", got)
	}
	if got := readRoot(t, root, "etc/dconf/db/vigie.d/00-vigie-proxy"); !strings.Contains(got, "[system/proxy]\nmode='auto'\nautoconfig-url='http://127.0.0.1:3129/proxy.pac'\n") {
		t.Errorf("dconf key file:\n%s", got)
	}
	if got := readRoot(t, root, "etc/dconf/db/vigie.d/locks/vigie-proxy"); !strings.Contains(got, "\n/system/proxy/mode\n/system/proxy/autoconfig-url\n") {
		t.Errorf("dconf locks:\n%s", got)
	}
	if got := readRoot(t, root, "etc/dconf/db/vigie"); !strings.Contains(got, "autoconfig-url=") {
		t.Errorf("dconf database not compiled:\n%s", got)
	}
	if st, err := os.Stat(filepath.Join(stateDir, stateName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", st, err)
	}
	mustCheck(t, m)

	if err := m.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameTree(t, "after Restore", before, snapshot(t, root), false)
	if _, err := os.Stat(filepath.Join(stateDir, stateName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file left after a complete Restore: %v", err)
	}
	if err := m.Restore(ctx); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	sameTree(t, "after a second Restore", before, snapshot(t, root), false)
	if _, err := m.Check(ctx); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Check after Restore: %v, want ErrNotApplied", err)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	root := fakeRoot(t)
	before := snapshot(t, root)
	dconf := &fakeDconf{}
	m, stateDir := newTestManager(t, root, dconf.run)
	ctx := t.Context()
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	applied := snapshot(t, root)
	state := snapshot(t, stateDir)
	for range 2 {
		if err := m.Apply(ctx, testSettings); err != nil {
			t.Fatal(err)
		}
	}
	sameTree(t, "after Apply again", applied, snapshot(t, root), true)
	sameTree(t, "state after Apply again", state, snapshot(t, stateDir), true)
	if n := dconf.count("dconf compile"); n != 1 {
		t.Errorf("dconf compile ran %d times, want 1", n)
	}
	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after Restore", before, snapshot(t, root), false)
}

func TestApplyNewSettingsThenRestore(t *testing.T) {
	root := fakeRoot(t)
	before := snapshot(t, root)
	m, _ := newTestManager(t, root, nil)
	ctx := t.Context()
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	// Running dconf clients map the database; replacing it zeroes the old
	// file's header so that they reopen it, as `dconf update` does.
	old, err := os.Open(filepath.Join(root, "etc/dconf/db/vigie"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	moved := Settings{PACURL: "http://127.0.0.1:4000/proxy.pac"} // and no ProxyAddr
	if err := m.Apply(ctx, moved); err != nil {
		t.Fatal(err)
	}
	header := make([]byte, 8)
	if _, err := old.ReadAt(header, 0); err != nil || !bytes.Equal(header, make([]byte, 8)) {
		t.Errorf("old database header = %q, %v; want zeroes", header, err)
	}
	if got := readRoot(t, root, "home/bob/.config/kioslaverc"); !strings.Contains(got, "=http://127.0.0.1:4000/proxy.pac\n") {
		t.Errorf("kioslaverc not updated:\n%s", got)
	}
	if got := readRoot(t, root, "etc/environment"); got != origEnvironment {
		t.Errorf("environment block not removed without ProxyAddr:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/profile.d/vigie-proxy.sh")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("profile.d script not removed without ProxyAddr: %v", err)
	}
	if got := readRoot(t, root, "etc/dconf/db/vigie"); !strings.Contains(got, "4000") {
		t.Errorf("dconf database not recompiled:\n%s", got)
	}
	mustCheck(t, m)
	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after Restore", before, snapshot(t, root), false)
}

// Lines that others add after Apply survive Restore, and only ours go.
func TestRestoreKeepsOtherChanges(t *testing.T) {
	root := fakeRoot(t)
	// An environment without a final newline, to check that Restore puts
	// back exactly that.
	noNL := strings.TrimSuffix(origEnvironment, "\n")
	if err := os.WriteFile(filepath.Join(root, "etc/environment"), []byte(noNL), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	m, _ := newTestManager(t, root, nil)
	ctx := t.Context()
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	appendTo := func(name, text string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(root, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	appendTo("etc/environment", "EDITOR=vi\n")
	appendTo("home/alice/.config/kioslaverc", "\n[Notification Messages]\nWarnOnLeaveSSLMode=false\n")

	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	want := before
	env := want["etc/environment"]
	env.data = noNL + "\nEDITOR=vi\n"
	want["etc/environment"] = env
	kio := want["home/alice/.config/kioslaverc"]
	kio.data = aliceKioslaverc + "\n[Notification Messages]\nWarnOnLeaveSSLMode=false\n"
	want["home/alice/.config/kioslaverc"] = kio
	sameTree(t, "after Restore", want, snapshot(t, root), false)
}

func TestCheckReportsDrift(t *testing.T) {
	root := fakeRoot(t)
	m, _ := newTestManager(t, root, nil)
	ctx := t.Context()
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, m)

	// KDE's settings module turns the proxy off; someone appends their own
	// proxy to /etc/environment (pam_env: the last one wins); a new user's
	// home appears; someone deletes the compiled dconf database.
	kio := filepath.Join(root, "home/alice/.config/kioslaverc")
	b, _ := os.ReadFile(kio)
	if err := os.WriteFile(kio, bytes.Replace(b, []byte("ProxyType=2"), []byte("ProxyType=0"), 1), 0o640); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(root, "etc/environment"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("https_proxy=http://elsewhere:8080\n")
	f.Close()
	if err := os.MkdirAll(filepath.Join(root, "home/carol"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "etc/dconf/db/vigie"))
	mustCheck(t, m, "env:/etc/environment", "gnome", "kde:alice", "kde:carol")

	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, m)
	env := readRoot(t, root, "etc/environment")
	if !strings.Contains(env, "https_proxy=http://elsewhere:8080\n# BEGIN vigie-proxy") {
		t.Errorf("our block did not move after the overriding line:\n%s", env)
	}
}

func TestRefusesLinksOutOfHome(t *testing.T) {
	root := fakeRoot(t)
	// bob's ~/.config points at /etc of the fake root; alice's kioslaverc
	// is a link to etc/passwd.
	if err := os.Symlink("../../etc", filepath.Join(root, "home/bob/.config")); err != nil {
		t.Fatal(err)
	}
	kio := filepath.Join(root, "home/alice/.config/kioslaverc")
	os.Remove(kio)
	if err := os.Symlink("../../../etc/passwd", kio); err != nil {
		t.Fatal(err)
	}
	// carol's kioslaverc is a hard link to a system file.
	os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:*:1::::::\n"), 0o600)
	os.MkdirAll(filepath.Join(root, "home/carol/.config"), 0o755)
	if err := os.Link(filepath.Join(root, "etc/shadow"), filepath.Join(root, "home/carol/.config/kioslaverc")); err != nil {
		t.Fatal(err)
	}
	passwd := readRoot(t, root, "etc/passwd")
	m, _ := newTestManager(t, root, nil)
	err := m.Apply(t.Context(), testSettings)
	for _, k := range []string{"kde:alice", "kde:bob", "kde:carol"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Fatalf("Apply = %v, want an error for %s", err, k)
		}
	}
	if got := readRoot(t, root, "etc/shadow"); got != "root:*:1::::::\n" {
		t.Errorf("etc/shadow changed:\n%s", got)
	}
	if got := readRoot(t, root, "etc/passwd"); got != passwd {
		t.Errorf("etc/passwd changed:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/kioslaverc")); err == nil {
		t.Error("wrote etc/kioslaverc through bob's link")
	}
	if !strings.Contains(readRoot(t, root, "etc/environment"), "http_proxy=") {
		t.Error("the other targets were not applied")
	}
	got, _ := m.Check(t.Context())
	if !slices.Equal(got, []string{"kde:alice", "kde:bob", "kde:carol"}) {
		t.Errorf("Check = %q", got)
	}
}

func TestInvalidSettings(t *testing.T) {
	m, _ := newTestManager(t, fakeRoot(t), nil)
	for _, s := range []Settings{
		{},
		{PACURL: "proxy.pac"},
		{PACURL: "ftp://127.0.0.1/proxy.pac"},
		{PACURL: "http://127.0.0.1:3129/p'.pac"},
		{PACURL: "http://127.0.0.1:3129/p.pac\nmode='none'"},
		{PACURL: testSettings.PACURL, ProxyAddr: "127.0.0.1"},
		{PACURL: testSettings.PACURL, ProxyAddr: "127.0.0.1:99999"},
		{PACURL: testSettings.PACURL, ProxyAddr: "$(reboot):80"},
		{PACURL: testSettings.PACURL, ProxyAddr: "127.0.0.1:3129", Bypass: []string{"a b"}},
	} {
		if err := m.Apply(t.Context(), s); err == nil || !strings.HasPrefix(err.Error(), "sysproxy: invalid settings") {
			t.Errorf("Apply(%+v) = %v", s, err)
		}
	}
	if err := New(Options{Root: t.TempDir()}).Apply(t.Context(), testSettings); err == nil || !strings.Contains(err.Error(), "StateDir") {
		t.Errorf("Apply without StateDir = %v", err)
	}
}

// A corrupt state file stops Apply: applying over it would record our own
// settings as the ones to restore.
func TestCorruptStateStopsApply(t *testing.T) {
	root := fakeRoot(t)
	m, stateDir := newTestManager(t, root, nil)
	os.MkdirAll(stateDir, 0o700)
	os.WriteFile(filepath.Join(stateDir, stateName), []byte("{"), 0o600)
	before := snapshot(t, root)
	if err := m.Apply(t.Context(), testSettings); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Apply = %v", err)
	}
	sameTree(t, "after refused Apply", before, snapshot(t, root), true)
}

func TestPasswdUsers(t *testing.T) {
	got := passwdUsers([]byte("root:x:0:0::/root:/bin/sh\n+nis::::::\nal:x:1000:1000::/home/al:/bin/sh\nbad:x:z:1::/home/bad:/bin/sh\nsys:x:5:5::/home:/bin/sh\nshort:x:1\n"))
	want := []User{{Name: "al", Home: "/home/al", UID: 1000, GID: 1000}}
	if !slices.Equal(got, want) {
		t.Errorf("passwdUsers = %+v", got)
	}
}

// Keep re-applies within a round after someone changes the settings, on
// its ticker and on a network change, and logs only transitions. Run in a
// synctest bubble: the minutes pass on the fake clock.
func TestKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := fakeRoot(t)
		var logs lockedBuffer
		start := time.Now()
		m := New(Options{
			StateDir: filepath.Join(t.TempDir(), "state"),
			Root:     root,
			Run:      (&fakeDconf{}).run,
			Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Now:      func() time.Time { return time.Now() }, // the bubble's clock
		})
		ctx, cancel := context.WithCancel(t.Context())
		changed := make(chan struct{})
		done := make(chan error)
		go func() { done <- m.Keep(ctx, testSettings, time.Minute, changed) }()
		synctest.Wait()
		mustCheck(t, m)
		if n := logs.count("proxy settings applied"); n != 1 {
			t.Fatalf("want one 'applied' line, got:\n%s", logs.String())
		}

		kio := filepath.Join(root, "home/alice/.config/kioslaverc")
		applied := readRoot(t, root, "home/alice/.config/kioslaverc")
		turnOff := func() {
			t.Helper()
			if err := os.WriteFile(kio, []byte(strings.Replace(applied, "ProxyType=2", "ProxyType=0", 1)), 0o640); err != nil {
				t.Fatal(err)
			}
			mustCheck(t, m, "kde:alice")
		}

		// The next tick re-applies.
		turnOff()
		time.Sleep(time.Minute)
		synctest.Wait()
		mustCheck(t, m)
		if got := readRoot(t, root, "home/alice/.config/kioslaverc"); got != applied {
			t.Fatalf("not re-applied on the tick:\n%s", got)
		}

		// A network change re-applies at once.
		turnOff()
		changed <- struct{}{}
		synctest.Wait()
		mustCheck(t, m)

		// Quiet rounds log nothing.
		lines := logs.lines()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := logs.lines(); n != lines {
			t.Errorf("quiet rounds logged:\n%s", logs.String())
		}
		if n := logs.count("re-applying"); n != 2 {
			t.Errorf("want two 're-applying' lines, got:\n%s", logs.String())
		}

		// The state remembers the bubble's clock, not the wall clock.
		b, err := os.ReadFile(filepath.Join(m.opts.StateDir, stateName))
		if err != nil {
			t.Fatal(err)
		}
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Targets["kde:alice"].Saved; !got.Equal(start) {
			t.Errorf("saved at %v, want %v", got, start)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Keep = %v", err)
		}
	})
}

// A persistent failure is logged once, and its end once.
func TestKeepLogsFailureOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := fakeRoot(t)
		var logs lockedBuffer
		var broken sync.Mutex
		fail := true
		run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
			broken.Lock()
			defer broken.Unlock()
			if fail && name == "dconf" {
				return nil, fmt.Errorf("dconf: %w", exec.ErrNotFound)
			}
			return (&fakeDconf{}).run(ctx, name, args...)
		}
		m := New(Options{StateDir: filepath.Join(t.TempDir(), "state"), Root: root, Run: run,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		closed := make(chan struct{})
		close(closed) // a closed channel must not spin the loop
		go func() { done <- m.Keep(ctx, testSettings, 0, closed) }()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := logs.count("could not apply"); n != 1 || !strings.Contains(logs.String(), "install dconf-cli") {
			t.Errorf("want one failure line naming dconf-cli, got:\n%s", logs.String())
		}
		broken.Lock()
		fail = false
		broken.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := logs.count("in place again"); n != 1 {
			t.Errorf("want one recovery line, got:\n%s", logs.String())
		}
		mustCheck(t, m)
		cancel()
		<-done
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) count(s string) int { return strings.Count(l.String(), s) }
func (l *lockedBuffer) lines() int         { return strings.Count(l.String(), "\n") }

// GNOME sees our PAC URL: the real dconf compiles the database, and the
// real gsettings, reading it through a dconf profile, reports our values
// and that the user cannot change them, even though the user's own
// database says 'none'. After Restore the user's own value is back.
func TestGSettingsSeesPAC(t *testing.T) {
	for _, tool := range []string{"dconf", "gsettings"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install dconf-cli libglib2.0-bin gsettings-desktop-schemas dconf-gsettings-backend): %v", tool, err)
		}
	}
	gio, _ := exec.Command("sh", "-c", "ls /usr/lib/*/gio/modules/libdconfsettings.so /usr/lib*/gio/modules/libdconfsettings.so 2>/dev/null").Output()
	if len(gio) == 0 {
		t.Skip("the dconf GSettings backend is not installed (apt-get install dconf-gsettings-backend)")
	}
	root := fakeRoot(t)
	// alice's own dconf database turns the proxy off.
	userDB := filepath.Join(root, "home/alice/.config/dconf/user")
	keys := filepath.Join(t.TempDir(), "user.d")
	os.MkdirAll(keys, 0o755)
	os.WriteFile(filepath.Join(keys, "prefs"), []byte("[system/proxy]\nmode='none'\n"), 0o644)
	os.MkdirAll(filepath.Dir(userDB), 0o700)
	if out, err := exec.Command("dconf", "compile", userDB, keys).CombinedOutput(); err != nil {
		t.Fatalf("dconf compile: %v: %s", err, out)
	}
	before := snapshot(t, root)

	// The real dconf; no system bus to signal here.
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name == "dbus-send" {
			return nil, nil
		}
		return runProgram(ctx, name, args...)
	}
	m, _ := newTestManager(t, root, run)
	ctx := t.Context()
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}

	// The profile we wrote, with our system-db pointing into the fake root
	// (system-db: names are always under the real /etc/dconf/db).
	profile := readRoot(t, root, "etc/dconf/profile/user")
	profile = strings.Replace(profile, "system-db:vigie", "file-db:"+filepath.Join(root, "etc/dconf/db/vigie"), 1)
	profilePath := filepath.Join(t.TempDir(), "profile")
	os.WriteFile(profilePath, []byte(profile), 0o644)
	runtime := t.TempDir()
	gsettings := func(profile string, args ...string) string {
		t.Helper()
		cmd := exec.Command("gsettings", args...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + filepath.Join(root, "home/alice"),
			"XDG_CONFIG_HOME=" + filepath.Join(root, "home/alice/.config"),
			"XDG_RUNTIME_DIR=" + runtime,
			"DCONF_PROFILE=" + profile,
			"GSETTINGS_BACKEND=dconf",
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gsettings %s: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := gsettings(profilePath, "get", "org.gnome.system.proxy", "mode"); got != "'auto'" {
		t.Errorf("mode = %s, want 'auto'", got)
	}
	if got := gsettings(profilePath, "get", "org.gnome.system.proxy", "autoconfig-url"); got != "'"+testSettings.PACURL+"'" {
		t.Errorf("autoconfig-url = %s", got)
	}
	if got := gsettings(profilePath, "writable", "org.gnome.system.proxy", "mode"); got != "false" {
		t.Errorf("mode writable = %s, want false (locked)", got)
	}

	// Apply again changes nothing; a new URL recompiles for real.
	if err := m.Apply(ctx, testSettings); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, m)
	moved := testSettings
	moved.PACURL = "http://127.0.0.1:4000/proxy.pac"
	if err := m.Apply(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if got := gsettings(profilePath, "get", "org.gnome.system.proxy", "autoconfig-url"); got != "'"+moved.PACURL+"'" {
		t.Errorf("autoconfig-url after a new Apply = %s", got)
	}

	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after Restore", before, snapshot(t, root), false)
	userOnly := filepath.Join(t.TempDir(), "profile")
	os.WriteFile(userOnly, []byte("user-db:user\n"), 0o644)
	if got := gsettings(userOnly, "get", "org.gnome.system.proxy", "mode"); got != "'none'" {
		t.Errorf("mode after Restore = %s, want alice's 'none'", got)
	}
}
