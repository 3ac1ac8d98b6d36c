package service

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigie/platform/platformtest"

	"vigie/agent/internal/loopback"
)

// The agent's benchmarks (issue 5): every figure is a ratio, or a
// difference, against a baseline measured in the same run on the same
// machine, which also runs the clients, the origin and (for these two) the
// agent itself. The tenant PAC sends everything DIRECT, so what is measured
// is the agent's own cost: attribution of the connection, routing (PAC
// evaluation, its cache), and relaying. The agent's memory is measured on
// the real binary, in bench_linux_test.go.
//
//	go test -run '^$' -bench . -benchtime 1x -count 1 ./agent/service/
//
// (with -v to see the agent's logs; where the open-file limit is below
// 20,150, tunnels-max holds fewer than 10,000 tunnels: its tunnels metric
// says how many). More ops per run
// (-benchtime 5x) and runs (-count 5, compared with benchstat) steady
// the figures on a shared machine.
//
// Nothing leaves loopback: the agent's dialer sends every name to a
// listener of the benchmark and refuses any address that is not loopback.

// benchPAC is the tenant's PAC of the benchmarks.
const benchPAC = `function FindProxyForURL(url, host) { return "DIRECT"; }`

// benchBody is what the HTTP origin answers: a small object, so that the
// cost measured is the proxy's, not copying.
var benchBody = strings.Repeat("v", 1024)

// startBenchPlatform runs the demo platform with benchPAC as the tenant's
// PAC, and returns the PAC's version: an agent started afterwards fetches
// it at once. The captive-portal check (which an agent makes only when the
// gateway is unreachable) is sent to loopback too.
func startBenchPlatform(tb testing.TB) (*platformtest.Platform, int64) {
	tb.Helper()
	p := platformtest.Start(tb, platformtest.Options{})
	ctx := context.Background()
	if _, _, err := p.Server.Distrib.SetConfig(ctx, p.Tenant, []byte(`{"portal_check_url": "http://127.0.0.1:9/generate_204"}`)); err != nil {
		tb.Fatalf("setting the tenant configuration: %v", err)
	}
	art, _, err := p.Server.Distrib.SetPAC(ctx, p.Tenant, []byte(benchPAC))
	if err != nil {
		tb.Fatalf("setting the tenant PAC: %v", err)
	}
	return p, art.Version
}

// loopbackDial is the agent's dialer in the benchmarks: host names go to
// target (a listener of the benchmark), loopback addresses where they say,
// anything else nowhere.
func loopbackDial(target string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsLoopback() {
				return nil, fmt.Errorf("benchmark: not dialling %s: loopback only", addr)
			}
			return d.DialContext(ctx, network, addr)
		}
		return d.DialContext(ctx, network, target)
	}
}

// startBenchAgent runs an agent in this process, in user mode, dialling
// names to target, until the benchmark ends; it returns once the agent has
// the tenant PAC of version pacVersion or later.
func startBenchAgent(tb testing.TB, p *platformtest.Platform, pacVersion int64, target string) *Agent {
	tb.Helper()
	cfg := &Config{PlatformURL: p.BaseURL, Tenant: p.Tenant, EnrollmentSecret: p.EnrollmentSecret,
		DistributionKey: p.DistributionKey, Port: freePort(tb), StateDir: tb.TempDir()}
	a := startAgent(tb, cfg, Options{UserMode: true, Dial: loopbackDial(target),
		Logger: slog.New(slog.NewTextHandler(benchLog{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	deadline := time.Now().Add(20 * time.Second)
	for a.syncer.Current().Version("pac") < pacVersion {
		if time.Now().After(deadline) {
			tb.Fatalf("the agent has PAC version %d after 20s, want %d", a.syncer.Current().Version("pac"), pacVersion)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a
}

// benchLog sends the agent's warnings to the benchmark's log.
type benchLog struct{ tb testing.TB }

func (w benchLog) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// BenchmarkAgentHTTP compares plain-HTTP requests through the agent (DIRECT
// route) with the same requests straight to the origin, both over
// keep-alive connections to a loopback origin. One op is:
//
//   - latency: benchLatencyPairs requests one at a time, alternating
//     straight and through the agent; added-p50-µs and added-p99-µs are the
//     differences of the two distributions' percentiles (target: added p50
//     at most 200 µs);
//   - throughput: benchHTTPRequests requests by benchHTTPWorkers clients at
//     once, straight then through the agent, twice; x-vs-direct is the
//     agent's requests per second over the origin's;
//   - new connections: benchNewConnPairs requests as for latency, each on a
//     new connection (to the origin, or to the agent, whose own connections
//     to the origin stay open): added-newconn-p50-µs is what accepting a
//     connection costs the agent on top, mostly finding which OS user owns
//     it.
func BenchmarkAgentHTTP(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, benchBody)
	}))
	b.Cleanup(origin.Close)
	p, pacVersion := startBenchPlatform(b)
	a := startBenchAgent(b, p, pacVersion, origin.Listener.Addr().String())

	newClient := func(proxyURL *url.URL, newConns bool) *http.Client {
		tr := &http.Transport{MaxIdleConnsPerHost: benchHTTPWorkers, DisableCompression: true, DisableKeepAlives: newConns}
		if proxyURL != nil {
			tr.Proxy = http.ProxyURL(proxyURL)
		}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	// The agent sees a host name, which its PAC routes; the origin is
	// asked by address.
	agentURL := &url.URL{Scheme: "http", Host: a.Addr()}
	direct := benchHTTP{c: newClient(nil, false), url: origin.URL + "/object"}
	agent := benchHTTP{c: newClient(agentURL, false), url: "http://www.bench.test/object"}
	directNew := benchHTTP{c: newClient(nil, true), url: direct.url}
	agentNew := benchHTTP{c: newClient(agentURL, true), url: agent.url}
	for range 200 { // warm up: connections, the PAC cache
		if _, err := direct.get(); err != nil {
			b.Fatal(err)
		}
		if _, err := agent.get(); err != nil {
			b.Fatal(err)
		}
	}

	var directLat, agentLat, directNewLat, agentNewLat []time.Duration
	var directTime, agentTime time.Duration
	var directN, agentN int
	b.ResetTimer()
	for range b.N {
		for range benchLatencyPairs {
			directLat, agentLat = getPair(b, direct, agent, directLat, agentLat)
		}
		for range benchNewConnPairs {
			directNewLat, agentNewLat = getPair(b, directNew, agentNew, directNewLat, agentNewLat)
		}
		for range 2 {
			d, err := direct.load(benchHTTPRequests, benchHTTPWorkers)
			if err != nil {
				b.Fatal(err)
			}
			directTime, directN = directTime+d, directN+benchHTTPRequests
			if d, err = agent.load(benchHTTPRequests, benchHTTPWorkers); err != nil {
				b.Fatal(err)
			}
			agentTime, agentN = agentTime+d, agentN+benchHTTPRequests
		}
	}
	b.StopTimer()

	directRPS := float64(directN) / directTime.Seconds()
	agentRPS := float64(agentN) / agentTime.Seconds()
	b.ReportMetric(directRPS, "direct-req/s")
	b.ReportMetric(agentRPS, "agent-req/s")
	b.ReportMetric(agentRPS/directRPS, "x-vs-direct")
	dp50, dp99 := benchQuantile(directLat, 0.50), benchQuantile(directLat, 0.99)
	ap50, ap99 := benchQuantile(agentLat, 0.50), benchQuantile(agentLat, 0.99)
	b.ReportMetric(benchMicros(dp50), "direct-p50-µs")
	b.ReportMetric(benchMicros(dp99), "direct-p99-µs")
	b.ReportMetric(benchMicros(ap50-dp50), "added-p50-µs")
	b.ReportMetric(benchMicros(ap99-dp99), "added-p99-µs")
	b.ReportMetric(benchMicros(benchQuantile(agentNewLat, 0.50)-benchQuantile(directNewLat, 0.50)), "added-newconn-p50-µs")
	if c := a.px.Counters(); c.Direct < uint64(agentN) || c.Failed > 0 {
		b.Errorf("the agent's counters: %+v; want every request DIRECT", c)
	}
}

const (
	benchLatencyPairs = 2000
	benchHTTPRequests = 4000
	benchNewConnPairs = 200
	// benchHTTPWorkers is how many clients send at once in the throughput
	// part: a few browsers' worth of connections.
	benchHTTPWorkers = 8
)

type benchHTTP struct {
	c   *http.Client
	url string
}

// get makes one request and returns how long it took, body read.
func (h benchHTTP) get() (time.Duration, error) {
	start := time.Now()
	resp, err := h.c.Get(h.url)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && (resp.StatusCode != http.StatusOK || n != int64(len(benchBody))) {
		err = fmt.Errorf("GET %s: %s, %d bytes", h.url, resp.Status, n)
	}
	return d, err
}

// load makes n requests with workers clients at once and returns how long
// they took.
func (h benchHTTP) load(n, workers int) (time.Duration, error) {
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := h.get(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return d, <-errs
}

// getPair times one request of x then one of y, and appends the times to
// xs and ys.
func getPair(b *testing.B, x, y benchHTTP, xs, ys []time.Duration) ([]time.Duration, []time.Duration) {
	dx, err := x.get()
	if err != nil {
		b.Fatal(err)
	}
	dy, err := y.get()
	if err != nil {
		b.Fatal(err)
	}
	return append(xs, dx), append(ys, dy)
}

// benchQuantile is the nearest-rank q-quantile of ds (sorted in place).
func benchQuantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[int(q*float64(len(ds)-1)+0.5)]
}

func benchMicros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkAgentConnectBulk compares bulk transfers in a CONNECT tunnel
// through the agent (DIRECT route) with the same transfers on a connection
// straight to a loopback sink. One op moves benchBulkBytes each way (client
// to sink, then sink to client) straight, through a bare relay, and through
// the agent, on a new connection each time, timed from the first byte (the
// cost of opening a connection to the agent is added-newconn-p50-µs of
// BenchmarkAgentHTTP). x-vs-direct is the agent's MB/s over the direct
// MB/s, both directions together (target: at least 0.9); up- and down-
// give each direction.
//
// The bare relay is the floor of any relaying proxy on this machine: a
// goroutine pair copying between two sockets (splice on Linux), nothing
// else. relay-x-vs-direct is its ratio and x-vs-relay the agent's against
// it. Where the machine has few cores (the client, the relay and the sink
// all run here), relaying at all costs much of the direct figure, and
// x-vs-relay is what tells the agent's own overhead.
func BenchmarkAgentConnectBulk(b *testing.B) {
	sink := startBulkSink(b)
	relay := startBareRelay(b, sink)
	p, pacVersion := startBenchPlatform(b)
	a := startBenchAgent(b, p, pacVersion, sink)

	type dialer func() (net.Conn, io.Reader, error)
	plain := func(addr string) dialer {
		return func() (net.Conn, io.Reader, error) {
			c, err := net.Dial("tcp", addr)
			return c, c, err
		}
	}
	agentDial := func() (net.Conn, io.Reader, error) { return connectVia(a.Addr(), "bulk.bench.test:443") }
	ways := []struct {
		name     string
		dial     dialer
		up, down time.Duration
	}{{name: "direct", dial: plain(sink)}, {name: "relay", dial: plain(relay)}, {name: "agent", dial: agentDial}}
	for _, w := range ways { // warm up (the PAC cache, the pipes of splice)
		if _, err := bulkUp(w.dial, 1<<20); err != nil {
			b.Fatalf("%s: %v", w.name, err)
		}
	}

	b.ResetTimer()
	for op := range b.N {
		for k := range ways {
			w := &ways[(op+k)%len(ways)] // each goes first in turn
			d, err := bulkUp(w.dial, benchBulkBytes)
			if err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			w.up += d
			if d, err = bulkDown(w.dial, benchBulkBytes); err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			w.down += d
		}
	}
	b.StopTimer()

	mbps := func(n int, d time.Duration) float64 {
		return float64(n) * float64(b.N) * benchBulkBytes / 1e6 / d.Seconds()
	}
	direct, rel, agent := ways[0], ways[1], ways[2]
	b.ReportMetric(mbps(2, direct.up+direct.down), "direct-MB/s")
	b.ReportMetric(mbps(2, rel.up+rel.down), "relay-MB/s")
	b.ReportMetric(mbps(2, agent.up+agent.down), "agent-MB/s")
	b.ReportMetric(mbps(2, agent.up+agent.down)/mbps(2, direct.up+direct.down), "x-vs-direct")
	b.ReportMetric(mbps(1, agent.up)/mbps(1, direct.up), "up-x-vs-direct")
	b.ReportMetric(mbps(1, agent.down)/mbps(1, direct.down), "down-x-vs-direct")
	b.ReportMetric(mbps(2, rel.up+rel.down)/mbps(2, direct.up+direct.down), "relay-x-vs-direct")
	b.ReportMetric(mbps(2, agent.up+agent.down)/mbps(2, rel.up+rel.down), "x-vs-relay")
	if c := a.px.Counters(); c.Tunnels != uint64(2*b.N+1) || c.Direct != c.Tunnels || c.Failed > 0 {
		b.Errorf("the agent's counters: %+v; want %d tunnels, all DIRECT", c, 2*b.N+1)
	}
}

// startBareRelay listens on loopback and relays every connection to
// target, with half-closes, until the benchmark ends.
func startBareRelay(tb testing.TB, target string) string {
	return loopback.Serve(tb, func(c net.Conn) {
		t, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer t.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(t, c)
			t.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, t)
		c.(*net.TCPConn).CloseWrite()
		<-done
	})
}

// benchBulkBytes is what one transfer moves.
const benchBulkBytes = 64 << 20

// benchChunk is the size of the benchmark's reads and writes.
const benchChunk = 256 << 10

// startBulkSink listens on loopback for bulk transfers until the benchmark
// ends. A client sends 'u' then its data, closes its side, and reads back
// the count the sink received (8 bytes); or 'd' and a count (8 bytes), and
// reads that many bytes until the sink closes.
func startBulkSink(tb testing.TB) string {
	return loopback.Serve(tb, serveBulk)
}

func serveBulk(c net.Conn) {
	defer c.Close()
	buf := make([]byte, benchChunk)
	var cmd [9]byte
	if _, err := io.ReadFull(c, cmd[:1]); err != nil {
		return
	}
	switch cmd[0] {
	case 'u':
		var n uint64
		for {
			k, err := c.Read(buf)
			n += uint64(k)
			if err != nil {
				break
			}
		}
		c.Write(binary.BigEndian.AppendUint64(nil, n))
	case 'd':
		if _, err := io.ReadFull(c, cmd[1:]); err != nil {
			return
		}
		for left := binary.BigEndian.Uint64(cmd[1:]); left > 0; {
			k := min(left, uint64(len(buf)))
			if _, err := c.Write(buf[:k]); err != nil {
				return
			}
			left -= k
		}
	}
}

// connectVia opens a CONNECT tunnel to target through the proxy at addr, and
// returns the connection and where to read from it (the response's reader,
// which may hold the tunnel's first bytes).
func connectVia(addr, target string) (net.Conn, io.Reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

// bulkUp opens a connection, sends n bytes to the sink and returns how
// long it took from the first byte until the sink confirmed it had them
// all (opening the tunnel is not counted: added-newconn-p50-µs of
// BenchmarkAgentHTTP is that).
func bulkUp(dial func() (net.Conn, io.Reader, error), n int64) (time.Duration, error) {
	buf := make([]byte, benchChunk)
	c, r, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	buf[0] = 'u'
	if _, err := c.Write(buf[:1]); err != nil {
		return 0, err
	}
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return 0, err
		}
		left -= k
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var got [8]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		return 0, fmt.Errorf("upload: the sink's count: %w", err)
	}
	d := time.Since(start)
	if m := binary.BigEndian.Uint64(got[:]); m != uint64(n) {
		return 0, fmt.Errorf("upload: the sink got %d bytes of %d", m, n)
	}
	return d, nil
}

// bulkDown opens a connection, has the sink send n bytes and returns how
// long it took from the request until all were read.
func bulkDown(dial func() (net.Conn, io.Reader, error), n int64) (time.Duration, error) {
	buf := make([]byte, benchChunk)
	c, r, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write(binary.BigEndian.AppendUint64([]byte{'d'}, uint64(n))); err != nil {
		return 0, err
	}
	var got int64
	for {
		k, err := r.Read(buf)
		got += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	if got != n {
		return 0, fmt.Errorf("download: got %d bytes of %d", got, n)
	}
	return d, nil
}
