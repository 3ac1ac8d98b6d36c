package service

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/agent/proxy"
	"vigie/platform/admin"
	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/server"
)

// origin is a web server the gateway reaches for any name (the platform's
// GatewayDial sends every origin to it), over HTTP and HTTPS. It records
// the headers it saw, to prove no token reaches an origin.
//
// /upload answers with the size and SHA-256 of the request's body;
// /stream sends a line, waits for goOn, and sends another.
type origin struct {
	plain, tls *httptest.Server
	mu         sync.Mutex
	seen       []http.Header
	goOn       chan struct{}
}

func newOrigin(t *testing.T) *origin {
	o := &origin{goOn: make(chan struct{}, 16)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen = append(o.seen, r.Header.Clone())
		o.mu.Unlock()
		switch {
		case platformtest.IsWebSocket(r):
			platformtest.WebSocketEcho(w, r)
		case r.URL.Path == "/upload":
			b, err := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d bytes, sha256 %x, %v", len(b), sha256.Sum256(b), err)
		case r.URL.Path == "/stream":
			w.Header().Set("Content-Type", r.URL.Query().Get("type"))
			for i := range 2 {
				fmt.Fprintf(w, "line %d\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-o.goOn:
				case <-time.After(10 * time.Second):
					return
				}
			}
		default:
			fmt.Fprintf(w, "origin says hello to %s%s", r.Host, r.URL.Path)
		}
	})
	o.plain, o.tls = httptest.NewServer(h), httptest.NewTLSServer(h)
	t.Cleanup(o.plain.Close)
	t.Cleanup(o.tls.Close)
	return o
}

// dial sends names to the origin (port 443 to the TLS server, any other
// to the plain one) and IP addresses (the gateway, the platform) where
// they say: no test traffic leaves loopback.
func (o *origin) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	to := addr
	switch {
	case net.ParseIP(host) != nil:
	case port == "443":
		to = o.tls.Listener.Addr().String()
	default:
		to = o.plain.Listener.Addr().String()
	}
	return (&net.Dialer{}).DialContext(ctx, network, to)
}

func (o *origin) leaked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var bad []string
	for _, h := range o.seen {
		for k := range h {
			if k == "Proxy-Authorization" || k == "Authorization" || strings.HasPrefix(k, "X-Vigie") {
				bad = append(bad, k+": "+h.Get(k))
			}
		}
	}
	return bad
}

// startPlatform runs the demo platform with its gateway sending origins to o.
func startPlatform(t *testing.T, o *origin) *platformtest.Platform {
	roots := x509.NewCertPool()
	roots.AddCert(o.tls.Certificate())
	return platformtest.Start(t, platformtest.Options{Server: server.Options{OriginRoots: roots, GatewayDial: o.dial}})
}

// freePort returns a port free on both 127.0.0.1 and ::1 just now.
func freePort(tb testing.TB) int {
	tb.Helper()
	lns, err := proxy.Listen(0)
	if err != nil {
		tb.Fatal(err)
	}
	port := lns[0].Addr().(*net.TCPAddr).Port
	for _, ln := range lns {
		ln.Close()
	}
	return port
}

// agentConfig is the configuration the demo would write for p.
func agentConfig(t *testing.T, p *platformtest.Platform) *Config {
	return &Config{PlatformURL: p.BaseURL, Tenant: p.Tenant, EnrollmentSecret: p.EnrollmentSecret,
		DistributionKey: p.DistributionKey, Port: freePort(t), StateDir: t.TempDir()}
}

// startAgent runs the agent until the test ends.
func startAgent(t testing.TB, cfg *Config, o Options) *Agent {
	t.Helper()
	a, stop := runAgent(t, cfg, o)
	t.Cleanup(stop)
	return a
}

// runAgent runs the agent until stop, which waits for it to return.
func runAgent(t testing.TB, cfg *Config, o Options) (a *Agent, stop func()) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Agent, 1)
	done := make(chan error, 1)
	o.Ready = func(a *Agent) { ready <- a }
	go func() { done <- Run(ctx, cfg, o) }()
	select {
	case a := <-ready:
		var once sync.Once
		return a, func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("agent: %v", err)
				}
			})
		}
	case err := <-done:
		cancel()
		t.Fatalf("agent did not start: %v", err)
		return nil, nil
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// signer is the OpenBrowser of tests: a person's browser that signs in at
// the demo IdP as login. It stops before the agent's loopback callback
// when callback is set, and hands that URL to it (to be opened as another
// OS user); else it follows it, as the test process's user.
type signer struct {
	t        *testing.T
	p        *platformtest.Platform
	mu       sync.Mutex
	logins   map[string]string // OS user ID → demo login
	callback func(userID, url string) error
	errs     chan error
}

func newSigner(t *testing.T, p *platformtest.Platform) *signer {
	return &signer{t: t, p: p, logins: map[string]string{}, errs: make(chan error, 16)}
}

func (s *signer) as(userID, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins[userID] = login
}

func (s *signer) open(userID, authorize string) error {
	s.mu.Lock()
	login, ok := s.logins[userID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no demo login for OS user %s", userID)
	}
	var password string
	for _, u := range demo.Users {
		if u.Login == login {
			password = u.Password
		}
	}
	go func() {
		b := platformtest.NewBrowser()
		b.Client.Transport = &http.Transport{Proxy: nil}
		if s.callback != nil {
			b.Client.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
				if r.URL.Path == "/callback" {
					return http.ErrUseLastResponse
				}
				return nil
			}
		}
		resp, body, err := b.SignIn(authorize, login, password)
		switch {
		case err != nil:
		case s.callback != nil && resp.StatusCode == http.StatusFound:
			err = s.callback(userID, resp.Header.Get("Location"))
		case resp.StatusCode != http.StatusOK || !strings.Contains(body, "signed in"):
			err = fmt.Errorf("sign-in of %s ended with %d: %.300s", login, resp.StatusCode, body)
		}
		s.errs <- err
	}()
	return nil
}

// through returns a client that uses the agent as its proxy and trusts the
// tenant CA (the gateway inspects HTTPS).
func through(t *testing.T, a *Agent) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.syncer.Current().CABundle) {
		t.Fatal("the agent has no CA bundle")
	}
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: a.Addr()}),
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
}

func get(c *http.Client, u string) (int, string, error) {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accessLog returns the gateway's access log for host, as the admin API
// gives it.
func accessLog(t *testing.T, p *platformtest.Platform, host string) []admin.AccessView {
	req, _ := http.NewRequest("GET", p.BaseURL+"/api/v1/tenants/"+p.Tenant+"/access?host="+url.QueryEscape(host), nil)
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Records []admin.AccessView }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("access log: %d %v", resp.StatusCode, err)
	}
	return out.Records
}

// TestThroughThePlatform is the README's path: an agent in --user-mode
// enrolled to the demo, a request that starts the login, the sign-in at the
// IdP, then requests that reach the gateway as the signed-in user and show
// in its access log, with no token reaching an origin.
func TestThroughThePlatform(t *testing.T) {
	o := newOrigin(t)
	p := startPlatform(t, o)
	s := newSigner(t, p)
	s.as(fmt.Sprint(os.Getuid()), "alice")
	a := startAgent(t, agentConfig(t, p), Options{UserMode: true, OpenBrowser: s.open, Dial: o.dial})
	eventually(t, 10*time.Second, "the agent has its configuration", func() bool {
		snap := a.syncer.Current()
		return snap.PAC != nil && snap.Config.Gateway != "" && len(snap.CABundle) > 0
	})
	c := through(t, a)

	// Signed out: the gateway sends the browser to sign in, and the agent
	// starts the login (our signer plays the browser).
	code, body, err := get(c, "http://www.example.com/first")
	if err != nil || (code != http.StatusFound && code != http.StatusProxyAuthRequired) {
		t.Fatalf("before sign-in: %d %v %.200s; %+v %+v", code, err, body, a.Report("0", "").Counters, accessLog(t, p, "www.example.com"))
	}
	select {
	case err := <-s.errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the login did not finish")
	}
	if st := a.Report(fmt.Sprint(os.Getuid()), ""); st.User == nil || !st.User.LoggedIn || st.User.State != "connected" {
		t.Fatalf("status after the sign-in: %+v", st.User)
	}

	for _, u := range []string{"http://www.example.com/plain", "https://www.example.com/inspected"} {
		code, body, err := get(c, u)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "origin says hello") {
			t.Fatalf("%s: %d %v %.200s", u, code, err, body)
		}
	}
	bodiesAndStreams(t, c, o, "http://www.example.com")
	bodiesAndStreams(t, c, o, "https://www.example.com")
	var recs []admin.AccessView
	eventually(t, 10*time.Second, "both requests are in the access log as alice", func() bool {
		recs = accessLog(t, p, "www.example.com")
		n := 0
		for _, r := range recs {
			if r.Status == 200 && strings.Contains(r.User, "alice") && (r.Path == "/plain" || r.Path == "/inspected") {
				n++
			}
		}
		return n == 2
	})
	if bad := o.leaked(); len(bad) > 0 {
		t.Errorf("an origin saw %q", bad)
	}
	// WebSockets, plain and inside an inspected tunnel.
	ws, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got, err := platformtest.WebSocketRoundTrip(ws, bufio.NewReader(ws), "http://www.example.com/ws", "www.example.com", "", "ws through the agent"); err != nil || got != "ws through the agent" {
		t.Fatalf("ws:// through the agent: %q %v", got, err)
	}
	wss := connectTLS(t, a, "www.example.com")
	if got, err := platformtest.WebSocketRoundTrip(wss, bufio.NewReader(wss), "/wss", "www.example.com", "", "wss through the agent"); err != nil || got != "wss through the agent" {
		t.Fatalf("wss:// through the agent: %q %v", got, err)
	}

	// A block the gateway decides at CONNECT (banking is not inspected)
	// reaches the client as the gateway's 403, with the reason and the
	// reference of the access log record.
	putPolicy(t, p, `{"version":0,"policy":{"rules":[{"id":"nobank","categories":["banking"],"action":"block"}]}}`)
	var refusal string
	eventually(t, 10*time.Second, "the agent passes the gateway's block on", func() bool {
		refusal = rawConnect(t, a.Addr(), "bank.example:443")
		return strings.HasPrefix(refusal, "HTTP/1.1 403") && strings.Contains(refusal, "reference ")
	})
	ref := refusal[strings.Index(refusal, "reference ")+len("reference "):]
	ref = ref[:strings.IndexAny(ref, ")\n")]
	eventually(t, 10*time.Second, "the block is in the access log with its reference", func() bool {
		for _, r := range accessLog(t, p, "bank.example") {
			if r.Ref == ref && r.Decision == "block" && strings.Contains(r.User, "alice") {
				return true
			}
		}
		return false
	})

	st := a.Report(fmt.Sprint(os.Getuid()), "")
	if st.Counters.Gateway < 3 || st.Sync["pac"].Version == 0 || st.Probe == nil || !st.Probe.Up {
		t.Errorf("status: %+v", st)
	}

	// The status API, as `agent status` reads it, holds no token.
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get("http://" + a.Addr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"state": "connected"`) || strings.Contains(string(raw), "eyJ") {
		t.Errorf("GET /status: %d %s", resp.StatusCode, raw)
	}
}

// bodiesAndStreams sends requests with bodies to the origin at base
// through c: a large POST, a chunked one, a PUT with Expect:
// 100-continue; and reads streamed responses (chunked and
// text/event-stream), each line before the origin sends the next.
func bodiesAndStreams(t *testing.T, c *http.Client, o *origin, base string) {
	t.Helper()
	large := bytes.Repeat([]byte("0123456789abcdef"), 4<<16) // 4 MiB
	for _, tc := range []struct {
		name   string
		body   io.Reader
		want   []byte
		expect bool
	}{
		{"large POST", bytes.NewReader(large), large, false},
		{"chunked POST", io.MultiReader(strings.NewReader("part one, "), strings.NewReader("part two")), []byte("part one, part two"), false},
		{"PUT with Expect: 100-continue", strings.NewReader("after 100 Continue"), []byte("after 100 Continue"), true},
	} {
		method := "POST"
		if tc.expect {
			method = "PUT"
		}
		req, _ := http.NewRequest(method, base+"/upload", tc.body)
		tr := c.Transport.(*http.Transport).Clone()
		if tc.expect {
			// Far longer than the test: the body goes only after a 100.
			req.Header.Set("Expect", "100-continue")
			tr.ExpectContinueTimeout = time.Minute
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s to %s: %v", tc.name, base, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d bytes, sha256 %x, <nil>", len(tc.want), sha256.Sum256(tc.want)); resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("%s to %s: %d %.200q, want %q", tc.name, base, resp.StatusCode, got, want)
		}
	}
	for _, typ := range []string{"application/x-ndjson", "text/event-stream"} {
		resp, err := c.Get(base + "/stream?type=" + url.QueryEscape(typ))
		if err != nil {
			t.Fatalf("%s stream from %s: %v", typ, base, err)
		}
		lines := bufio.NewReader(resp.Body)
		first, err := lines.ReadString('\n')
		if err != nil || first != "line 0\n" {
			t.Fatalf("%s stream from %s: first line %q %v (held back until the end?)", typ, base, first, err)
		}
		o.goOn <- struct{}{}
		second, _ := lines.ReadString('\n')
		o.goOn <- struct{}{}
		resp.Body.Close()
		if second != "line 1\n" {
			t.Errorf("%s stream from %s: second line %q (the origin gave up waiting: the first line was held back)", typ, base, second)
		}
	}
}

// TestLivePAC changes the tenant's PAC at the platform: after a sync, new
// requests follow it (here: DIRECT), with nothing restarted, and a tunnel
// opened through the gateway before the change carries on.
func TestLivePAC(t *testing.T) {
	o := newOrigin(t)
	p := startPlatform(t, o)
	a := startAgent(t, agentConfig(t, p), Options{UserMode: true, OpenBrowser: func(string, string) error { return nil }, Dial: o.dial})
	eventually(t, 10*time.Second, "the agent has its PAC", func() bool { return a.syncer.Current().PAC != nil && len(a.syncer.Current().CABundle) > 0 })
	before := a.syncer.Current().Version("pac")
	// A tunnel through the gateway (which inspects it: an answer signed
	// by the tenant's CA says it is the gateway's), used before the change
	// and after it.
	tunnel := connectTLS(t, a, "tunnel.example.org")
	tunnelGet := func(path string) {
		t.Helper()
		tunnel.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(tunnel, "GET %s HTTP/1.1\r\nHost: tunnel.example.org\r\nAccept: text/html\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(tunnel), nil)
		if err != nil {
			t.Fatalf("GET %s in the tunnel opened before the PAC changed: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	tunnelGet("/in-the-tunnel-before")

	pac := `function FindProxyForURL(url, host) { return dnsDomainIs(host, ".example.com") ? "DIRECT" : "PROXY ` + p.GatewayAddr + `"; }`
	if _, _, err := p.Server.Distrib.SetPAC(context.Background(), p.Tenant, []byte(pac)); err != nil {
		t.Fatal(err)
	}
	if err := a.syncer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := a.syncer.Current().Version("pac"); v <= before {
		t.Fatalf("PAC version %d after the sync, was %d", v, before)
	}
	c := through(t, a)
	code, body, err := get(c, "http://www.example.com/direct")
	if err != nil || code != 200 || !strings.Contains(body, "origin says hello") {
		t.Fatalf("DIRECT by the new PAC: %d %v %.200s", code, err, body)
	}
	if recs := accessLog(t, p, "www.example.com"); len(recs) != 0 {
		t.Errorf("a DIRECT request reached the gateway: %+v", recs)
	}
	if st := a.Report("", ""); st.Counters.Direct != 1 {
		t.Errorf("counters %+v", st.Counters)
	}
	tunnelGet("/in-the-tunnel-after")
}

// putPolicy replaces the tenant's gateway policy through the admin API.
func putPolicy(t *testing.T, p *platformtest.Platform, doc string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", p.BaseURL+"/api/v1/tenants/"+p.Tenant+"/policy", strings.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT policy: %d %s", resp.StatusCode, body)
	}
}

// rawConnect sends a CONNECT to the agent at addr and returns the whole
// answer to a refusal (status line, header and body), or its status line.
func rawConnect(t *testing.T, addr, target string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return "HTTP/1.1 " + resp.Status
	}
	b, _ := io.ReadAll(resp.Body)
	return "HTTP/1.1 " + resp.Status + "\n" + string(b)
}

// connectTLS opens a CONNECT tunnel through the agent to host:443 and TLS
// inside it, trusting the tenant's CA (the gateway inspects); it is closed
// when the test ends.
func connectTLS(t *testing.T, a *Agent, host string) *tls.Conn {
	t.Helper()
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", host, host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
		t.Fatalf("CONNECT %s:443 through the agent: %v %v", host, resp, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.syncer.Current().CABundle)
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS to %s through the agent: %v", host, err)
	}
	return tc
}
