//go:build linux

// Package osusers gives tests real OS users to run clients as: the two
// test accounts (created once, left in place), a way to run a command as
// one of them, and a copy of the test binary they may execute. Tests that
// need them are skipped when not run as root, unless VIGIE_REQUIRE_USERS=1
// (CI) makes that a failure.
package osusers

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
)

// Names are the test accounts. They are system users without a home,
// created when missing and never removed: removing accounts is not a
// test's business, and creating them is idempotent.
var Names = []string{"vigie-test-a", "vigie-test-b"}

// RequireEnv turns the skips into failures.
const RequireEnv = "VIGIE_REQUIRE_USERS"

// Env is what a test needs to run commands as other users.
type Env struct {
	Users []*user.User // one per name of Names
	// Bin is a copy of the test binary that every user may run.
	Bin string
	run func(u *user.User, cmd ...string) *exec.Cmd
}

// Command returns cmd to be run as u.
func (e *Env) Command(u *user.User, cmd ...string) *exec.Cmd { return e.run(u, cmd...) }

// Setup makes the test users and the shared binary, or skips the test
// (fails it with RequireEnv=1) when this machine cannot.
func Setup(t *testing.T) *Env {
	t.Helper()
	cannot := t.Skipf
	if os.Getenv(RequireEnv) == "1" {
		cannot = t.Fatalf
	}
	if os.Geteuid() != 0 {
		cannot("creating users and running clients as them needs root; run the tests as root (%s=1 makes this a failure, not a skip)", RequireEnv)
	}
	e := &Env{run: runner(cannot)}
	for _, name := range Names {
		e.Users = append(e.Users, ensure(t, name, cannot))
	}
	e.Bin = sharedBinary(t)
	return e
}

// runner returns how to run a command as another user: setpriv, else
// runuser.
func runner(cannot func(string, ...any)) func(u *user.User, cmd ...string) *exec.Cmd {
	if setpriv, err := exec.LookPath("setpriv"); err == nil {
		return func(u *user.User, cmd ...string) *exec.Cmd {
			args := append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}, cmd...)
			return exec.Command(setpriv, args...)
		}
	}
	if runuser, err := exec.LookPath("runuser"); err == nil {
		return func(u *user.User, cmd ...string) *exec.Cmd {
			return exec.Command(runuser, append([]string{"-u", u.Username, "--"}, cmd...)...)
		}
	}
	cannot("neither setpriv nor runuser is installed (Debian: util-linux); %s=1 makes this a failure, not a skip", RequireEnv)
	return nil
}

// ensure returns the system user name, creating it if it does not exist.
func ensure(t *testing.T, name string, cannot func(string, ...any)) *user.User {
	t.Helper()
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if err == nil {
		return u
	}
	if !errors.As(err, &unknown) {
		t.Fatalf("looking up %s: %v", name, err)
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		cannot("useradd is missing, so user %s cannot be created (Debian: passwd); %s=1 makes this a failure, not a skip", name, RequireEnv)
	}
	out, err := exec.Command(useradd, "--system", "--no-create-home", name).CombinedOutput()
	if u, lerr := user.Lookup(name); lerr == nil {
		t.Logf("created system user %s (uid %s); it stays", name, u.Uid)
		return u // created, possibly by a test running at the same time
	}
	t.Fatalf("useradd %s: %v: %s", name, err, out)
	return nil
}

// sharedBinary copies the test binary where other users can run it: go
// test builds it in a directory only its owner can enter.
func sharedBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigie-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, filepath.Base(self))
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}
