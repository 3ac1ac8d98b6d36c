package gateway_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"vigie/platform/gateway"
	"vigie/platform/server"
)

// TestTimeouts runs a gateway whose timeouts are half a second, and a
// client on a connection of its own for each case, over plain HTTP and
// inside an inspected tunnel (where the tunnel is the connection): an
// origin that does not answer is a 504 once the request timeout has
// passed; a keep-alive connection left idle after a response is closed,
// and so is one whose client sends its header too slowly.
func TestTimeouts(t *testing.T) {
	p := startPlatform(t, nil, server.Options{})
	o := newOrigins(t)
	const limit = 500 * time.Millisecond
	g, err := gateway.New(gateway.Options{Store: p.Server.Store, Sealer: p.Sealer(t), BaseURL: p.BaseURL, Logger: slog.New(slog.DiscardHandler),
		RootCAs: o.roots, Dial: o.dial, RequestTimeout: limit, IdleTimeout: limit, ReadHeaderTimeout: limit})
	if err != nil {
		t.Fatal(err)
	}
	d := &tunnelDriver{gateway: serveGateway(t, g), token: p.token(t, 0), tenantRoots: tenantCAPool(t, p)}

	// open returns a fresh connection through the gateway, the request
	// target's prefix and the header lines that go with each request.
	open := func(t *testing.T, inspected bool) (net.Conn, string, string) {
		conn, err := net.Dial("tcp", d.gateway)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if !inspected {
			return conn, "http://origin.example", "Proxy-Authorization: Bearer " + d.token + "\r\n"
		}
		if err := d.connect(conn, "origin.example", true); err != nil {
			t.Fatal(err)
		}
		tc := d.tlsClient(conn, "origin.example")
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc, "", ""
	}
	// closedWithin reads conn until the gateway closes it and says how long
	// that took; it fails t if the gateway sends anything more.
	closedWithin := func(t *testing.T, conn net.Conn, br *bufio.Reader) time.Duration {
		start := time.Now()
		conn.SetReadDeadline(start.Add(5 * time.Second))
		b, err := br.ReadByte()
		if err == nil {
			t.Fatalf("the gateway sent %q instead of closing the connection", b)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection was still open after %v", time.Since(start))
		}
		return time.Since(start)
	}

	for _, inspected := range []bool{false, true} {
		kind := map[bool]string{false: "plain HTTP", true: "inspected"}[inspected]
		t.Run(kind+"/origin does not answer", func(t *testing.T) {
			t.Parallel()
			conn, target, auth := open(t, inspected)
			start := time.Now()
			fmt.Fprintf(conn, "GET %s/hang HTTP/1.1\r\nHost: origin.example\r\n%s\r\n", target, auth)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || took < limit {
				t.Errorf("%d after %v, want 504 after the request timeout (%v)", resp.StatusCode, took, limit)
			}
		})
		t.Run(kind+"/idle", func(t *testing.T) {
			t.Parallel()
			conn, target, auth := open(t, inspected)
			br := bufio.NewReader(conn)
			fmt.Fprintf(conn, "GET %s/before-idle HTTP/1.1\r\nHost: origin.example\r\n%s\r\n", target, auth)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if took := closedWithin(t, conn, br); took < limit/2 {
				t.Errorf("closed %v after the response, before the idle timeout (%v)", took, limit)
			}
		})
		t.Run(kind+"/slow header", func(t *testing.T) {
			t.Parallel()
			conn, target, auth := open(t, inspected)
			fmt.Fprintf(conn, "GET %s/slow-header HTTP/1.1\r\nHost: origin.example\r\n%s", target, auth) // and no end
			closedWithin(t, conn, bufio.NewReader(conn))
		})
	}
}
