package gateway_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"vigie/platform/platformtest"
)

// TestChain: client → gateway → origin, plain HTTP and inspected HTTPS.
// Every hop's view is asserted: the bearer token stops at the gateway, Via
// is added both ways, hop-by-hop headers do not cross, and the log holds
// one record per request with the user, host, path and sizes.
func TestChain(t *testing.T) {
	e := newEnv(t)
	tr := e.login(t, 0)
	c := e.client(tr.AccessToken, e.tenant, http.Header{"X-Vigie-Tenant": {"demo"}})
	for _, u := range []string{"http://origin.example/plain", "https://origin.example/tls"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Connection", "X-Drop-Me")
		req.Header.Set("X-Drop-Me", "hop")
		req.Header.Set("Keep-Alive", "timeout=5")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from origin.example") {
			t.Fatalf("%s: %d %q", u, resp.StatusCode, body)
		}
		if !strings.Contains(resp.Header.Get("Via"), "vigie") || resp.Header.Get("X-Secret-Hop") != "" {
			t.Errorf("%s: response headers %v", u, resp.Header)
		}
		got := e.o.last()
		if got.Header.Get("Proxy-Authorization") != "" || strings.Contains(fmt.Sprint(got.Header), tr.AccessToken) {
			t.Fatalf("%s: the origin saw the bearer token: %v", u, got.Header)
		}
		if got.Header.Get("X-Vigie-Tenant") != "" {
			t.Fatalf("%s: the origin saw the agent's tenant header: %v", u, got.Header)
		}
		if !strings.Contains(got.Header.Get("Via"), "vigie") || got.Header.Get("X-Drop-Me") != "" || got.Header.Get("Keep-Alive") != "" {
			t.Errorf("%s: origin saw headers %v", u, got.Header)
		}
	}
	// The inspected response came with a leaf of the tenant's CA: the client
	// trusts nothing else.
	resp, _ := get(t, c, "https://origin.example/check")
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName == "origin test CA" {
		t.Fatalf("HTTPS was not inspected: %+v", resp.TLS)
	}
	// Streaming and a 1 MiB body pass intact, and a POST body reaches the origin.
	_, body := get(t, c, "https://origin.example/stream")
	if body != "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n" {
		t.Errorf("stream: %q", body)
	}
	_, body = get(t, c, "http://origin.example/big")
	if len(body) != 1<<20 {
		t.Errorf("big body: %d bytes", len(body))
	}
	pr, err := c.Post("https://origin.example/post", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if e.o.last().Body != "payload" {
		t.Errorf("POST body at the origin: %q", e.o.last().Body)
	}

	// The access log (written in batches within a second).
	var recs []map[string]any
	eventually(t, 10*time.Second, "access log", func() bool {
		_, out := e.admin(t, "GET", "/api/v1/tenants/demo/access?user=demo-alice", "")
		recs = nil
		for _, r := range out["records"].([]any) {
			recs = append(recs, r.(map[string]any))
		}
		return len(recs) >= 6
	})
	var tlsRec, bigRec map[string]any
	for _, r := range recs {
		switch r["path"] {
		case "/tls":
			tlsRec = r
		case "/big":
			bigRec = r
		}
	}
	if tlsRec == nil || tlsRec["host"] != "origin.example" || tlsRec["device"] != "dev-alice" || tlsRec["status"].(float64) != 200 ||
		tlsRec["decision"] != "allow" || tlsRec["method"] != "GET" {
		t.Errorf("record of the inspected request: %v", tlsRec)
	}
	if bigRec == nil || bigRec["bytes_out"].(float64) != 1<<20 {
		t.Errorf("record of the 1 MiB response: %v", bigRec)
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t)
	tr := e.login(t, 0)
	raw := func(req string) string {
		resp, _, err := e.send(t, req)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Proxy-Authenticate")+resp.Header.Get("Location"))
	}
	parts := strings.Split(tr.AccessToken, ".")
	for name, auth := range map[string]string{
		"no token":      "",
		"garbage":       "Proxy-Authorization: Bearer not-a-jwt\r\n",
		"basic":         "Proxy-Authorization: Basic YWxpY2U6cHc=\r\n",
		"tampered":      "Proxy-Authorization: Bearer " + parts[0] + "." + parts[1] + "x." + parts[2] + "\r\n",
		"bad signature": "Proxy-Authorization: Bearer " + parts[0] + "." + parts[1] + "." + parts[2][:10] + "AAAA" + parts[2][14:] + "\r\n",
	} {
		for _, req := range []string{
			"CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\n" + auth + "\r\n",
			"GET http://origin.example/ HTTP/1.1\r\nHost: origin.example\r\n" + auth + "\r\n",
		} {
			if got := raw(req); !strings.HasPrefix(got, `407 Bearer realm="vigie"`) {
				t.Errorf("%s, %s: %s", name, strings.Fields(req)[0], got)
			}
		}
	}
	// A page load names its tenant (the agent adds X-Vigie-Tenant): it is
	// sent to sign in, over plain HTTP and inside an inspected tunnel.
	got := raw("GET http://origin.example/page HTTP/1.1\r\nHost: origin.example\r\nX-Vigie-Tenant: demo\r\nAccept: text/html\r\n\r\n")
	if !strings.HasPrefix(got, "302 "+e.URL("/signin?return=")) {
		t.Errorf("plain page load without a token: %s", got)
	}
	c := e.client("", e.tenant, http.Header{"X-Vigie-Tenant": {"demo"}})
	req, _ := http.NewRequest("GET", "https://origin.example/page", nil)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.URL("/signin")) {
		t.Fatalf("HTTPS page load without a token: %v %v", resp, err)
	}
	resp.Body.Close()
	// The sign-in page hands over to the agent.
	resp, body := get(t, http.DefaultClient, resp.Header.Get("Location"))
	if resp.StatusCode != 200 || !strings.Contains(body, "127.0.0.1:3129/login") {
		t.Errorf("sign-in page: %d %s", resp.StatusCode, body)
	}
	// The agent names its port: the sign-in page links to /login there.
	// Anything but a port number is ignored, by the gateway and by the page.
	got = raw("GET http://origin.example/page HTTP/1.1\r\nHost: origin.example\r\nX-Vigie-Tenant: demo\r\nX-Vigie-Agent-Port: 4129\r\nAccept: text/html\r\n\r\n")
	if !strings.HasPrefix(got, "302 "+e.URL("/signin?return=")) || !strings.HasSuffix(got, "&agent_port=4129") {
		t.Errorf("page load from an agent on port 4129: %s", got)
	}
	resp, body = get(t, http.DefaultClient, strings.TrimPrefix(got, "302 "))
	if resp.StatusCode != 200 || !strings.Contains(body, "127.0.0.1:4129/login") {
		t.Errorf("sign-in page for port 4129: %d %s", resp.StatusCode, body)
	}
	got = raw("GET http://origin.example/page HTTP/1.1\r\nHost: origin.example\r\nX-Vigie-Tenant: demo\r\nX-Vigie-Agent-Port: 4129@evil.example\r\nAccept: text/html\r\n\r\n")
	if strings.Contains(got, "agent_port") {
		t.Errorf("a port that is not a number went into the redirect: %s", got)
	}
	for _, bad := range []string{"0", "65536", "04129", "4129@evil.example", "-1"} {
		resp, body = get(t, http.DefaultClient, e.URL("/signin?return=https%3A%2F%2Forigin.example%2F&agent_port="+url.QueryEscape(bad)))
		if resp.StatusCode != 200 || !strings.Contains(body, "127.0.0.1:3129/login") {
			t.Errorf("sign-in page with agent_port=%q: %d %s", bad, resp.StatusCode, body)
		}
	}
	// Nothing reached the origin.
	if len(e.o.seen) != 0 {
		t.Errorf("the origin saw unauthenticated requests: %v", e.o.seen)
	}
}

func TestPolicyBlockAndBypass(t *testing.T) {
	e := newEnv(t)
	alice := e.client(e.login(t, 0).AccessToken, e.tenant, nil)
	bob := e.client(e.login(t, 1).AccessToken, e.tenant, nil)
	if s, out := e.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":0,"policy":{"rules":[
		{"id":"no-gambling","categories":["gambling"],"action":"block"},
		{"id":"contractors-no-social","groups":["contractors"],"categories":["social"],"action":"block"},
		{"id":"news-untouched","hosts":["news.example"],"action":"allow_no_inspect"}]}}`); s != 200 {
		t.Fatalf("put policy: %d %v", s, out)
	}
	// Blocked, inspected or over plain HTTP: the block page says what (the
	// host and address), why (the rule), for whom (user and device), and
	// the reference of the log record.
	eventually(t, 10*time.Second, "the policy reaching the gateway", func() bool {
		resp, _ := get(t, alice, "https://casino.example/probe")
		return resp.StatusCode == http.StatusForbidden
	})
	refs := map[string]string{} // URL → reference
	for _, u := range []string{"https://casino.example/play", "http://casino.example/play"} {
		resp, body := get(t, alice, u)
		ref := resp.Header.Get("X-Vigie-Reference")
		if resp.StatusCode != http.StatusForbidden || ref == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d, reference %q, %s", u, resp.StatusCode, ref, resp.Header.Get("Content-Type"))
		}
		refs[u] = ref
		for _, want := range []string{"This page is blocked", "<strong>casino.example</strong>", u, "blocked by rule no-gambling",
			"alice@demo.example on device dev-alice", "<code>" + ref + "</code>"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: block page lacks %q:\n%s", u, want, body)
			}
		}
	}
	for _, s := range e.o.snapshot() {
		if s.Host == "casino.example" && s.Path == "/play" {
			t.Errorf("a blocked request reached the origin: %s %s%s", s.Method, s.Host, s.Path)
		}
	}
	// Group rules: bob (contractors) is blocked from social, alice (staff) is not.
	if resp, _ := get(t, bob, "https://social.example/"); resp.StatusCode != 403 {
		t.Errorf("bob on social: %d", resp.StatusCode)
	}
	if resp, _ := get(t, alice, "https://social.example/"); resp.StatusCode != 200 {
		t.Errorf("alice on social: %d", resp.StatusCode)
	}
	// Banking is not inspected: the client sees the origin's own certificate
	// (so a client trusting only the tenant CA fails, one trusting the
	// origin succeeds), and the log says tunnel.
	if _, err := alice.Get("https://bank.example/"); err == nil {
		t.Error("bank.example was inspected")
	}
	// So is a host that a rule says not to inspect.
	direct := e.client(e.login(t, 0).AccessToken, e.o.roots, nil)
	for _, u := range []string{"https://bank.example/account", "https://news.example/today"} {
		if _, err := alice.Get(u); err == nil {
			t.Errorf("%s was inspected", u)
		}
		resp, body := get(t, direct, u)
		if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Issuer.CommonName != "origin test CA" || body != "hello from "+strings.TrimPrefix(u, "https://") ||
			resp.Header.Get("Via") != "" {
			t.Errorf("%s through the tunnel: %d %q, Via %q", u, resp.StatusCode, body, resp.Header.Get("Via"))
		}
	}
	eventually(t, 10*time.Second, "the block records", func() bool {
		_, out := e.admin(t, "GET", "/api/v1/tenants/demo/access?host=casino.example", "")
		found := 0
		for _, r := range out["records"].([]any) {
			m := r.(map[string]any)
			for _, ref := range refs {
				if m["ref"] == ref && m["decision"] == "block" && m["rule"] == "no-gambling" && m["user"] == "demo-alice" && m["path"] == "/play" {
					found++
				}
			}
		}
		return found == len(refs)
	})
	// A blocked host that is not inspected is refused at CONNECT with 403.
	e.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":1,"policy":{"rules":[{"id":"nobank","categories":["banking"],"action":"block"}]}}`)
	eventually(t, 10*time.Second, "policy v2", func() bool {
		_, err := direct.Get("https://bank.example/")
		return err != nil && strings.Contains(err.Error(), "Forbidden")
	})
}

// TestOriginCertificateRefused: an origin whose certificate does not
// verify is never passed through silently: the client gets the block page,
// which says why, and the access log has its record, with the page's
// reference.
func TestOriginCertificateRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.login(t, 0).AccessToken, e.tenant, nil)
	refs := map[string]string{} // host → reference
	for host, why := range map[string]string{
		"unlisted.example":   "certificate is valid for www.example.com", // not for this host
		"expired.example":    "certificate has expired",
		"unknown-ca.example": "certificate signed by unknown authority",
	} {
		resp, body := get(t, c, "https://"+host+"/page")
		ref := resp.Header.Get("X-Vigie-Reference")
		if resp.StatusCode != http.StatusForbidden || ref == "" {
			t.Fatalf("%s: %d, reference %q: %s", host, resp.StatusCode, ref, body)
		}
		refs[host] = ref
		for _, want := range []string{"<strong>" + host + "</strong>", "the site&#39;s certificate is not valid", why, "alice@demo.example", ref} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: the block page lacks %q:\n%s", host, want, body)
			}
		}
	}
	eventually(t, 10*time.Second, "the records of the refused origins", func() bool {
		for host, ref := range refs {
			_, out := e.admin(t, "GET", "/api/v1/tenants/demo/access?host="+host, "")
			recs, _ := out["records"].([]any)
			if len(recs) != 1 {
				return false
			}
			if m := recs[0].(map[string]any); m["ref"] != ref || m["decision"] != "block" || m["rule"] != "origin-certificate" || m["status"] != float64(403) {
				t.Fatalf("%s: record %v, want a block by origin-certificate with reference %s", host, m, ref)
			}
		}
		return true
	})
}

// TestRevokedMidTunnel: an open, inspected keep-alive tunnel, and a
// plain-HTTP keep-alive connection, are closed within seconds of the
// user's revocation, and the next try is refused.
func TestRevokedMidTunnel(t *testing.T) {
	e := newEnv(t)
	tr := e.login(t, 0)
	proxyConn, err := net.Dial("tcp", e.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxyConn.Close()
	fmt.Fprintf(proxyConn, "CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\nProxy-Authorization: Bearer %s\r\n\r\n", tr.AccessToken)
	br := bufio.NewReader(proxyConn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(proxyConn, &tls.Config{ServerName: "origin.example", RootCAs: e.tenant})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tbr := bufio.NewReader(tc)
	ask := func() error {
		fmt.Fprintf(tc, "GET /in-tunnel HTTP/1.1\r\nHost: origin.example\r\n\r\n")
		resp, err := http.ReadResponse(tbr, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := ask(); err != nil {
		t.Fatalf("in-tunnel request: %v", err)
	}
	plainConn, err := net.Dial("tcp", e.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer plainConn.Close()
	fmt.Fprintf(plainConn, "GET http://origin.example/keep-alive HTTP/1.1\r\nHost: origin.example\r\nProxy-Authorization: Bearer %s\r\n\r\n", tr.AccessToken)
	pbr := bufio.NewReader(plainConn)
	if resp, err := http.ReadResponse(pbr, nil); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("plain request on a keep-alive connection: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	if s, _ := e.admin(t, "POST", "/api/v1/tenants/demo/users/demo-alice/revoke", ""); s != 200 {
		t.Fatalf("revoke: %d", s)
	}
	start := time.Now()
	for name, c := range map[string]struct {
		conn net.Conn
		br   *bufio.Reader
	}{"the tunnel": {tc, tbr}, "the plain keep-alive connection": {plainConn, pbr}} {
		c.conn.SetReadDeadline(start.Add(10 * time.Second))
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatalf("%s sent data after the revocation", name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s closed %v after the revocation", name, d)
		}
	}
	// A new CONNECT with the same (unexpired) token is refused.
	c := e.client(tr.AccessToken, e.tenant, nil)
	if _, err := c.Get("https://origin.example/"); err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Fatalf("after revocation: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.login(t, 0).AccessToken, e.tenant, nil)
	get(t, c, "https://origin.example/")
	req, _ := http.NewRequest("GET", e.BaseURL+"/metrics", nil)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 401 {
		t.Errorf("metrics without a token: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+e.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vigie_gateway_requests_total{decision="allow"}`, "vigie_gateway_log_queue_depth", "vigie_gateway_log_dropped_total",
		"vigie_gateway_request_duration_seconds_bucket", "vigie_gateway_open_tunnels", "vigie_gateway_open_inspected_tunnels", "vigie_gateway_auth_failures_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The client keeps its inspected tunnel open for its next request.
	if !strings.Contains(string(body), "\nvigie_gateway_open_inspected_tunnels 1\n") {
		t.Errorf("an open inspected tunnel is not counted:\n%s", body)
	}
}

func TestMalformedAndFloods(t *testing.T) {
	e := newEnv(t)
	send := func(req string) string {
		conn, err := net.Dial("tcp", e.GatewayAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, req)
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(line)
	}
	flood := "GET http://origin.example/ HTTP/1.1\r\nHost: origin.example\r\n" + strings.Repeat("X-Flood: "+strings.Repeat("a", 100)+"\r\n", 1000) + "\r\n"
	for name, req := range map[string]string{
		"header flood":  flood,
		"bad request":   "NOT A REQUEST\r\n\r\n",
		"relative path": "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n",
		"bad version":   "GET http://origin.example/ HTTP/9.9\r\nHost: x\r\n\r\n",
	} {
		got := send(req)
		if !strings.HasPrefix(got, "HTTP/1.1 4") && !strings.HasPrefix(got, "HTTP/1.1 505") {
			t.Errorf("%s: %q", name, got)
		}
	}
	// The same limit inside an inspected tunnel: 431, and nothing reaches
	// the origin.
	tun := openInspectedTunnel(t, e, e.login(t, 0).AccessToken, "origin.example")
	go io.WriteString(tun.tc, strings.Replace(flood, "http://origin.example/", "/flood", 1)) // the gateway may answer before it has all
	resp, err := http.ReadResponse(tun.br, nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("header flood inside an inspected tunnel: %v %v, want 431", resp, err)
	}
	for _, s := range e.o.snapshot() {
		if s.Path == "/flood" {
			t.Errorf("a request with %d bytes of X-Flood header reached the origin", len(strings.Join(s.Header["X-Flood"], "")))
		}
	}
	_ = json.Valid
}

// TestProtocolDetails: the RFC 9110 obligations the checklist names.
func TestProtocolDetails(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, 0).AccessToken
	send := func(req string) (*http.Response, string) {
		resp, body, err := e.send(t, req)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		return resp, body
	}
	auth := "Proxy-Authorization: Bearer " + tok + "\r\n"
	// CONNECT to a port the policy does not allow.
	if resp, _ := send("CONNECT origin.example:22 HTTP/1.1\r\nHost: origin.example:22\r\n" + auth + "\r\n"); resp.StatusCode != 403 {
		t.Errorf("CONNECT to port 22: %d", resp.StatusCode)
	}
	// Max-Forwards: 0 is answered by the gateway itself.
	n := len(e.o.seen)
	if resp, _ := send("OPTIONS http://origin.example/ HTTP/1.1\r\nHost: origin.example\r\nMax-Forwards: 0\r\n" + auth + "\r\n"); resp.StatusCode != 200 || len(e.o.seen) != n {
		t.Errorf("OPTIONS with Max-Forwards 0: %d, origin saw %d new requests", resp.StatusCode, len(e.o.seen)-n)
	}
	send("OPTIONS http://origin.example/ HTTP/1.1\r\nHost: origin.example\r\nMax-Forwards: 3\r\n" + auth + "\r\n")
	if got := e.o.last().Header.Get("Max-Forwards"); got != "2" {
		t.Errorf("Max-Forwards at the origin: %q, want 2", got)
	}
	// A request that already went through a Vigie gateway is a loop.
	if resp, _ := send("GET http://origin.example/ HTTP/1.1\r\nHost: origin.example\r\nVia: 1.1 vigie\r\n" + auth + "\r\n"); resp.StatusCode != http.StatusLoopDetected {
		t.Errorf("loop: %d", resp.StatusCode)
	}
	// An existing Via is kept and ours appended.
	send("GET http://origin.example/via HTTP/1.1\r\nHost: origin.example\r\nVia: 1.0 alpha\r\n" + auth + "\r\n")
	if got := e.o.last().Header.Values("Via"); len(got) != 2 || got[0] != "1.0 alpha" || got[1] != "1.1 vigie" {
		t.Errorf("Via at the origin: %q", got)
	}
	// Absolute-form: the Host the origin sees is the target's, not the client's.
	send("GET http://origin.example/host HTTP/1.1\r\nHost: evil.example\r\n" + auth + "\r\n")
	if got := e.o.last().Host; got != "origin.example" {
		t.Errorf("Host at the origin: %q", got)
	}
	// Request smuggling: with both Content-Length and chunked, the body is
	// framed by Transfer-Encoding alone (RFC 9112 §6.1) and the request is
	// re-framed upstream, so nothing hidden behind it reaches the origin.
	send("POST http://origin.example/smuggle HTTP/1.1\r\nHost: origin.example\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n" + auth +
		"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: origin.example\r\n\r\n")
	for _, s := range e.o.seen {
		if s.Path == "/smuggled" {
			t.Errorf("a smuggled request reached the origin")
		}
	}
	// Inside an inspected tunnel too, what the client says to the gateway
	// stops there: Proxy-Authorization, the agent's headers, and the
	// headers that Connection names.
	tun := openInspectedTunnel(t, e, tok, "origin.example")
	fmt.Fprintf(tun.tc, "GET /in-tunnel HTTP/1.1\r\nHost: origin.example\r\n%sX-Vigie-Tenant: demo\r\nX-Vigie-Agent-Port: 4129\r\n"+
		"Connection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n", auth)
	if resp, err := http.ReadResponse(tun.br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("request inside the tunnel: %v %v", resp, err)
	}
	if got := e.o.last(); got.Path != "/in-tunnel" || strings.Contains(fmt.Sprint(got.Header), tok) || got.Header.Get("X-Vigie-Tenant") != "" ||
		got.Header.Get("X-Vigie-Agent-Port") != "" || got.Header.Get("X-Hop") != "" || got.Header.Get("Keep-Alive") != "" || got.Header.Get("Connection") != "" {
		t.Errorf("the origin saw %s with %v", got.Path, got.Header)
	}
	// An origin that does not answer: 502.
	if resp, _ := send("GET http://origin.example:9/ HTTP/1.1\r\nHost: origin.example:9\r\n" + auth + "\r\n"); resp.StatusCode != 502 && resp.StatusCode != 200 {
		t.Errorf("unreachable origin: %d", resp.StatusCode)
	}
}

// TestWebSocket: WebSocket upgrades pass through the gateway, over plain
// HTTP (absolute-form) and inside an inspected tunnel, with the token
// stopping at the gateway; the gateway lets go of the client's connection
// when the WebSocket ends.
func TestWebSocket(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, 0).AccessToken
	conn, err := net.Dial("tcp", e.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := platformtest.WebSocketRoundTrip(conn, bufio.NewReader(conn), "http://origin.example/ws", "origin.example",
		"Proxy-Authorization: Bearer "+tok+"\r\n", "ping over ws")
	if err != nil || got != "ping over ws" {
		t.Fatalf("ws:// through the gateway: %q %v", got, err)
	}
	tt := openInspectedTunnel(t, e, tok, "origin.example")
	if got, err = platformtest.WebSocketRoundTrip(tt.tc, tt.br, "/wss", "origin.example", "", "ping over wss"); err != nil || got != "ping over wss" {
		t.Fatalf("wss:// through the gateway: %q %v", got, err)
	}
	var paths []string
	for _, s := range e.o.snapshot() {
		paths = append(paths, s.Path)
		if s.Header.Get("Proxy-Authorization") != "" || s.Header.Get("Sec-WebSocket-Key") == "" {
			t.Errorf("the origin's WebSocket handshake: %v", s.Header)
		}
	}
	if strings.Join(paths, " ") != "/ws /wss" {
		t.Errorf("the origin saw %q", paths)
	}
	// Once the client leaves, the WebSocket is in the access log with its
	// bytes each way.
	conn.Close()
	eventually(t, 10*time.Second, "the WebSocket in the access log", func() bool {
		_, out := e.admin(t, "GET", "/api/v1/tenants/demo/access?host=origin.example", "")
		recs, _ := out["records"].([]any)
		for _, r := range recs {
			if m := r.(map[string]any); m["path"] == "/ws" && m["status"] == float64(101) &&
				m["bytes_in"] == float64(len("ping over ws")) && m["bytes_out"] == float64(len("ping over ws")) {
				return true
			}
		}
		return false
	})
	// goproxy takes the client's connection over for a WebSocket and never
	// closes it: the gateway must, or each one leaks a socket.
	tt.tc.Close()
	eventually(t, 10*time.Second, "the gateway closing its side of the client connections", func() bool { return e.leakCounters().conns == 0 })
}

// TestInspectedHostNames: the leaf the gateway presents names the host as
// the client asked for it, so that a client trusting only the tenant CA
// accepts it: an IPv4 or IPv6 literal (no SNI: the CONNECT names it; an IP
// address SAN) and an internationalised name (its A-label, as a Go client
// sends it in CONNECT and SNI for bücher.example).
func TestInspectedHostNames(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, 0).AccessToken
	for _, c := range []struct {
		host string // as in the URL
		dns  string // the leaf's one SAN, a DNS name…
		ip   string // … or an address
	}{
		{"192.0.2.10", "", "192.0.2.10"},
		{"[2001:db8::10]", "", "2001:db8::10"},
		{"bücher.example", "xn--bcher-kva.example", ""},
	} {
		resp, body := get(t, e.client(tok, e.tenant, nil), "https://"+c.host+"/name")
		if resp.StatusCode != 200 || !strings.HasSuffix(body, "/name") {
			t.Errorf("%s: %d %q", c.host, resp.StatusCode, body)
			continue
		}
		leaf := resp.TLS.PeerCertificates[0]
		var sans []string
		for _, ip := range leaf.IPAddresses {
			sans = append(sans, "IP "+ip.String())
		}
		for _, name := range leaf.DNSNames {
			sans = append(sans, "DNS "+name)
		}
		want := "DNS " + c.dns
		if c.ip != "" {
			want = "IP " + c.ip
		}
		if strings.Join(sans, ", ") != want || leaf.Issuer.CommonName == "origin test CA" {
			t.Errorf("%s: the leaf from %q names %v, want %s only", c.host, leaf.Issuer.CommonName, sans, want)
		}
	}
}

// TestBodies: bodies through the gateway, over plain HTTP and inside an
// inspected tunnel, on a keep-alive connection the test writes by hand. A
// chunked request body reaches the origin whole; a response of known
// length keeps its Content-Length (downloads show their size); a response
// streamed slowly reaches the client as it comes, not when it ends; and a
// client that sends Expect: 100-continue gets its 100 (Continue) before it
// sends the body (RFC 9110 §10.1.1), not after it gives up waiting.
func TestBodies(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, 0).AccessToken
	conn, err := net.Dial("tcp", e.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tun := openInspectedTunnel(t, e, tok, "origin.example")
	for _, c := range []struct {
		name, target, auth string
		conn               net.Conn
		br                 *bufio.Reader
	}{
		{"plain HTTP", "http://origin.example", "Proxy-Authorization: Bearer " + tok + "\r\n", conn, bufio.NewReader(conn)},
		{"inspected", "", "", tun.tc, tun.br},
	} {
		send := func(method, path, header, body string) {
			t.Helper()
			c.conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(c.conn, "%s %s%s HTTP/1.1\r\nHost: origin.example\r\n%s%s\r\n%s", method, c.target, path, c.auth, header, body); err != nil {
				t.Fatalf("%s: %s %s: %v", c.name, method, path, err)
			}
		}
		head := func(what string) *http.Response {
			t.Helper()
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, what, err)
			}
			return resp
		}
		readAll := func(what string) (*http.Response, string) {
			t.Helper()
			resp := head(what)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, what, err)
			}
			return resp, string(body)
		}

		send("POST", "/chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		if resp, _ := readAll("chunked upload"); resp.StatusCode != 200 || e.o.last().Path != "/chunked" || e.o.last().Body != "hello world" {
			t.Errorf("%s: chunked upload: %d, the origin saw %s %q", c.name, resp.StatusCode, e.o.last().Path, e.o.last().Body)
		}

		send("GET", "/sized", "", "")
		if resp, body := readAll("sized"); resp.ContentLength != 64<<10 || len(body) != 64<<10 {
			t.Errorf("%s: a response of 64 KiB with Content-Length came with Content-Length %d (%v), %d bytes",
				c.name, resp.ContentLength, resp.TransferEncoding, len(body))
		}

		// The origin sends its first line, then holds the rest until the
		// test has read that line: were it buffered, the read would time out.
		send("GET", "/slow", "", "")
		resp := head("stream")
		first, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || first != "first\n" {
			t.Fatalf("%s: the first line of a streamed response did not come before its end: %q %v", c.name, first, err)
		}
		e.o.release <- struct{}{}
		if rest, _ := io.ReadAll(resp.Body); !strings.HasSuffix(string(rest), "last\n") {
			t.Errorf("%s: the end of the streamed response: %q", c.name, rest)
		}

		send("POST", "/expect", "Content-Length: 7\r\nExpect: 100-continue\r\n", "")
		c.conn.SetDeadline(time.Now().Add(3 * time.Second)) // Go's clients wait 1 s, then send anyway
		if resp := head("100 Continue"); resp.StatusCode != http.StatusContinue {
			t.Fatalf("%s: Expect: 100-continue got %d first, want 100", c.name, resp.StatusCode)
		}
		io.WriteString(c.conn, "payload")
		if resp, _ := readAll("after 100 Continue"); resp.StatusCode != 200 || e.o.last().Path != "/expect" || e.o.last().Body != "payload" {
			t.Errorf("%s: after 100 Continue: %d, the origin saw %s %q", c.name, resp.StatusCode, e.o.last().Path, e.o.last().Body)
		}
	}
}
