package identity

import (
	"net"
	"net/netip"
	"os/user"
	"testing"
)

// listen opens a listener, or skips when the address family is missing here.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s here: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// connect dials ln at dialAddr and returns both ends.
func connect(t testing.TB, ln net.Listener, dialAddr string) (client, accepted net.Conn) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		done <- result{c, err}
	}()
	client, err := net.Dial("tcp", dialAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Cleanup(func() { res.c.Close() })
	return client, res.c
}

// endpoints returns what the agent passes to Owner for an accepted
// connection.
func endpoints(c net.Conn) (client, server netip.AddrPort) {
	return c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort()
}

func currentUser(t testing.TB) User {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return User{ID: u.Uid, Name: u.Username}
}
