package gateway_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/platform/auth"
	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/server"
)

// seen is what an origin received.
type seen struct {
	Method, Host, Path string
	Header             http.Header
	Body               string
}

// origins are the loopback web servers every host resolves to in these
// tests: port 443 goes to the TLS one, anything else to the plain one. They
// record every request, so tests can assert what each hop saw.
type origins struct {
	plain, tls *http.Server
	plainAddr  string
	tlsAddr    string
	roots      *x509.CertPool // trusts the TLS origin
	release    chan struct{}  // lets a /slow response end
	mu         sync.Mutex
	seen       []seen
}

func (o *origins) record(w http.ResponseWriter, r *http.Request) {
	if platformtest.IsWebSocket(r) {
		o.mu.Lock()
		o.seen = append(o.seen, seen{r.Method, r.Host, r.URL.Path, r.Header.Clone(), ""})
		o.mu.Unlock()
		platformtest.WebSocketEcho(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	o.seen = append(o.seen, seen{r.Method, r.Host, r.URL.Path, r.Header.Clone(), string(body)})
	o.mu.Unlock()
	switch r.URL.Path {
	case "/big":
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	case "/sized":
		w.Header().Set("Content-Length", strconv.Itoa(64<<10))
		w.Write([]byte(strings.Repeat("x", 64<<10)))
	case "/slow":
		// The first line, then the last once the test says so: a client
		// that reads the first line before the end sees a stream.
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-o.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "last\n")
	case "/hang":
		// No answer until the client (the gateway) gives up.
		<-r.Context().Done()
	case "/stream":
		for i := 0; i < 5; i++ {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
	default:
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "must not pass")
		fmt.Fprintf(w, "hello from %s%s", r.Host, r.URL.Path)
	}
}

func (o *origins) last() seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return seen{}
	}
	return o.seen[len(o.seen)-1]
}

// newOrigins starts both origins. The TLS one has a certificate from its
// own CA for the names (and addresses) the tests use; for the server names
// expired.example and unknown-ca.example, it presents an expired one and
// one from a CA nobody trusts.
func newOrigins(t *testing.T) *origins {
	o := &origins{release: make(chan struct{}, 1)}
	now := time.Now()
	ca, caKey := originCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "origin test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotAfter: now.Add(24 * time.Hour)}, nil, nil)
	o.roots = x509.NewCertPool()
	o.roots.AddCert(ca.Leaf)
	cert, _ := originCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "origin"},
		DNSNames: []string{"www.example.com", "casino.example", "bank.example", "news.example", "origin.example", "social.example",
			"xn--bcher-kva.example"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")},
		NotAfter:    now.Add(24 * time.Hour)}, ca.Leaf, caKey)
	expired, _ := originCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "expired"}, DNSNames: []string{"expired.example"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, ca.Leaf, caKey)
	otherCA, otherKey := originCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "unknown test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotAfter: now.Add(24 * time.Hour)}, nil, nil)
	unknown, _ := originCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "unknown-ca"}, DNSNames: []string{"unknown-ca.example"},
		NotAfter: now.Add(24 * time.Hour)}, otherCA.Leaf, otherKey)
	byName := map[string]*tls.Certificate{"expired.example": expired, "unknown-ca.example": unknown}

	h := http.HandlerFunc(o.record)
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	tl, _ := net.Listen("tcp", "127.0.0.1:0")
	o.plainAddr, o.tlsAddr = pl.Addr().String(), tl.Addr().String()
	o.plain = &http.Server{Handler: h}
	o.tls = &http.Server{Handler: h, TLSConfig: &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := byName[hello.ServerName]; c != nil {
			return c, nil
		}
		return cert, nil
	}}}
	go o.plain.Serve(pl)
	go o.tls.ServeTLS(tl, "", "")
	t.Cleanup(func() { o.plain.Close(); o.tls.Close() })
	return o
}

// originCert makes the certificate tmpl describes, with a key of its own,
// signed by parent (itself when parent is nil). NotBefore defaults to an
// hour ago; server certificates get the server-auth usage.
func originCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*tls.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if !tmpl.IsCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, key
}

// dial sends every host to the origins.
func (o *origins) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, _ := net.SplitHostPort(addr)
	target := o.plainAddr
	if port == "443" {
		target = o.tlsAddr
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// env is a platform with its gateway in front of the origins.
type env struct {
	*platformtest.Platform
	o      *origins
	tenant *x509.CertPool // trusts the tenant's inspection CA
}

func newEnv(t *testing.T) *env {
	o := newOrigins(t)
	p := platformtest.Start(t, platformtest.Options{Server: server.Options{OriginRoots: o.roots, GatewayDial: o.dial}})
	resp, err := http.Get(p.URL("/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pemData, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("CA bundle: %s", pemData)
	}
	return &env{Platform: p, o: o, tenant: pool}
}

// client is a browser behind the agent: its requests reach the gateway
// with the given token (none when empty), and it trusts roots.
func (e *env) client(token string, roots *x509.CertPool, extra http.Header) *http.Client {
	proxyURL, _ := url.Parse("http://" + e.GatewayAddr)
	connectHeader := http.Header{}
	for k, v := range extra {
		connectHeader[k] = v
	}
	if token != "" {
		connectHeader.Set("Proxy-Authorization", "Bearer "+token)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), ProxyConnectHeader: connectHeader,
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableCompression: true}
	return &http.Client{Transport: &headerRT{tr, connectHeader}, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// headerRT adds the proxy headers to plain-HTTP requests too (Go's
// transport only puts ProxyConnectHeader on CONNECT).
type headerRT struct {
	tr *http.Transport
	h  http.Header
}

func (h *headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		r = r.Clone(r.Context())
		for k, v := range h.h {
			r.Header[k] = v
		}
	}
	return h.tr.RoundTrip(r)
}

func (e *env) login(t *testing.T, who int) *auth.TokenResponse {
	u := demo.Users[who]
	return e.Login(t, u.Login, u.Password, "dev-"+u.Login)
}

func (e *env) admin(t *testing.T, method, path, body string) (int, map[string]any) {
	req, _ := http.NewRequest(method, e.BaseURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// eventually retries f until it returns true or the deadline passes: the
// gateway applies revocations and policy changes at its next feed read.
func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond) // waiting on another node's poll: nothing to inject a clock into
	}
}

// send writes req, raw, on a new connection to the gateway and reads the
// answer and its body.
func (e *env) send(t *testing.T, req string) (*http.Response, string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", e.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}
