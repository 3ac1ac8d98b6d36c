package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/platform/server"
	"vigie/platform/store"
	"vigie/platform/store/pgtest"
)

// propagationBound is how long a policy change or a revocation may take to
// reach every gateway node: the nodes read the feed every 500 ms; the rest
// is room for a loaded machine (-race, tests in parallel).
const propagationBound = 5 * time.Second

// TestTwoGatewayNodes runs the platform as it scales out: one PostgreSQL,
// the platform in this process, and two gateway nodes as separate
// processes (`platform gateway --config FILE`) sharing the database and
// the master key, and nothing else. A policy change and a revocation made
// through the admin API reach both nodes within seconds, and a revocation
// closes the tunnel the user has open through each.
//
// The nodes dial real addresses and verify origin certificates against the
// system's roots, so the origin is a plain HTTP server on 127.0.0.1, asked
// for by that address, and HTTPS-like traffic is an uninspected tunnel to it.
func TestTwoGatewayNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	st, err := store.Open(t.Context(), store.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, st, server.Options{}) // closes st when it stops
	bin := platformBinary(t)
	origin := newLoopbackOrigin(t)
	_, port, _ := net.SplitHostPort(origin)

	// Tunnels may reach the origin's port, and 127.0.0.1 is not inspected.
	allow := fmt.Sprintf(`{"connect_ports":[%s],"rules":[{"id":"loopback-origin","hosts":["127.0.0.1"],"action":"allow_no_inspect"}]}`, port)
	p.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":0,"policy":`+allow+`}`)
	nodes := []*gatewayNode{
		startGatewayNode(t, bin, "A", p, store.Postgres, dsn),
		startGatewayNode(t, bin, "B", p, store.Postgres, dsn),
	}
	tok := p.token(t, 0)

	// Alice's requests and tunnels work through both nodes.
	clients := make([]*http.Client, len(nodes))
	page := "http://" + origin + "/scale-out"
	for i, n := range nodes {
		if resp, body := get(t, http.DefaultClient, "http://"+n.MainAddr+"/healthz"); resp.StatusCode != 200 {
			t.Fatalf("node %s: /healthz: %d %s", n.name, resp.StatusCode, body)
		}
		clients[i] = proxyClient(n.Addr, tok)
		resp, body := get(t, clients[i], page)
		if resp.StatusCode != 200 || body != "hello from "+origin+"/scale-out" || !strings.Contains(resp.Header.Get("Via"), "vigie") {
			t.Fatalf("node %s: GET %s: %d %q (Via %q)", n.name, page, resp.StatusCode, body, resp.Header.Get("Via"))
		}
		if err := openLoopbackTunnel(t, n.Addr, origin, tok).get("/in-tunnel"); err != nil {
			t.Fatalf("node %s: request in a tunnel: %v", n.name, err)
		}
	}
	status := func(i int) int {
		resp, err := clients[i].Get(page)
		if err != nil {
			return 0 // a connection the node closed (revocation): ask again
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// The admin blocks the origin: both nodes block it, then allow it again
	// when the block is lifted.
	block := fmt.Sprintf(`{"connect_ports":[%s],"rules":[{"id":"scale-out-block","hosts":["127.0.0.1"],"action":"block"}]}`, port)
	sent := time.Now()
	p.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":1,"policy":`+block+`}`)
	blocked := untilAll(t, nodes, sent, "the block", func(i int) bool { return status(i) == http.StatusForbidden })
	sent = time.Now()
	p.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":2,"policy":`+allow+`}`)
	allowed := untilAll(t, nodes, sent, "lifting the block", func(i int) bool { return status(i) == http.StatusOK })
	for i, n := range nodes {
		t.Logf("node %s: policy change applied %v (block) and %v (unblock) after it was sent to the admin API",
			n.name, blocked[i].Round(time.Millisecond), allowed[i].Round(time.Millisecond))
	}

	// Alice is revoked: each node closes the tunnel she has open through
	// it, and refuses her token.
	tunnels := make([]*loopbackTunnel, len(nodes))
	for i, n := range nodes {
		tunnels[i] = openLoopbackTunnel(t, n.Addr, origin, tok)
		if err := tunnels[i].get("/before-revocation"); err != nil {
			t.Fatalf("node %s: request in a tunnel: %v", n.name, err)
		}
	}
	closed := make([]chan time.Time, len(tunnels))
	for i, tun := range tunnels {
		closed[i] = make(chan time.Time, 1)
		go func() {
			// Nothing comes from the origin unasked: a read ends when the
			// node closes the connection.
			tun.conn.SetReadDeadline(time.Now().Add(2 * propagationBound))
			_, err := tun.br.ReadByte()
			if err == nil {
				t.Errorf("node %s: the tunnel sent data after the revocation", nodes[i].name)
			}
			closed[i] <- time.Now()
		}()
	}
	sent = time.Now()
	p.admin(t, "POST", "/api/v1/tenants/demo/users/demo-alice/revoke", "")
	refused := untilAll(t, nodes, sent, "the revocation", func(i int) bool { return status(i) == http.StatusProxyAuthRequired })
	for i, n := range nodes {
		at := <-closed[i]
		d := at.Sub(sent)
		if d > propagationBound {
			t.Errorf("node %s: the tunnel closed %v after the revocation", n.name, d)
		}
		t.Logf("node %s: revocation applied: token refused %v and open tunnel closed %v after it was sent",
			n.name, refused[i].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	// A new tunnel is refused too.
	for _, n := range nodes {
		if status := connectStatus(t, n.Addr, origin, tok); status != http.StatusProxyAuthRequired {
			t.Errorf("node %s: CONNECT after the revocation: %d", n.name, status)
		}
	}
}

// untilAll asks every node's check concurrently until it holds, and returns
// how long after since each took. It fails t for a node that takes longer
// than propagationBound.
func untilAll(t *testing.T, nodes []*gatewayNode, since time.Time, what string, check func(i int) bool) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(nodes))
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			for !check(i) {
				if time.Since(since) > propagationBound {
					took[i] = -1
					return
				}
				// The node polls the database on its own schedule:
				// nothing to inject a clock into.
				time.Sleep(10 * time.Millisecond)
			}
			took[i] = time.Since(since)
		})
	}
	wg.Wait()
	for i, d := range took {
		if d < 0 {
			t.Fatalf("node %s: %s did not apply within %v", nodes[i].name, what, propagationBound)
		}
	}
	return took
}

// newLoopbackOrigin serves plain HTTP on 127.0.0.1 until t ends and returns
// its address.
func newLoopbackOrigin(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s%s", r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// proxyClient sends plain-HTTP requests through the proxy at addr with a
// bearer token.
func proxyClient(addr, tok string) *http.Client {
	proxyURL := &url.URL{Scheme: "http", Host: addr}
	h := http.Header{"Proxy-Authorization": {"Bearer " + tok}}
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), ProxyConnectHeader: h, DisableCompression: true}
	return &http.Client{Transport: &headerRT{tr, h}, Timeout: 10 * time.Second}
}

// loopbackTunnel is a CONNECT tunnel through a gateway to a plain HTTP
// origin, with HTTP/1.1 requests sent in it as they would be in TLS.
type loopbackTunnel struct {
	conn   net.Conn
	br     *bufio.Reader
	target string
}

func openLoopbackTunnel(t *testing.T, proxy, target, tok string) *loopbackTunnel {
	t.Helper()
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Bearer %s\r\n\r\n", target, target, tok)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s through %s: %v %v", target, proxy, resp, err)
	}
	conn.SetDeadline(time.Time{})
	return &loopbackTunnel{conn: conn, br: br, target: target}
}

func (l *loopbackTunnel) get(path string) error {
	l.conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer l.conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(l.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, l.target); err != nil {
		return err
	}
	resp, err := http.ReadResponse(l.br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if want := "hello from " + l.target + path; resp.StatusCode != 200 || string(body) != want {
		return fmt.Errorf("%d %q, want 200 %q", resp.StatusCode, body, want)
	}
	return nil
}

// connectStatus is the status of a CONNECT to target through proxy.
func connectStatus(t *testing.T, proxy, target, tok string) int {
	t.Helper()
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Bearer %s\r\n\r\n", target, target, tok)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("CONNECT %s through %s: %v", target, proxy, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
