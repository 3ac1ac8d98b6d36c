package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigie/agent/identity"
	"vigie/pac"

	"vigie/agent/internal/loopback"
)

// testHosts maps the test's host names to loopback servers, for every hop
// (the proxy under test, the upstream proxies, the SOCKS server): loopback
// addresses themselves would take Chromium's implicit DIRECT bypass.
var testHosts sync.Map // "host:port" → "127.0.0.1:port"

func testDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if to, ok := testHosts.Load(addr); ok {
		addr = to.(string)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// hop records what a server on the chain saw.
type hop struct {
	mu     sync.Mutex
	seen   []http.Header
	reqs   []string                   // method, host and path of each request, as in seen
	tokens map[string]map[string]bool // client address → the tokens on its requests
}

func (h *hop) add(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, r.Header.Clone())
	h.reqs = append(h.reqs, r.Method+" "+r.Host+r.URL.Path)
	if h.tokens == nil {
		h.tokens = map[string]map[string]bool{}
	}
	if h.tokens[r.RemoteAddr] == nil {
		h.tokens[r.RemoteAddr] = map[string]bool{}
	}
	h.tokens[r.RemoteAddr][r.Header.Get("Proxy-Authorization")] = true
}

// sharedConns returns the connections that carried more than one token
// (or a token and none).
func (h *hop) sharedConns() map[string]map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	shared := map[string]map[string]bool{}
	for addr, toks := range h.tokens {
		if len(toks) > 1 {
			shared[addr] = toks
		}
	}
	return shared
}

func (h *hop) sawToken(tok string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hd := range h.seen {
		if strings.Contains(fmt.Sprint(hd), tok) {
			return true
		}
	}
	return false
}

func (h *hop) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// upstream is a forward proxy on loopback (the gateway, or some other proxy
// a PAC names) that records each CONNECT and request and tunnels to the
// origin itself.
func upstream(t *testing.T, h *hop, deny bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.add(r)
		if deny {
			w.Header().Set("Proxy-Authenticate", `Bearer realm="vigie"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		if r.Method == http.MethodConnect {
			dst, err := testDial(r.Context(), "tcp", r.Host)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c, brw, _ := w.(http.Hijacker).Hijack()
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			go func() { io.Copy(dst, brw); dst.Close() }()
			io.Copy(c, dst)
			c.Close()
			return
		}
		r.RequestURI = ""
		r.Header.Del("Proxy-Authorization")
		resp, err := (&http.Transport{DialContext: testDial}).RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		// Streams stream: each piece is passed on as it comes.
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// socks5 is a minimal SOCKS5 server (no auth, CONNECT) that counts
// connections.
func socks5(t *testing.T, n *atomic.Int32) string {
	addr := loopback.Serve(t, func(c net.Conn) {
		n.Add(1)
		buf := make([]byte, 262)
		io.ReadFull(c, buf[:2])
		io.ReadFull(c, buf[:buf[1]])
		c.Write([]byte{5, 0})
		io.ReadFull(c, buf[:4])
		var host string
		switch buf[3] {
		case 1:
			io.ReadFull(c, buf[:4])
			host = net.IP(buf[:4]).String()
		case 3:
			io.ReadFull(c, buf[:1])
			l := int(buf[0])
			io.ReadFull(c, buf[:l])
			host = string(buf[:l])
		}
		io.ReadFull(c, buf[:2])
		port := binary.BigEndian.Uint16(buf[:2])
		dst, err := testDial(context.Background(), "tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil {
			c.Write([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
			return
		}
		defer dst.Close()
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		go io.Copy(dst, c)
		io.Copy(c, dst)
	})
	return addr
}

type tokens struct {
	mu      sync.Mutex
	byUser  map[string]string
	logins  []string
	logouts []string
}

func (k *tokens) Logout(_ context.Context, u string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.logouts = append(k.logouts, u)
	delete(k.byUser, u)
	return nil
}

func (k *tokens) Token(u string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t, ok := k.byUser[u]; ok {
		return t, nil
	}
	return "", errors.New("needs login")
}

func (k *tokens) BeginLoginReturn(u, ret string) (string, error) {
	k.mu.Lock()
	k.logins = append(k.logins, u)
	k.mu.Unlock()
	return "https://platform.example/t/demo/oauth/authorize?user=" + u, nil
}

func (k *tokens) Callback(w http.ResponseWriter, r *http.Request, u string) {
	fmt.Fprintf(w, "callback for %s with state %s", u, r.URL.Query().Get("state"))
}

type harness struct {
	t        *testing.T
	p        *Proxy
	addr     string
	cfg      atomic.Pointer[Config]
	routing  atomic.Int32
	user     atomic.Pointer[identity.User]
	origin   *httptest.Server
	tlsOrig  *httptest.Server
	originH  *hop
	gatewayH *hop
	gateway  string
	tok      *tokens
}

func newHarness(t *testing.T, onlyUser string) *harness { return newHarnessWith(t, onlyUser, nil) }

// newHarnessWith is newHarness with the proxy's options changed by tweak.
func newHarnessWith(t *testing.T, onlyUser string, tweak func(*Options)) *harness {
	h := &harness{t: t, originH: &hop{}, gatewayH: &hop{}, tok: &tokens{byUser: map[string]string{"1000": "tok-alice", "1001": "tok-bob"}}}
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.originH.add(r)
		fmt.Fprintf(w, "origin %s", r.URL.Path)
	})
	h.origin = httptest.NewServer(rec)
	h.tlsOrig = httptest.NewTLSServer(rec)
	t.Cleanup(func() { h.origin.Close(); h.tlsOrig.Close() })
	testHosts.Store("origin.example:80", h.origin.Listener.Addr().String())
	testHosts.Store("origin.example:443", h.tlsOrig.Listener.Addr().String())
	h.gateway = upstream(t, h.gatewayH, false)
	h.user.Store(&identity.User{ID: "1000", Name: "alice"})
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + h.gateway + `"; }`)
	o := Options{
		Owner:    func(_, _ netip.AddrPort) (identity.User, error) { return *h.user.Load(), nil },
		OnlyUser: onlyUser,
		Tokens:   h.tok,
		Config:   func() *Config { return h.cfg.Load() },
		Routing:  func(string) Routing { return Routing(h.routing.Load()) },
		Dial:     testDial,
		Port:     4129,
		Status: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := UserFrom(r.Context())
			fmt.Fprint(w, "status of "+u.ID)
		}),
	}
	if tweak != nil {
		tweak(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	lns, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lns[0].Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	go p.Serve(ctx, lns...)
	t.Cleanup(cancel)
	return h
}

func (h *harness) setPAC(src string) {
	s, err := pac.New([]byte(src), pac.Options{CacheTTL: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	h.cfg.Store(&Config{Tenant: "demo", Gateway: h.gateway, PAC: s})
}

func (h *harness) client() *http.Client {
	u, _ := url.Parse("http://" + h.addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (h *harness) get(u string) (int, string, error) {
	resp, err := h.client().Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestTokenOnlyToTheGateway: through the gateway each user's own token
// goes with CONNECT and plain requests; through any other proxy, or
// DIRECT, no token is sent, and no origin ever sees one.
func TestTokenOnlyToTheGateway(t *testing.T) {
	h := newHarness(t, "")
	for _, u := range []string{"http://origin.example" + "/plain", "https://origin.example" + "/tls"} {
		if code, body, err := h.get(u); err != nil || code != 200 || !strings.HasPrefix(body, "origin /") {
			t.Fatalf("%s via the gateway: %d %q %v", u, code, body, err)
		}
	}
	if h.gatewayH.count() != 2 || !h.gatewayH.sawToken("Bearer tok-alice") {
		t.Fatalf("the gateway saw %v", h.gatewayH.seen)
	}
	for _, hd := range h.gatewayH.seen {
		if hd.Get("X-Vigie-Tenant") != "demo" || hd.Get("X-Vigie-Agent-Port") != "4129" {
			t.Errorf("gateway request without the tenant or the agent's port: %v", hd)
		}
	}
	// Bob's connections carry bob's token, never alice's.
	h.user.Store(&identity.User{ID: "1001", Name: "bob"})
	h.get("https://origin.example" + "/bob")
	last := h.gatewayH.seen[len(h.gatewayH.seen)-1]
	if last.Get("Proxy-Authorization") != "Bearer tok-bob" {
		t.Fatalf("bob's request carried %q", last.Get("Proxy-Authorization"))
	}
	// Plain requests of two users alternating: each user's requests go on
	// connections of their own to the gateway.
	for i := range 6 {
		h.user.Store(&[]identity.User{{ID: "1000", Name: "alice"}, {ID: "1001", Name: "bob"}}[i%2])
		if code, _, err := h.get(fmt.Sprintf("http://origin.example/alternate%d", i)); err != nil || code != 200 {
			t.Fatalf("alternating users: %d %v", code, err)
		}
	}
	if shared := h.gatewayH.sharedConns(); len(shared) > 0 {
		t.Fatalf("connections to the gateway carried several users' tokens: %v", shared)
	}
	// Another proxy named by the PAC gets no token, nor does DIRECT.
	other := &hop{}
	otherAddr := upstream(t, other, false)
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + otherAddr + `"; }`)
	h.get("http://origin.example" + "/other-plain")
	h.get("https://origin.example" + "/other-tls")
	if other.count() != 2 || other.sawToken("tok-") || other.sawToken("X-Vigie") {
		t.Fatalf("the other proxy saw %v", other.seen)
	}
	h.setPAC(`function FindProxyForURL(url, host) { return "DIRECT"; }`)
	h.get("http://origin.example" + "/direct")
	if h.originH.sawToken("tok-") {
		t.Fatal("an origin saw a token")
	}
	// A proxy on the gateway's host with another port is not the gateway.
	ghost, _, _ := net.SplitHostPort(h.gateway)
	h.cfg.Store(&Config{Tenant: "demo", Gateway: ghost + ":1", PAC: h.cfg.Load().PAC})
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + otherAddr + `"; }`)
	if isGateway(pac.Route{Kind: pac.HTTP, Host: ghost, Port: 2}, &Config{Gateway: ghost + ":1"}) {
		t.Fatal("a different port counted as the gateway")
	}
}

// TestGatewayChangeLive: the signed configuration moves the gateway while
// alice has pooled connections and an open tunnel to the old one. From
// the change on, the old address gets no token, plain or CONNECT, even
// where the PAC still names it; the new one gets them.
func TestGatewayChangeLive(t *testing.T) {
	h := newHarness(t, "")
	c := h.client()
	get := func(u string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", u, resp.Status)
		}
	}
	for i := range 3 {
		get(fmt.Sprintf("http://origin.example/before-%d", i))
	}
	tunnel, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tunnel.Close()
	tunnel.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(tunnel, "CONNECT origin.example:80 HTTP/1.1\r\nHost: origin.example:80\r\n\r\n")
	br := bufio.NewReader(tunnel)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tunnel: %v %v", resp, err)
	}
	before := h.gatewayH.count()
	if !h.gatewayH.sawToken("Bearer tok-alice") {
		t.Fatal("the gateway had no token before the change")
	}

	newGW := &hop{}
	newAddr := upstream(t, newGW, false)
	old := h.gateway
	h.cfg.Store(&Config{Tenant: "demo", Gateway: newAddr, PAC: h.cfg.Load().PAC}) // the PAC still names the old one
	for i := range 3 {
		get(fmt.Sprintf("http://origin.example/after-%d", i))
	}
	get("https://origin.example/after-tls")
	h.gatewayH.mu.Lock()
	after := h.gatewayH.seen[before:]
	h.gatewayH.mu.Unlock()
	if len(after) != 4 {
		t.Fatalf("the old gateway saw %d requests after the change", len(after))
	}
	for _, hd := range after {
		if hd.Get("Proxy-Authorization") != "" || hd.Get("X-Vigie-Tenant") != "" {
			t.Errorf("the old gateway got %v after the change", hd)
		}
	}
	// The tunnel opened before the change still works.
	fmt.Fprint(tunnel, "GET /in-the-old-tunnel HTTP/1.1\r\nHost: origin.example\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("the tunnel opened before the change: %v %v", resp, err)
	}

	s, err := pac.New([]byte(`function FindProxyForURL(url, host) { return "PROXY `+newAddr+`; PROXY `+old+`"; }`), pac.Options{CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.Store(&Config{Tenant: "demo", Gateway: newAddr, PAC: s})
	get("http://origin.example/new-gateway")
	// (c keeps its tunnel through the old gateway: a new client.)
	if code, _, err := h.get("https://origin.example/new-gateway-tls"); err != nil || code != 200 {
		t.Fatalf("CONNECT through the new gateway: %d %v", code, err)
	}
	if newGW.count() != 2 || newGW.seen[0].Get("Proxy-Authorization") != "Bearer tok-alice" || newGW.seen[1].Get("Proxy-Authorization") != "Bearer tok-alice" {
		t.Errorf("the new gateway saw %v", newGW.seen)
	}
}

// TestTwoUsersAtOnce: alice (signed in) and carol (no token) browse at the
// same time, plain requests and tunnels over keep-alive connections from
// 127.0.0.1 and 127.0.0.2 (the owner lookup tells them apart by address).
// Every gateway request of alice's carries her token, none of carol's
// carries any, and no connection to the gateway carries both.
func TestTwoUsersAtOnce(t *testing.T) {
	h := newHarnessWith(t, "", func(o *Options) {
		o.Owner = func(client, _ netip.AddrPort) (identity.User, error) {
			if client.Addr() == netip.MustParseAddr("127.0.0.2") {
				return identity.User{ID: "1002", Name: "carol"}, nil
			}
			return identity.User{ID: "1000", Name: "alice"}, nil
		}
	})
	for _, name := range []string{"alice", "carol"} {
		testHosts.Store(name+".example:443", h.tlsOrig.Listener.Addr().String())
		testHosts.Store(name+".example:80", h.origin.Listener.Addr().String())
	}
	proxyURL, _ := url.Parse("http://" + h.addr)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, u := range []struct{ name, from string }{{"alice", "127.0.0.1"}, {"carol", "127.0.0.2"}} {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(u.from)}}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: d.DialContext,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 4}}
		for g := range 4 {
			wg.Go(func() {
				for i := range 16 {
					scheme := []string{"http", "https"}[i%2]
					resp, err := c.Get(fmt.Sprintf("%s://%s.example/%s-%d-%d", scheme, u.name, u.name, g, i))
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.gatewayH.mu.Lock()
	seen, reqs := h.gatewayH.seen, h.gatewayH.reqs
	h.gatewayH.mu.Unlock()
	n := map[string]int{}
	for i, hd := range seen {
		who := "alice"
		if strings.Contains(reqs[i], "carol") {
			who = "carol"
		}
		n[strings.Fields(reqs[i])[0]+" "+who]++
		want := map[string]string{"alice": "Bearer tok-alice", "carol": ""}[who]
		if got := hd.Get("Proxy-Authorization"); got != want {
			t.Errorf("%s's request %s carried %q", who, reqs[i], got)
		}
	}
	// Every plain request reaches the gateway; tunnels carry several
	// requests each.
	if n["GET alice"] != 32 || n["GET carol"] != 32 || n["CONNECT alice"] == 0 || n["CONNECT carol"] == 0 {
		t.Errorf("the gateway saw %v", n)
	}
	if shared := h.gatewayH.sharedConns(); len(shared) > 0 {
		t.Errorf("connections to the gateway carried several users' tokens: %v", shared)
	}
}

// TestFailover: a dead first proxy falls back to the next route, and is
// skipped afterwards.
func TestFailover(t *testing.T) {
	h := newHarness(t, "")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + deadAddr + `; PROXY ` + h.gateway + `; DIRECT"; }`)
	for i := 0; i < 3; i++ {
		if code, _, err := h.get("https://origin.example" + fmt.Sprintf("/f%d", i)); err != nil || code != 200 {
			t.Fatalf("failover %d: %d %v", i, code, err)
		}
	}
	if got := h.p.demoteBad([]pac.Route{{Kind: pac.HTTP, Host: "127.0.0.1", Port: portOf(deadAddr)}, {Kind: pac.Direct}}); got[0].Kind != pac.Direct {
		t.Fatalf("the dead proxy was not demoted: %v", got)
	}
	// SOCKS5 works, as a route of its own.
	var n atomic.Int32
	s5 := socks5(t, &n)
	h.setPAC(`function FindProxyForURL(url, host) { return "SOCKS5 ` + s5 + `"; }`)
	for _, u := range []string{"http://origin.example" + "/s5", "https://origin.example" + "/s5tls"} {
		if code, body, err := h.get(u); err != nil || code != 200 || !strings.Contains(body, "s5") {
			t.Fatalf("SOCKS5 %s: %d %q %v", u, code, body, err)
		}
	}
	if n.Load() < 2 {
		t.Fatalf("SOCKS5 server saw %d connections", n.Load())
	}
}

func portOf(addr string) uint16 {
	ap := netip.MustParseAddrPort(addr)
	return ap.Port()
}

func TestContinuity(t *testing.T) {
	h := newHarness(t, "")
	h.routing.Store(int32(AllDirect))
	if code, _, err := h.get("https://origin.example" + "/open"); err != nil || code != 200 || h.gatewayH.count() != 0 {
		t.Fatalf("fail-open: %d %v, gateway saw %d", code, err, h.gatewayH.count())
	}
	h.routing.Store(int32(Refuse))
	req, _ := http.NewRequest("GET", "http://origin.example"+"/closed", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := h.client().Do(req)
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("fail-closed page: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Web access is paused") {
		t.Errorf("fail-closed page: %s", body)
	}
	if _, _, err := h.get("https://origin.example" + "/closed"); err == nil {
		t.Error("fail-closed CONNECT was let through")
	}
	// What the PAC sends DIRECT still works when closed (the intranet).
	h.setPAC(`function FindProxyForURL(url, host) { return "DIRECT"; }`)
	if code, _, err := h.get("http://origin.example" + "/intranet"); err != nil || code != 200 {
		t.Errorf("DIRECT under fail-closed: %d %v", code, err)
	}
}

func TestNoTokenGoesThroughWithTenantAndStartsLogin(t *testing.T) {
	h := newHarness(t, "")
	h.user.Store(&identity.User{ID: "1002", Name: "carol"})
	h.get("http://origin.example" + "/nologin")
	last := h.gatewayH.seen[len(h.gatewayH.seen)-1]
	if last.Get("Proxy-Authorization") != "" || last.Get("X-Vigie-Tenant") != "demo" {
		t.Fatalf("a request without a token carried %v", last)
	}
	if len(h.tok.logins) == 0 || h.tok.logins[0] != "1002" {
		t.Fatalf("no login started: %v", h.tok.logins)
	}
}

func TestUserModeRefusesOthers(t *testing.T) {
	h := newHarness(t, "1000")
	if code, _, _ := h.get("http://origin.example" + "/mine"); code != 200 {
		t.Fatalf("own user: %d", code)
	}
	h.user.Store(&identity.User{ID: "1001"})
	if code, _, _ := h.get("http://origin.example" + "/theirs"); code != http.StatusForbidden {
		t.Fatalf("another user in user mode: %d", code)
	}
}

func TestLocalEndpoints(t *testing.T) {
	h := newHarness(t, "")
	base := "http://" + h.addr
	resp, err := http.Get(base + "/proxy.pac")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"PROXY 127.0.0.1:`+fmt.Sprint(portOf(h.addr))+`"`) || strings.Contains(string(body), "; DIRECT") {
		t.Errorf("proxy.pac: %s", body)
	}
	if _, err := pac.New(body, pac.Options{}); err != nil {
		t.Errorf("the served proxy.pac does not compile: %v", err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = noFollow.Get(base + "/login?return=https://x.example/")
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "user=1000") {
		t.Errorf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]string{"/callback?state=s1": "callback for 1000 with state s1", "/status": "status of 1000"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: %q", path, b)
		}
	}

	// A page's cross-origin form post cannot sign the user out; the CLI can.
	resp, err = http.Post(base+"/logout", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without %s: %d", LocalHeader, resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+"/logout", nil)
	req.Header.Set(LocalHeader, "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h.tok.mu.Lock()
	defer h.tok.mu.Unlock()
	if resp.StatusCode != http.StatusNoContent || len(h.tok.logouts) != 1 || h.tok.logouts[0] != "1000" {
		t.Errorf("logout: %d, logouts %v", resp.StatusCode, h.tok.logouts)
	}
}

// TestServedPAC evaluates the proxy.pac the agent gives browsers, fetched
// over 127.0.0.1, localhost and ::1: Chromium's implicit bypass goes
// DIRECT, everything else to the agent at the address the PAC came from
// (the IPv6 form in brackets), with no DIRECT fallback; and a client that
// follows each answer reaches the agent.
func TestServedPAC(t *testing.T) {
	h := newHarness(t, "")
	port := fmt.Sprint(portOf(h.addr))
	cases := []struct{ base, proxy string }{
		{"http://127.0.0.1:" + port, "127.0.0.1:" + port},
		{"http://localhost:" + port, "127.0.0.1:" + port},
		{"http://[::1]:" + port, "[::1]:" + port},
	}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		cases = cases[:2] // no IPv6 here: the agent listens on 127.0.0.1 only
	} else {
		ln.Close()
	}
	for _, tc := range cases {
		resp, err := http.Get(tc.base + "/proxy.pac")
		if err != nil {
			t.Fatal(err)
		}
		src, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-ns-proxy-autoconfig" {
			t.Errorf("%s: Content-Type %q", tc.base, ct)
		}
		script, err := pac.New(src, pac.Options{})
		if err != nil {
			t.Fatalf("%s: the served proxy.pac does not compile: %v", tc.base, err)
		}
		for url, host := range map[string]string{"http://localhost:8080/": "localhost", "http://app.localhost/": "app.localhost",
			"http://127.0.0.1/": "127.0.0.1", "http://127.1.2.3:9000/": "127.1.2.3", "http://[::1]/": "::1",
			"https://www.example.com/": "www.example.com", "http://10.0.0.1/": "10.0.0.1", "http://[2001:db8::1]/": "2001:db8::1",
			"http://[::1]:8080/": "[::1]"} { // (some browsers pass the bracketed form)
			res, err := script.Eval(t.Context(), url, host)
			want := "PROXY " + tc.proxy
			if implicitDirect(strings.Trim(host, "[]")) {
				want = "DIRECT"
			}
			if err != nil || res.Raw != want {
				t.Errorf("%s: FindProxyForURL(%s) = %q, %v; want %q", tc.base, url, res.Raw, err, want)
			}
		}
		res, _ := script.Eval(t.Context(), "http://origin.example/", "origin.example")
		if len(res.Routes) != 1 {
			t.Fatalf("%s: %q", tc.base, res.Raw)
		}
		proxyURL := &url.URL{Scheme: "http", Host: net.JoinHostPort(res.Routes[0].Host, fmt.Sprint(res.Routes[0].Port))}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
		resp, err = c.Get("http://origin.example/via-" + res.Routes[0].Host)
		if err != nil {
			t.Fatalf("%s: through %s: %v", tc.base, proxyURL, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: through %s: %s", tc.base, proxyURL, resp.Status)
		}
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	lns, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns {
		ap := netip.MustParseAddrPort(ln.Addr().String())
		if !ap.Addr().IsLoopback() {
			t.Errorf("listening on %s", ap)
		}
		ln.Close()
	}
	if !implicitDirect("localhost") || !implicitDirect("a.localhost") || !implicitDirect("127.0.0.5") || !implicitDirect("169.254.1.1") ||
		!implicitDirect("::1") || implicitDirect("example.com") || implicitDirect("10.0.0.1") {
		t.Error("implicitDirect")
	}
}

// connectRaw sends a CONNECT to the agent and returns its answer.
func (h *harness) connectRaw(target string) (*http.Response, string) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	req := &http.Request{Method: http.MethodConnect}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		h.t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestGatewayRefusalsReachTheClient: a gateway's block keeps its status and
// its reason (with the reference that matches the access log); a 407 (no
// valid token) becomes a 403 that says to sign in, and starts the sign-in;
// a gateway that cannot be reached is a 502 that says so. Plain requests
// refused with a 407 get the same 403.
func TestGatewayRefusalsReachTheClient(t *testing.T) {
	h := newHarness(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "blocked.example") {
			http.Error(w, "Vigie blocked blocked.example: gambling (reference 0a1b2c3d4e5f)", http.StatusForbidden)
			return
		}
		w.Header().Set("Proxy-Authenticate", `Bearer realm="vigie"`)
		http.Error(w, "token expired", http.StatusProxyAuthRequired)
	})}
	go refusing.Serve(ln)
	t.Cleanup(func() { refusing.Close() })
	h.gateway = ln.Addr().String()
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + h.gateway + `; DIRECT"; }`)

	resp, body := h.connectRaw("blocked.example:443")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "gambling (reference 0a1b2c3d4e5f)") {
		t.Errorf("block: %d %q", resp.StatusCode, body)
	}
	if h.originH.count() != 0 {
		t.Error("a block was answered by trying DIRECT")
	}

	h.tok.mu.Lock()
	before := len(h.tok.logins)
	h.tok.mu.Unlock()
	resp, body = h.connectRaw("origin.example:443")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Proxy-Authenticate") != "" || !strings.Contains(body, "sign-in required") {
		t.Errorf("407 from the gateway: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	h.tok.mu.Lock()
	after := len(h.tok.logins)
	h.tok.mu.Unlock()
	if after <= before {
		t.Error("a 407 from the gateway started no sign-in")
	}
	if code, body, err := h.get("http://origin.example/api"); err != nil || code != http.StatusForbidden || !strings.Contains(body, "sign-in required") {
		t.Errorf("plain request refused with 407: %d %q %v", code, body, err)
	}

	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + deadAddr + `"; }`)
	resp, body = h.connectRaw("origin.example:443")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not reach origin.example:443") {
		t.Errorf("unreachable gateway: %d %q", resp.StatusCode, body)
	}
}
