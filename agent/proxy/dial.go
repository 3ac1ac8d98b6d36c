package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	xproxy "golang.org/x/net/proxy"

	"vigie/pac"
)

// dialRoute opens a connection to target (host:port) over one route. For
// HTTP(S) proxies it does the CONNECT, with header (the token and tenant,
// for the gateway only).
func (p *Proxy) dialRoute(ctx context.Context, r pac.Route, target string, header http.Header) (net.Conn, error) {
	switch r.Kind {
	case pac.Direct:
		return p.o.Dial(ctx, "tcp", target)
	case pac.HTTP, pac.HTTPS:
		dial := p.o.Dial
		if r.Kind == pac.HTTPS {
			dial = p.dialTLS
		}
		c, err := dial(ctx, "tcp", r.Addr())
		if err != nil {
			return nil, err
		}
		conn, err := connectThrough(ctx, c, target, header)
		if err != nil {
			c.Close()
			return nil, err
		}
		return conn, nil
	case pac.SOCKS5:
		// The SOCKS dialer wraps the socket in a type of its own (which
		// only adds the bound address): the socket itself, once the
		// handshake is done, is what the relay can wait on and half-close.
		var sock net.Conn
		d, err := xproxy.SOCKS5("tcp", r.Addr(), nil, dialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := p.o.Dial(ctx, network, addr)
			sock = c
			return c, err
		}))
		if err != nil {
			return nil, err
		}
		if _, err := d.(xproxy.ContextDialer).DialContext(ctx, "tcp", target); err != nil {
			return nil, err
		}
		return sock, nil
	case pac.SOCKS4:
		c, err := p.o.Dial(ctx, "tcp", r.Addr())
		if err != nil {
			return nil, err
		}
		if d, ok := ctx.Deadline(); ok {
			c.SetDeadline(d)
			defer c.SetDeadline(noDeadline)
		}
		if err := socks4Connect(c, target); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("proxy: route %v not supported", r)
}

// dialTLS connects to an HTTPS proxy at addr: TLS to the proxy itself,
// verified with ProxyRoots.
func (p *Proxy) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	c, err := p.o.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, &tls.Config{ServerName: strings.Trim(host, "[]"), RootCAs: p.o.ProxyRoots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// connectThrough asks an HTTP proxy on c for a tunnel to target.
func connectThrough(ctx context.Context, c net.Conn, target string, header http.Header) (net.Conn, error) {
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: header.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
		defer c.SetDeadline(noDeadline)
	}
	if err := req.Write(c); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		// The explanation (a block's reason and reference) is kept for
		// the client; what is left of it is not read.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, refusalBodyMax))
		resp.Body.Close()
		return nil, &refusal{code: resp.StatusCode, status: resp.Status, body: body}
	}
	resp.Body.Close()
	if n := br.Buffered(); n > 0 {
		// What the proxy sent after its 200 is the tunnel's first bytes.
		// A copy of them, not the reader's 4 KiB, stays with the tunnel.
		ahead, _ := br.Peek(n)
		return &bufferedConn{Conn: c, buf: bytes.Clone(ahead)}, nil
	}
	return c, nil
}

// refusal is a proxy's answer other than 2xx to a CONNECT: the proxy is up
// and its answer stands. It goes back to the client (a gateway's 403 block
// stays a 403 with its reason and reference), except a 407: see
// connectFailed.
type refusal struct {
	code   int
	status string
	body   []byte // the start of the proxy's explanation
}

// refusalBodyMax bounds what is kept of a refusal's explanation.
const refusalBodyMax = 4 << 10

func (e *refusal) Error() string { return "proxy: upstream answered " + e.status }

// socks4Connect does a SOCKS4a CONNECT (the host name is resolved by the
// SOCKS server, so the client leaks no DNS).
func socks4Connect(c net.Conn, target string) error {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("proxy: SOCKS4 target port %q", portStr)
	}
	msg := []byte{4, 1, 0, 0}
	binary.BigEndian.PutUint16(msg[2:], uint16(port))
	if ip := net.ParseIP(host).To4(); ip != nil {
		msg = append(msg, ip...)
		msg = append(msg, 0)
	} else {
		msg = append(msg, 0, 0, 0, 1, 0)
		msg = append(msg, host...)
		msg = append(msg, 0)
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	var reply [8]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return err
	}
	if reply[1] != 0x5a {
		return fmt.Errorf("proxy: SOCKS4 server refused (code %#x)", reply[1])
	}
	return nil
}

// noDeadline clears a deadline.
var noDeadline time.Time
