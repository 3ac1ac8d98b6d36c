package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNoLeaksAfterManyTunnels opens and closes 10,000 tunnels through the
// gateway, 64 at a time, each on its own client connection (raw net.Conn,
// CONNECT, tls.Client: nothing pools): inspected ones and uninspected ones
// that carry a request, and ones the client abandons at every stage (in
// the CONNECT, right after it, in the TLS handshake, in a response body).
// Then the gateway must give back what it took: goroutines and file
// descriptors return to within a few of what they were after a warm-up,
// and its gauges of open connections and tunnels to where they were.
//
// The count is 10,000 (about 15 s); the race detector makes each tunnel
// about 7 times as slow, so with it the count is 3,000, and with -short
// 1,000. VIGIE_LEAK_TUNNELS=n sets it.
func TestNoLeaksAfterManyTunnels(t *testing.T) {
	n := leakTunnelCount(t)
	e := newEnv(t)
	// The origins log every handshake a client abandons on the standard
	// logger: a thousand lines of noise here.
	defer log.SetOutput(log.Writer())
	log.SetOutput(io.Discard)
	d := &tunnelDriver{gateway: e.GatewayAddr, token: e.login(t, 0).AccessToken, tenantRoots: e.tenant, originRoots: e.o.roots}

	// Warm-up: every kind a few dozen times, so that what the gateway
	// creates once and keeps (the tenant, verified tokens, minted leaves,
	// the log writer's buffers) exists before the baseline.
	const warmup = 640
	d.run(t, 0, warmup)
	if t.Failed() {
		t.FailNow()
	}
	base := e.leakBaseline(t)
	t.Logf("baseline: %s", base)

	e.setOriginKeepAlives(true)
	start := time.Now()
	d.run(t, warmup, warmup+n)
	t.Logf("%d tunnels in %v (%s)", n, time.Since(start).Round(time.Millisecond), d.summary())
	if t.Failed() {
		t.FailNow()
	}

	// The origins close the connections the gateway keeps for reuse, as
	// they did for the baseline: what is left open is a leak.
	const tolerance = 10
	limit := 30 * time.Second
	deadline := time.Now().Add(limit)
	for {
		e.setOriginKeepAlives(false)
		now := e.leakCounters()
		if now.within(base, tolerance) {
			t.Logf("back to baseline after %v: %s", time.Since(start).Round(time.Millisecond), now)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to baseline (±%d) within %v after %d tunnels:\nbaseline %s\nnow      %s\n%s\n%s",
				tolerance, limit, n, base, now, openFDs(), goroutineDump(16<<10))
		}
		time.Sleep(50 * time.Millisecond) // waiting for other goroutines to exit: nothing to synchronise with
	}
}

// leakTunnelCount is how many tunnels the leak test opens.
func leakTunnelCount(t *testing.T) int {
	if s := os.Getenv("VIGIE_LEAK_TUNNELS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VIGIE_LEAK_TUNNELS=%q: want a positive number", s)
		}
		return n
	}
	switch {
	case testing.Short():
		return 1_000
	case raceEnabled:
		return 3_000
	}
	return 10_000
}

// tunnelDriver opens tunnels of every kind through the gateway.
type tunnelDriver struct {
	gateway     string
	token       string
	tenantRoots *x509.CertPool // inspected tunnels show a leaf of the tenant's CA
	originRoots *x509.CertPool // uninspected ones, the origin's own certificate
	done        []atomic.Int64 // by kind: how many went as planned
}

// tunnelKind is one way a client uses (or abandons) a tunnel.
type tunnelKind struct {
	name string
	open func(d *tunnelDriver, conn net.Conn) error
}

// tunnelKinds are taken in turn: four in ten tunnels carry requests to
// the end, the others are abandoned somewhere.
var tunnelKinds = []tunnelKind{
	{"inspected", func(d *tunnelDriver, c net.Conn) error { return d.request(c, "origin.example", "/leak") }},
	{"inspected, two requests", func(d *tunnelDriver, c net.Conn) error { return d.request(c, "origin.example", "/leak", "/again") }},
	{"uninspected", func(d *tunnelDriver, c net.Conn) error { return d.request(c, "bank.example", "/leak") }},
	{"uninspected, two requests", func(d *tunnelDriver, c net.Conn) error { return d.request(c, "bank.example", "/leak", "/again") }},
	{"inspected, closed in the response body", func(d *tunnelDriver, c net.Conn) error { return d.abandonBody(c, "origin.example") }},
	{"inspected, closed in the TLS handshake", func(d *tunnelDriver, c net.Conn) error { return d.abandonHandshake(c, "origin.example") }},
	{"uninspected, closed in the TLS handshake", func(d *tunnelDriver, c net.Conn) error { return d.abandonHandshake(c, "bank.example") }},
	{"inspected, closed right after CONNECT", func(d *tunnelDriver, c net.Conn) error { return d.connect(c, "origin.example", false) }},
	{"uninspected, closed right after CONNECT", func(d *tunnelDriver, c net.Conn) error { return d.connect(c, "bank.example", false) }},
	{"closed in the middle of the CONNECT", func(d *tunnelDriver, c net.Conn) error {
		_, err := io.WriteString(c, "CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\nProxy-Author")
		return err
	}},
}

// run opens tunnels from..to-1, 64 at a time; tunnel i is of kind
// i mod len(tunnelKinds). Failures of the tunnels that should work fail
// the test (the first few are reported).
func (d *tunnelDriver) run(t *testing.T, from, to int) {
	t.Helper()
	const parallel = 64
	if d.done == nil {
		d.done = make([]atomic.Int64, len(tunnelKinds))
	}
	next := make(chan int)
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				k := i % len(tunnelKinds)
				if err := d.one(k); err != nil {
					if failures.Add(1) <= 5 {
						t.Errorf("tunnel %d (%s): %v", i, tunnelKinds[k].name, err)
					}
					continue
				}
				d.done[k].Add(1)
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if f := failures.Load(); f > 5 {
		t.Errorf("... %d tunnels failed in all", f)
	}
}

func (d *tunnelDriver) one(kind int) error {
	conn, err := net.Dial("tcp", d.gateway)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return tunnelKinds[kind].open(d, conn)
}

func (d *tunnelDriver) summary() string {
	var parts []string
	for i, k := range tunnelKinds {
		parts = append(parts, fmt.Sprintf("%s: %d", k.name, d.done[i].Load()))
	}
	return strings.Join(parts, ", ")
}

// connect sends CONNECT host:443 with the token and, when wait is set,
// reads the 200 that opens the tunnel.
func (d *tunnelDriver) connect(conn net.Conn, host string, wait bool) error {
	if _, err := fmt.Fprintf(conn, "CONNECT %s:443 HTTP/1.1\r\nHost: %[1]s:443\r\nProxy-Authorization: Bearer %s\r\n\r\n", host, d.token); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	// The gateway says nothing more until the client speaks: no bytes of
	// the tunnel are left in the reader.
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("CONNECT %s: %w", host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", host, resp.Status)
	}
	return nil
}

// tlsClient starts TLS inside a tunnel to host, trusting what the gateway
// should present there: a leaf of the tenant's CA when it inspects, the
// origin's own certificate when it does not.
func (d *tunnelDriver) tlsClient(conn net.Conn, host string) *tls.Conn {
	roots := d.tenantRoots
	if host == "bank.example" {
		roots = d.originRoots
	}
	return tls.Client(conn, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12})
}

// request sends GET for each path, one after the other on one tunnel, and
// checks each answer comes from the origin.
func (d *tunnelDriver) request(conn net.Conn, host string, paths ...string) error {
	if err := d.connect(conn, host, true); err != nil {
		return err
	}
	tc := d.tlsClient(conn, host)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS with %s: %w", host, err)
	}
	br := bufio.NewReader(tc)
	for _, p := range paths {
		if _, err := fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", p, host); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("GET %s%s: %w", host, p, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello from " + host + p; err != nil || resp.StatusCode != http.StatusOK || string(body) != want {
			return fmt.Errorf("GET %s%s: %d %q %v, want 200 %q", host, p, resp.StatusCode, body, err, want)
		}
	}
	return nil
}

// abandonBody asks for the origin's 1 MiB body and hangs up after its
// first bytes: the gateway is in the middle of relaying it.
func (d *tunnelDriver) abandonBody(conn net.Conn, host string) error {
	if err := d.connect(conn, host, true); err != nil {
		return err
	}
	tc := d.tlsClient(conn, host)
	if _, err := fmt.Fprintf(tc, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return fmt.Errorf("GET %s/big: %w", host, err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		return fmt.Errorf("GET %s/big: %d %w", host, resp.StatusCode, err)
	}
	return nil // the caller closes the connection
}

// abandonHandshake sends the TLS ClientHello and hangs up before the
// handshake ends, whoever answers it (the gateway or the origin).
func (d *tunnelDriver) abandonHandshake(conn net.Conn, host string) error {
	if err := d.connect(conn, host, true); err != nil {
		return err
	}
	d.tlsClient(hangUpAfterWrite{conn}, host).Handshake() // fails: the connection is closed
	return nil
}

// hangUpAfterWrite closes the connection after its first write.
type hangUpAfterWrite struct{ net.Conn }

func (c hangUpAfterWrite) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.Conn.Close()
	return n, err
}

// leakCounters are what the leak test compares with its baseline.
type leakCounters struct {
	goroutines int
	fds        int // -1 where /proc/self/fd does not exist (not Linux)
	conns      int // the gateway's vigie_gateway_open_connections
	tunnels    int // vigie_gateway_open_tunnels
	inspected  int // vigie_gateway_open_inspected_tunnels
}

func (c leakCounters) String() string {
	fds := "n/a"
	if c.fds >= 0 {
		fds = strconv.Itoa(c.fds)
	}
	return fmt.Sprintf("goroutines %d, fds %s, gateway connections %d, uninspected tunnels %d, inspected tunnels %d",
		c.goroutines, fds, c.conns, c.tunnels, c.inspected)
}

// within says whether c is no more than tolerance goroutines and file
// descriptors above base, with no more gateway connections and tunnels
// open.
func (c leakCounters) within(base leakCounters, tolerance int) bool {
	return c.goroutines <= base.goroutines+tolerance && c.fds <= base.fds+tolerance &&
		c.conns <= base.conns && c.tunnels <= base.tunnels && c.inspected <= base.inspected
}

func (e *env) leakCounters() leakCounters {
	c := leakCounters{goroutines: runtime.NumGoroutine(), fds: -1}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		c.fds = len(fds)
	}
	// The gauges, read in process: a request over the network would itself
	// add goroutines and descriptors.
	rec := httptest.NewRecorder()
	e.Server.Gateway.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	c.conns = promGauge(rec.Body.String(), "vigie_gateway_open_connections")
	c.tunnels = promGauge(rec.Body.String(), "vigie_gateway_open_tunnels")
	c.inspected = promGauge(rec.Body.String(), "vigie_gateway_open_inspected_tunnels")
	return c
}

// gauge reads an unlabelled series from Prometheus text; -1 if absent.
func promGauge(text, name string) int {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// setOriginKeepAlives turns the origins' keep-alives on or off. Each time
// they are turned off, the origins close their idle connections, and those
// that have waited over 5 s for a first request (the gateway's transport
// sometimes dials one it then does not need): called until the counters
// settle, it empties the gateway's pool of origin connections for both
// measurements.
func (e *env) setOriginKeepAlives(on bool) {
	e.o.plain.SetKeepAlivesEnabled(on)
	e.o.tls.SetKeepAlivesEnabled(on)
}

// leakBaseline empties the gateway's origin pool and waits for the
// counters to hold still (the same for half a second), then returns them.
func (e *env) leakBaseline(t *testing.T) leakCounters {
	t.Helper()
	settle := func() leakCounters {
		e.setOriginKeepAlives(false)
		// The test's own idle connections to the platform (sign-in) too.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		return e.leakCounters()
	}
	last, same := settle(), 0
	for deadline := time.Now().Add(15 * time.Second); same < 10; {
		if time.Now().After(deadline) {
			t.Logf("the counters did not settle after the warm-up; baseline taken anyway")
			break
		}
		time.Sleep(50 * time.Millisecond) // waiting for other goroutines to exit: nothing to synchronise with
		now := settle()
		if now == last {
			same++
		} else {
			last, same = now, 0
		}
	}
	return last
}

// goroutineDump is the goroutine profile (stacks grouped, counted), cut at
// max bytes.
func goroutineDump(max int) string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	if buf.Len() > max {
		return buf.String()[:max] + fmt.Sprintf("\n... (%d more bytes)", buf.Len()-max)
	}
	return buf.String()
}

// openFDs counts the process's descriptors by kind (socket, file, …).
func openFDs() string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return ""
	}
	kinds := map[string]int{}
	for _, fd := range entries {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil {
			continue
		}
		if i := strings.IndexAny(target, ":["); i > 0 && !strings.HasPrefix(target, "/") {
			target = target[:i]
		}
		kinds[target]++
	}
	var lines []string
	for k, n := range kinds {
		lines = append(lines, fmt.Sprintf("%6d %s", n, k))
	}
	sort.Strings(lines)
	return "open file descriptors:\n" + strings.Join(lines, "\n")
}
