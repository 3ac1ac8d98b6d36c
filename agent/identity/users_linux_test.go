package identity

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// The multi-user test creates two real system users, and leaves them: it is
// idempotent, and removing accounts is not a test's business.
var testUsers = []string{"vigie-test-a", "vigie-test-b"}

// requireUsersEnv turns the multi-user test's skips (not root, no useradd,
// no setpriv or runuser) into failures, for CI.
const requireUsersEnv = "VIGIE_REQUIRE_USERS"

// TestOwnerOtherUsers connects to one listener as two other OS users at once
// and checks that each connection is attributed to its own user.
func TestOwnerOtherUsers(t *testing.T) {
	cannot := t.Skipf
	if os.Getenv(requireUsersEnv) == "1" {
		cannot = t.Fatalf
	}
	if os.Geteuid() != 0 {
		cannot("creating users and running clients as them needs root; run the tests as root (%s=1 makes this a failure, not a skip)", requireUsersEnv)
	}
	asUser := userRunner(t, cannot)

	users := make([]*user.User, len(testUsers))
	for i, name := range testUsers {
		users[i] = ensureUser(t, name, cannot)
	}
	bin := sharedTestBinary(t)

	for _, network := range []struct{ name, listen string }{
		{"ipv4", "127.0.0.1:0"},
		{"ipv6", "[::1]:0"},
	} {
		t.Run(network.name, func(t *testing.T) {
			ln := listen(t, network.listen)
			accepted := make(chan net.Conn, len(users))
			go func() {
				for range users {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()

			// Both users hold a connection at the same time.
			want := make(map[netip.AddrPort]User) // client address -> its user
			for _, u := range users {
				local := startClient(t, asUser, bin, u, ln.Addr().String())
				want[local] = User{ID: u.Uid, Name: u.Username}
			}

			r := NewResolver(Options{})
			lsof, _ := exec.LookPath("lsof")
			seen := make(map[string]bool)
			for range users {
				c := <-accepted
				t.Cleanup(func() { c.Close() })
				client, server := endpoints(c)
				w, ok := want[plain(client)]
				if !ok {
					t.Fatalf("accepted a connection from %v, which no test client made", client)
				}
				got, err := r.Owner(client, server)
				if err != nil {
					t.Fatalf("Owner(%v, %v): %v", client, server, err)
				}
				if got != w {
					t.Fatalf("Owner(%v, %v) = %+v, want %+v", client, server, got, w)
				}
				seen[got.ID] = true

				// The macOS way (lsof) agrees, when this machine has lsof.
				if lsof != "" {
					id, err := lsofOwner(lsof)(plain(client), plain(server))
					if err != nil || id != w.ID {
						t.Errorf("lsof: owner of %v = %q, %v; want %q", client, id, err, w.ID)
					}
				}
			}
			if len(seen) != len(users) {
				t.Fatalf("connections of %d users attributed to %d", len(users), len(seen))
			}
		})
	}
}

// userRunner returns how to run a command as another user: setpriv, else
// runuser.
func userRunner(t *testing.T, cannot func(string, ...any)) func(u *user.User, cmd ...string) *exec.Cmd {
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
	cannot("neither setpriv nor runuser is installed (Debian: util-linux); %s=1 makes this a failure, not a skip", requireUsersEnv)
	return nil
}

// ensureUser returns the system user name, creating it if it does not exist.
func ensureUser(t *testing.T, name string, cannot func(string, ...any)) *user.User {
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
		cannot("useradd is missing, so user %s cannot be created (Debian: passwd); %s=1 makes this a failure, not a skip", name, requireUsersEnv)
	}
	out, err := exec.Command(useradd, "--system", "--no-create-home", name).CombinedOutput()
	if u, lerr := user.Lookup(name); lerr == nil {
		t.Logf("created system user %s (uid %s); it stays", name, u.Uid)
		return u // created, possibly by a test running at the same time
	}
	t.Fatalf("useradd %s: %v: %s", name, err, out)
	return nil
}

// sharedTestBinary copies the test binary where other users can run it: go
// test builds it in a directory only its owner can enter.
func sharedTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigie-identity-")
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
	bin := filepath.Join(dir, "identity.test")
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

// startClient runs the test binary as u, connected to addr (see TestMain),
// and returns the client's address once it is connected. The client holds
// the connection until the test ends.
func startClient(t *testing.T, asUser func(*user.User, ...string) *exec.Cmd, bin string, u *user.User, addr string) netip.AddrPort {
	t.Helper()
	cmd := asUser(u, bin)
	cmd.Dir = filepath.Dir(bin)
	// A -race build sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), dialEnv+"="+addr, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a client as %s: %v", u.Username, err)
	}
	t.Cleanup(func() {
		stdin.Close() // tells the client to exit
		if err := cmd.Wait(); err != nil {
			t.Errorf("client of %s: %v: %s", u.Username, err, stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("client of %s did not connect: %v: %s", u.Username, err, stderr.String())
	}
	local, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("client of %s printed %q: %v", u.Username, line, err)
	}
	return plain(local)
}
