package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigie/agent/internal/loopback"
)

// TestFailoverKeepsTheTokenBehind: when the gateway cannot be reached and
// the PAC's next route is another proxy or DIRECT, the request goes there
// without the token and the tenant the gateway would have had.
func TestFailoverKeepsTheTokenBehind(t *testing.T) {
	h := newHarness(t, "")
	other := &hop{}
	otherAddr := upstream(t, other, false)
	for _, next := range []string{"PROXY " + otherAddr, "DIRECT"} {
		// A gateway of its own for each case: the one before is marked
		// bad, and would be tried last.
		gw := deadAddr(t)
		h.gateway = gw
		h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + gw + `; ` + next + `"; }`)
		for _, u := range []string{"http://origin.example/after-" + next[:5], "https://origin.example/tls-after-" + next[:5]} {
			if code, _, err := h.get(u); err != nil || code != http.StatusOK {
				t.Fatalf("%s with the gateway down, then %s: %d %v", u, next, code, err)
			}
		}
	}
	if other.count() != 2 || other.sawToken("tok-") || other.sawToken("X-Vigie") {
		t.Errorf("the next proxy saw %v", other.seen)
	}
	if h.originH.sawToken("tok-") || h.originH.sawToken("X-Vigie") {
		t.Errorf("an origin saw %v", h.originH.seen)
	}
}

// socks4 is a minimal SOCKS4a server (CONNECT) that records the targets
// it was asked for.
func socks4(t *testing.T) (addr string, targets func() []string) {
	var mu sync.Mutex
	var seen []string
	addr = loopback.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 4 || hdr[1] != 1 {
			return
		}
		if _, err := br.ReadString(0); err != nil { // user ID
			return
		}
		host := net.IP(hdr[4:8]).String()
		if hdr[4] == 0 && hdr[5] == 0 && hdr[6] == 0 && hdr[7] != 0 { // 4a: the name follows
			name, err := br.ReadString(0)
			if err != nil {
				return
			}
			host = strings.TrimSuffix(name, "\x00")
		}
		target := net.JoinHostPort(host, fmt.Sprint(binary.BigEndian.Uint16(hdr[2:4])))
		mu.Lock()
		seen = append(seen, target)
		mu.Unlock()
		dst, err := testDial(context.Background(), "tcp", target)
		if err != nil {
			c.Write([]byte{0, 0x5b, 0, 0, 0, 0, 0, 0})
			return
		}
		defer dst.Close()
		c.Write([]byte{0, 0x5a, 0, 0, 0, 0, 0, 0})
		go func() { io.Copy(dst, br); dst.Close() }()
		io.Copy(c, dst)
	})
	return addr, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestSOCKS4: "SOCKS host:port" is SOCKS4a, for plain requests and
// tunnels; the host name goes to the SOCKS server (no DNS lookup on the
// client's side), and nothing of the user's does.
func TestSOCKS4(t *testing.T) {
	h := newHarness(t, "")
	s4, targets := socks4(t)
	h.setPAC(`function FindProxyForURL(url, host) { return "SOCKS ` + s4 + `"; }`)
	for _, u := range []string{"http://origin.example/s4", "https://origin.example/s4tls"} {
		if code, body, err := h.get(u); err != nil || code != 200 || !strings.Contains(body, "s4") {
			t.Fatalf("SOCKS4 %s: %d %q %v", u, code, body, err)
		}
	}
	if got := targets(); len(got) != 2 || got[0] != "origin.example:80" || got[1] != "origin.example:443" {
		t.Errorf("the SOCKS4 server was asked for %v", got)
	}
	if h.gatewayH.count() != 0 || h.originH.sawToken("tok-") {
		t.Error("a token went somewhere")
	}
}

// TestHTTPSProxy: "HTTPS host:port" speaks TLS to the proxy (verified
// with ProxyRoots), for plain requests and tunnels; as the tenant's
// gateway it gets the token, inside that TLS, and as another proxy it
// does not.
func TestHTTPSProxy(t *testing.T) {
	tlsHop := &hop{}
	plain := upstream(t, tlsHop, false)
	// The TLS proxy: the same proxy behind a TLS listener whose
	// certificate names example.com.
	front := httptest.NewUnstartedServer(nil)
	front.StartTLS()
	front.Listener.Close()
	tlsProxy := loopback.Serve(t, func(c net.Conn) {
		tc := tls.Server(c, front.TLS)
		defer tc.Close()
		back, err := net.Dial("tcp", plain)
		if err != nil {
			return
		}
		defer back.Close()
		go func() { io.Copy(back, tc); back.(*net.TCPConn).CloseWrite() }()
		io.Copy(tc, back)
	})
	proxyAddr := "example.com:" + fmt.Sprint(portOf(tlsProxy))
	testHosts.Store(proxyAddr, tlsProxy)
	roots := x509.NewCertPool()
	roots.AddCert(front.Certificate())

	h := newHarnessWith(t, "", func(o *Options) { o.ProxyRoots = roots })
	h.setPAC(`function FindProxyForURL(url, host) { return "HTTPS ` + proxyAddr + `"; }`)
	for _, u := range []string{"http://origin.example/https-proxy", "https://origin.example/https-proxy-tunnel"} {
		if code, body, err := h.get(u); err != nil || code != 200 || !strings.Contains(body, "https-proxy") {
			t.Fatalf("through an HTTPS proxy, %s: %d %q %v", u, code, body, err)
		}
	}
	if tlsHop.count() != 2 || tlsHop.sawToken("tok-") {
		t.Fatalf("the HTTPS proxy (not the gateway) saw %v", tlsHop.seen)
	}
	// The same proxy as the tenant's gateway.
	h.gateway = proxyAddr
	h.setPAC(`function FindProxyForURL(url, host) { return "HTTPS ` + proxyAddr + `"; }`)
	for _, u := range []string{"http://origin.example/gw-plain", "https://origin.example/gw-tunnel"} {
		if code, _, err := h.get(u); err != nil || code != 200 {
			t.Fatalf("through the gateway over HTTPS, %s: %d %v", u, code, err)
		}
	}
	if last := tlsHop.seen[len(tlsHop.seen)-2:]; last[0].Get("Proxy-Authorization") != "Bearer tok-alice" || last[1].Get("Proxy-Authorization") != "Bearer tok-alice" {
		t.Errorf("the gateway over HTTPS saw %v", last)
	}
	// A proxy whose certificate does not verify is a failed route.
	h2 := newHarness(t, "")
	h2.setPAC(`function FindProxyForURL(url, host) { return "HTTPS ` + proxyAddr + `"; }`)
	for _, u := range []string{"http://origin.example/untrusted", "https://origin.example/untrusted"} {
		if code, _, _ := h2.get(u); code == http.StatusOK {
			t.Errorf("%s through an HTTPS proxy with an unknown certificate: 200", u)
		}
	}
	if tlsHop.count() != 4 {
		t.Errorf("an HTTPS proxy with an unknown certificate got requests: %v", tlsHop.reqs)
	}
}

// TestBadProxyRetried: a proxy that failed is skipped (the next route is
// used without trying it) for BadProxyTTL, then tried again, and used
// once it works.
func TestBadProxyRetried(t *testing.T) {
	// A proxy that is down, at an address it comes back on later.
	addr := deadAddr(t)
	var skew atomic.Int64
	var dials atomic.Int32
	h := newHarnessWith(t, "", func(o *Options) {
		o.BadProxyTTL = 5 * time.Minute
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		o.Dial = func(ctx context.Context, network, a string) (net.Conn, error) {
			if a == addr {
				dials.Add(1)
			}
			return testDial(ctx, network, a)
		}
	})
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + addr + `; DIRECT"; }`)
	if code, _, err := h.get("http://origin.example/first"); err != nil || code != 200 || dials.Load() != 1 {
		t.Fatalf("with the first proxy down: %d %v, %d dials to it", code, err, dials.Load())
	}
	// It comes back; within the TTL it is not tried.
	back := &hop{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		back.add(r)
		fmt.Fprint(w, "the proxy is back")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	skew.Store(int64(4 * time.Minute))
	for _, u := range []string{"http://origin.example/within-ttl", "https://origin.example/within-ttl"} {
		if code, _, err := h.get(u); err != nil || code != 200 {
			t.Fatalf("%s: %d %v", u, code, err)
		}
	}
	if dials.Load() != 1 || back.count() != 0 {
		t.Fatalf("the bad proxy was tried again within its TTL: %d dials", dials.Load())
	}
	// After the TTL it comes first again.
	skew.Store(int64(5*time.Minute + time.Second))
	if code, body, err := h.get("http://origin.example/after-ttl"); err != nil || code != 200 || body != "the proxy is back" {
		t.Fatalf("after the TTL: %d %q %v", code, body, err)
	}
	if back.count() != 1 {
		t.Errorf("the proxy saw %v", back.reqs)
	}
}

// TestHungProxy: a proxy that accepts connections and never answers a
// CONNECT (or a TLS or SOCKS handshake) is a failed route after
// HandshakeTimeout; the next route is used.
func TestHungProxy(t *testing.T) {
	h := newHarnessWith(t, "", func(o *Options) { o.HandshakeTimeout = 200 * time.Millisecond })
	hung := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	for _, kind := range []string{"PROXY", "SOCKS", "SOCKS5", "HTTPS"} {
		h.setPAC(`function FindProxyForURL(url, host) { return "` + kind + ` ` + hung + `; DIRECT"; }`)
		urls := []string{"https://origin.example/hung-" + kind}
		if kind != "PROXY" {
			// A plain request through an HTTP proxy waits for the
			// origin's answer, which may be slow: only the others.
			urls = append(urls, "http://origin.example/hung-"+kind)
		}
		for _, u := range urls {
			start := time.Now()
			code, body, err := h.get(u)
			if err != nil || code != 200 || !strings.Contains(body, "hung-") {
				t.Fatalf("%s with a hung %s proxy first: %d %q %v after %v", u, kind, code, body, err, time.Since(start))
			}
			h.p.badMu.Lock()
			clear(h.p.bad)
			h.p.badMu.Unlock()
		}
	}
}
