// Package loopback serves the tests' own servers on 127.0.0.1: the SOCKS
// servers, hung and dropping proxies, relays and sinks that the agent's
// tests talk to.
package loopback

import (
	"net"
	"testing"
)

// Serve listens on 127.0.0.1 (a free port) until the test ends, runs
// handle on its own goroutine for each connection, closes the connection
// when handle returns, and returns the address.
func Serve(tb testing.TB, handle func(c net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
