package identity

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"vigie/agent/internal/osusers"
)

// TestOwnerOtherUsers connects to one listener as two other OS users at once
// and checks that each connection is attributed to its own user.
func TestOwnerOtherUsers(t *testing.T) {
	env := osusers.Setup(t)
	users, bin := env.Users, env.Bin

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
				local := startClient(t, env, bin, u, ln.Addr().String())
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

				// Both Linux ways agree (Owner took one of them).
				ways := map[string]func(client, server netip.AddrPort) (string, error){"/proc": procOwner}
				if useDiag() {
					ways["sock_diag"] = diagOwner
				}
				for name, way := range ways {
					if id, err := way(plain(client), plain(server)); err != nil || id != w.ID {
						t.Errorf("%s: owner of %v = %q, %v; want %q", name, client, id, err, w.ID)
					}
				}

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

// startClient runs the test binary as u, connected to addr (see TestMain),
// and returns the client's address once it is connected. The client holds
// the connection until the test ends.
func startClient(t *testing.T, env *osusers.Env, bin string, u *user.User, addr string) netip.AddrPort {
	t.Helper()
	cmd := env.Command(u, bin)
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
