package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	samllogger "github.com/crewjam/saml/logger"

	"vigie/platform/gateway"
	"vigie/platform/server"
)

// benchClients is about how many clients send requests at once in the
// throughput benchmarks (RunParallel rounds it to a multiple of GOMAXPROCS):
// enough that a proxy's concurrency shows, as many browsers behind it do.
const benchClients = 32

// benchBody is what the origin answers: a small object, so that the cost
// measured is the proxy's, not copying.
var benchBody = strings.Repeat("v", 1024)

// BenchmarkGateway measures the gateway against baselines in the same run
// (ratios are the figures to read; absolute ones depend on the machine,
// which here also runs the clients and the origin):
//
//	direct             clients → origin, keep-alive: the baseline
//	gateway-auth       through a gateway, a valid bearer token on every
//	                   request (the same one: the auth-cache path)
//	gateway-noauth     through the same kind of gateway with
//	                   UnauthenticatedForBenchmarks, the same requests:
//	                   auth-cost-% = 100 × (1 − rps(auth)/rps(noauth))
//	                   auth-share-% (on gateway-auth): the time of one
//	                   cached authentication (auth-ns, timed alone) over
//	                   the gateway's CPU time per request (cpu-us/op of
//	                   gateway-auth less direct's): the steady figure
//	squid              Debian's squid as a plain forward proxy (no cache),
//	                   the same requests: gateway-vs-squid = rps(auth)/rps(squid)
//	tls-inspect/warm   new inspected TLS connections (CONNECT + handshake
//	                   with a minted leaf), always the same host: leaf cached
//	tls-inspect/cold   the same with a new host name each time: a leaf is
//	                   minted for every handshake; cold-vs-warm is the ratio
//
// Every throughput benchmark reports req/s (handshakes/s), the HTTP ones
// the p50 and p99 latency of a request in microseconds, and those whose
// every hop runs in this process the CPU time per operation (cpu-us/op):
// auth-cpu-% is auth-cost-% computed from it, steadier when other work
// shares the machine. -count N repeats each sub-benchmark N times in a row;
// a ratio uses the latest run of its baseline.
//
// On a small shared machine, runs of one second vary by more than the 2 %
// that authentication may cost: for that figure, prefer many long runs
// (-benchtime 5s -count 10, compared with benchstat), or a CPU profile of
// gateway-auth (-cpuprofile) and the share of Gateway.authenticate in it.
func BenchmarkGateway(b *testing.B) {
	quietDemoIdP(b)
	origin := newBenchOrigin(b)
	p := startPlatform(b, nil, server.Options{})
	tok := p.token(b, 0)
	tenantCAs := tenantCAPool(b, p)
	sealer := p.Sealer(b)
	var authG *gateway.Gateway
	startGateway := func(anonymous bool) string {
		g, err := gateway.New(gateway.Options{Store: p.Server.Store, Sealer: sealer, BaseURL: p.BaseURL,
			Logger: slog.New(slog.DiscardHandler), Dial: dialOnly(origin),
			UnauthenticatedForBenchmarks: anonymous, BenchmarkTenant: p.Tenant})
		if err != nil {
			b.Fatal(err)
		}
		if !anonymous {
			authG = g
		}
		return serveGateway(b, g)
	}
	authGW, anonGW := startGateway(false), startGateway(true)
	target := "http://" + origin + "/bench"
	auth := http.Header{"Proxy-Authorization": {"Bearer " + tok}}

	// A sub-benchmark's function runs several times (growing b.N) and its
	// cleanups run after each: what must last, the parent keeps.
	top := b
	client := func(proxyAddr string) *http.Client {
		c := benchClient(proxyAddr)
		top.Cleanup(c.CloseIdleConnections)
		return c
	}
	directC, authC, anonC := client(""), client(authGW), client(anonGW)

	// The proxied requests are the same bytes for every proxy: the bearer
	// token too, which only gateway-auth looks at.
	rps, cpu := map[string]float64{}, map[string]float64{}
	b.Run("direct", func(b *testing.B) {
		rps["direct"], cpu["direct"] = benchHTTP(b, directC, target, nil, true)
	})
	b.Run("gateway-auth", func(b *testing.B) {
		rps["auth"], cpu["auth"] = benchHTTP(b, authC, target, auth, true)
		reportRatio(b, rps["auth"], rps["direct"], "x-vs-direct")
		// What authentication takes of the gateway's CPU time per
		// request, measured directly: one cached authentication against
		// cpu-us/op less direct's (the client's and the origin's share).
		per, err := authG.AuthenticateForBenchmark(auth, 100_000)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(per.Nanoseconds()), "auth-ns")
		if gw := cpu["auth"] - cpu["direct"]; cpu["direct"] > 0 && gw > 0 {
			b.ReportMetric(100*float64(per.Nanoseconds())/1e3/gw, "auth-share-%")
		}
	})
	b.Run("gateway-noauth", func(b *testing.B) {
		rps["noauth"], cpu["noauth"] = benchHTTP(b, anonC, target, auth, true)
		reportRatio(b, rps["noauth"], rps["direct"], "x-vs-direct")
		if rps["auth"] > 0 {
			b.ReportMetric(100*(1-rps["auth"]/rps["noauth"]), "auth-cost-%")
		}
		// The same from the CPU time per request, which other load on the
		// machine does not skew as it does throughput.
		if cpu["auth"] > 0 && cpu["noauth"] > 0 {
			b.ReportMetric(100*(1-cpu["noauth"]/cpu["auth"]), "auth-cpu-%")
		}
	})
	var sq *squid
	var squidC *http.Client
	b.Run("squid", func(b *testing.B) {
		if sq == nil {
			var err error
			switch sq, err = startSquid(top); {
			case errors.Is(err, errNoSquid):
				b.Skip(err)
			case err != nil:
				b.Fatal(err)
			}
			squidC = client(sq.addr)
		}
		rps["squid"], _ = benchHTTP(b, squidC, target, auth, false)
		reportRatio(b, rps["squid"], rps["direct"], "x-vs-direct")
		reportRatio(b, rps["auth"], rps["squid"], "gateway-vs-squid")
	})
	if sq != nil {
		sq.stop() // not to compete for the CPUs below
	}

	hs := map[string]float64{}
	b.Run("tls-inspect/warm", func(b *testing.B) {
		hs["warm"] = benchHandshakes(b, authGW, tok, tenantCAs, func() string { return "warm.bench.example" })
	})
	b.Run("tls-inspect/cold", func(b *testing.B) {
		hs["cold"] = benchHandshakes(b, authGW, tok, tenantCAs, func() string {
			return "h" + strconv.FormatInt(coldHosts.Add(1), 36) + ".cold.bench.example"
		})
		reportRatio(b, hs["cold"], hs["warm"], "cold-vs-warm")
	})
}

// reportRatio reports num/den, when both were measured in this run (a
// -bench pattern may leave a baseline out).
func reportRatio(b *testing.B, num, den float64, unit string) {
	if num > 0 && den > 0 {
		b.ReportMetric(num/den, unit)
	}
}

// coldHosts numbers the host names of the cold handshakes: never the same
// twice in a process, so never in a leaf cache.
var coldHosts atomic.Int64

// quietDemoIdP silences the demo IdP's "User 'alice' authenticated" line on
// stdout (crewjam/saml's default logger), which would land among the
// benchmark results.
func quietDemoIdP(b *testing.B) {
	w := samllogger.DefaultLogger.Writer()
	samllogger.DefaultLogger.SetOutput(io.Discard)
	b.Cleanup(func() { samllogger.DefaultLogger.SetOutput(w) })
}

// newBenchOrigin serves benchBody on 127.0.0.1 until b ends.
func newBenchOrigin(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, benchBody)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dialOnly sends every connection to addr, whatever host was asked for:
// the cold handshakes invent host names, which must never reach a network.
func dialOnly(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// serveGateway runs g (proxy and feed) on a loopback port until tb ends and
// returns the port's address.
func serveGateway(tb testing.TB, g *gateway.Gateway) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { g.Run(ctx) })
	wg.Go(func() { g.Serve(ctx, ln) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
	return ln.Addr().String()
}

func tenantCAPool(tb testing.TB, p *testPlatform) *x509.CertPool {
	resp, err := http.Get(p.URL("/ca.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	pemData, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		tb.Fatalf("tenant CA bundle: %s", pemData)
	}
	return pool
}

// benchClient is a keep-alive client with a connection per concurrent
// client, through the proxy at proxyAddr (none when empty).
func benchClient(proxyAddr string) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * benchClients, DisableCompression: true}
	if proxyAddr != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func benchParallelism() int { return max(1, benchClients/runtime.GOMAXPROCS(0)) }

// benchHTTP sends GET target with header from concurrent clients, checks
// every answer, reports throughput and latency percentiles, and returns the
// requests per second. When inProcess (every hop runs in this process,
// unlike squid) it also reports and returns the process's CPU time per
// request in microseconds; else that is 0.
func benchHTTP(b *testing.B, c *http.Client, target string, header http.Header, inProcess bool) (rps, cpuPerReq float64) {
	b.SetParallelism(benchParallelism())
	var mu sync.Mutex
	var lat []time.Duration
	runtime.GC() // start without the garbage of the previous benchmark
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One request per client, sent again once its response is read.
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			b.Error(err)
			return
		}
		maps.Copy(req.Header, header)
		mine := make([]time.Duration, 0, 1024)
		defer func() {
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(benchBody)) {
				b.Errorf("GET %s: %d, %d bytes, %v", target, resp.StatusCode, n, err)
				return
			}
			mine = append(mine, time.Since(start))
		}
	})
	b.StopTimer()
	cpu1, _ := processCPU()
	rps = float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "req/s")
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-us")
	b.ReportMetric(percentile(lat, 0.99), "p99-us")
	if cpuOK && inProcess {
		cpuPerReq = float64((cpu1 - cpu0).Nanoseconds()) / 1e3 / float64(b.N)
		b.ReportMetric(cpuPerReq, "cpu-us/op")
	}
	return rps, cpuPerReq
}

// percentile of sorted durations, in microseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Nanoseconds()) / 1e3
}

// benchHandshakes opens new inspected TLS connections through the gateway
// at proxyAddr from concurrent clients: CONNECT to host() with the token,
// then a full TLS handshake (no resumption) verified against the tenant's
// CA. It reports the handshakes per second and the process's CPU time per
// handshake (client and gateway sides), and returns the handshakes per
// second.
func benchHandshakes(b *testing.B, proxyAddr, tok string, roots *x509.CertPool, host func() string) float64 {
	b.SetParallelism(benchParallelism())
	runtime.GC()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := inspectedHandshake(proxyAddr, tok, roots, host()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu1, _ := processCPU()
	hs := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(hs, "handshakes/s")
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
	}
	return hs
}

func inspectedHandshake(proxyAddr, tok string, roots *x509.CertPool, host string) error {
	conn, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\nProxy-Authorization: Bearer %s\r\n\r\n", host, host, tok); err != nil {
		return err
	}
	// The gateway sends nothing after its answer until the client's hello:
	// the reader holds no byte of the TLS stream.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("CONNECT %s: %w", host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", host, resp.Status)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS to %s through the gateway: %w", host, err)
	}
	return nil
}

// squid is Debian's squid run as a plain forward proxy for the comparison.
type squid struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

var errNoSquid = errors.New("squid is not installed (Debian: apt-get install squid): the comparison with squid is skipped")

// startSquid runs `squid -N` on a free loopback port with a minimal
// configuration: no cache, access from loopback only, logs in a temporary
// folder, until b ends. Without squid it returns errNoSquid.
func startSquid(b *testing.B) (*squid, error) {
	bin, err := exec.LookPath("squid")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/squid"); err != nil { // not on a user's PATH
			return nil, errNoSquid
		}
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	// squid started as root runs as user proxy: its folder must be open to it.
	dir, err := os.MkdirTemp("", "vigie-bench-squid-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &squid{addr: net.JoinHostPort("127.0.0.1", port), dir: dir, exited: make(chan struct{})}
	conf := fmt.Sprintf(`http_port %s
acl bench_clients src 127.0.0.0/8
http_access allow bench_clients
http_access deny all
cache deny all
cache_mem 0 MB
access_log stdio:%s
cache_log %s
cache_store_log none
pid_filename %s
coredump_dir %s
visible_hostname localhost
pinger_enable off
shutdown_lifetime 0 seconds
`, s.addr, filepath.Join(dir, "access.log"), filepath.Join(dir, "cache.log"), filepath.Join(dir, "squid.pid"), dir)
	confPath := filepath.Join(dir, "squid.conf")
	out, err := os.Create(filepath.Join(dir, "squid.out"))
	if err == nil {
		defer out.Close()
		err = os.WriteFile(confPath, []byte(conf), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.cmd = exec.Command(bin, "-N", "-f", confPath)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = childAttr()
	if err := startChild(s.cmd, func() { s.cmd.Wait(); close(s.exited) }); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("squid: %w", err)
	}
	b.Cleanup(s.stop)
	// squid says nothing on stdout when it is ready: wait for its port.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("squid exited:\n%s", s.logs())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("squid does not listen on %s after 30 s:\n%s", s.addr, s.logs())
		}
		time.Sleep(20 * time.Millisecond) // nothing to wait on but the port
	}
}

func (s *squid) logs() string {
	var all []string
	for _, f := range []string{"squid.out", "cache.log"} {
		data, _ := os.ReadFile(filepath.Join(s.dir, f))
		all = append(all, f+":\n"+string(data))
	}
	return strings.Join(all, "\n")
}

// stop ends squid (at once: shutdown_lifetime 0) and removes its folder.
func (s *squid) stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		os.RemoveAll(s.dir)
	})
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}
