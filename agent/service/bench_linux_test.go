package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"vigie/agent/proxy"
	"vigie/platform/platformtest"
)

// BenchmarkAgentProcess measures the memory of the real agent: the command
// built from vigie/agent, run as `agent run --user-mode` against a platform
// in this process (tenant PAC: DIRECT), one fresh process per op. The
// figures are the child's own, from /proc/<pid>/status: VmRSS (resident
// now) and VmHWM (the most it was resident), in MB of 10⁶ bytes.
//
//   - idle: started, enrolled and synced, then left alone for
//     benchIdleSettle; idle-RSS-MB is VmRSS at the end (target: at most 25).
//   - tunnels-max: as many CONNECT tunnels as the agent's open-file limit
//     allows, up to the target's 10,000 (tunnels says how many: each is
//     two sockets in the agent, which needs benchAgentFiles more of its
//     own, so a hard limit of 20,000 allows 9,900), opened benchOpening
//     at a time and held, each proved by an echo through it when opened
//     and again once all are open; success-% counts the tunnels that
//     passed both (target: 100), RSS-MB is VmRSS while all are held
//     (target: under 150 for 10,000), KB/tunnel what each added to it.
//     tunnels-2k is the same with 2,000.
//   - gateway-tunnels-max, gateway-tunnels-2k: the same through an
//     upstream proxy (the tenant PAC says PROXY), the product's path: the
//     agent CONNECTs to the proxy and relays between the client and it.
//     The proxy is not the tenant's gateway (that one inspects TLS), so no
//     token goes with the CONNECTs; what the agent holds per tunnel is the
//     same.
//
// The clients run in this process; the far ends (an echo server and the
// upstream proxy, which answers CONNECT and echoes the tunnel itself) in a
// child process of the test binary (sinkEnv): each process has its own
// open-file limit, and the agent's is what bounds the count. DIRECT
// tunnels go to the echo server by address: the agent sends loopback
// DIRECT without asking its PAC (as Chromium does) and looks no name up.
func BenchmarkAgentProcess(b *testing.B) {
	bin := buildAgent(b)
	p, pacVersion := startBenchPlatform(b)
	sink := startSinkProcess(b)

	b.Run("idle", func(b *testing.B) {
		var rss, hwm, ready float64
		for range b.N {
			start := time.Now()
			ap := startAgentProcess(b, bin, p, pacVersion)
			ready += time.Since(start).Seconds()
			var samples []string
			for end := time.Now().Add(benchIdleSettle); time.Now().Before(end); {
				time.Sleep(500 * time.Millisecond)
				m := ap.memory(b)
				samples = append(samples, fmt.Sprintf("%.1f", m.rss))
			}
			m := ap.memory(b)
			b.Logf("agent pid %d: VmRSS every 0.5 s while idle (MB): %s; VmHWM %.1f MB", ap.cmd.Process.Pid, strings.Join(samples, " "), m.hwm)
			rss += m.rss
			hwm = max(hwm, m.hwm)
			ap.stop(b)
		}
		b.ReportMetric(rss/float64(b.N), "idle-RSS-MB")
		b.ReportMetric(hwm, "peak-RSS-MB")
		b.ReportMetric(ready/float64(b.N), "start-s")
	})

	direct := benchRoute{target: sink.echo, counter: func(c proxy.CounterValues) uint64 { return c.Direct }}
	b.Run("tunnels-2k", func(b *testing.B) { benchTunnels(b, bin, p, pacVersion, direct, 2_000) })
	b.Run("tunnels-max", func(b *testing.B) { benchTunnels(b, bin, p, pacVersion, direct, benchMaxTunnels(b)) })

	art, _, err := p.Server.Distrib.SetPAC(context.Background(), p.Tenant,
		[]byte(`function FindProxyForURL(url, host) { return "PROXY `+sink.proxy+`"; }`))
	if err != nil {
		b.Fatalf("setting the tenant PAC: %v", err)
	}
	upstream := benchRoute{target: "echo.bench.test:443", counter: func(c proxy.CounterValues) uint64 { return c.OtherProxy }}
	b.Run("gateway-tunnels-2k", func(b *testing.B) { benchTunnels(b, bin, p, art.Version, upstream, 2_000) })
	b.Run("gateway-tunnels-max", func(b *testing.B) { benchTunnels(b, bin, p, art.Version, upstream, benchMaxTunnels(b)) })
}

// benchRoute is where benchTunnels' tunnels go: the CONNECT target, and
// the agent's counter of the route that must have taken them.
type benchRoute struct {
	target  string
	counter func(proxy.CounterValues) uint64
}

// benchTunnels opens n tunnels through a fresh agent per op and holds
// them while it reads the agent's memory.
func benchTunnels(b *testing.B, bin string, p *platformtest.Platform, pacVersion int64, route benchRoute, n int) {
	raiseFileLimit(b, n, uint64(2*n+benchAgentFiles))
	var ok, rss, perTunnel, hwm, fds, open float64
	for range b.N {
		ap := startAgentProcess(b, bin, p, pacVersion)
		before := ap.memory(b)
		before0 := ap.status(b).Counters
		r := holdTunnels(b, ap.addr, route.target, n)
		m := ap.memory(b)
		ok += float64(r.ok)
		rss += m.rss
		perTunnel += (m.rss - before.rss) * 1e3 / float64(max(r.ok, 1))
		hwm = max(hwm, m.hwm)
		fds = max(fds, float64(m.fds))
		open += r.open.Seconds()
		if r.ok < n {
			b.Logf("%d of %d tunnels failed; the first errors: %s", n-r.ok, n, strings.Join(r.errs, "; "))
		}
		if got := route.counter(ap.status(b).Counters) - route.counter(before0); got < uint64(r.ok) {
			b.Errorf("the agent counted %d tunnels on the route, want at least %d", got, r.ok)
		}
		r.close()
		ap.stop(b)
	}
	b.ReportMetric(float64(n), "tunnels")
	b.ReportMetric(100*ok/float64(b.N*n), "success-%")
	b.ReportMetric(rss/float64(b.N), "RSS-MB")
	b.ReportMetric(perTunnel/float64(b.N), "KB/tunnel")
	b.ReportMetric(hwm, "peak-RSS-MB")
	b.ReportMetric(fds, "agent-fds")
	b.ReportMetric(open/float64(b.N), "open-s")
}

// benchAgentFiles is what the agent keeps open besides its tunnels (its
// listeners, log, state, connections to the platform and the probe's),
// with room to spare: about 15 when idle.
const benchAgentFiles = 150

// benchMaxTunnels is the most tunnels, up to 10,000, in hundreds, that
// fit the open-file limit the agent inherits (its hard limit: the Go
// runtime raises the soft one to it).
func benchMaxTunnels(b *testing.B) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("RLIMIT_NOFILE: %v", err)
	}
	n := 10_000
	if lim.Max < uint64(2*n+benchAgentFiles) {
		n = (int(lim.Max) - benchAgentFiles) / 2 / 100 * 100
	}
	if n < 100 {
		b.Skipf("RLIMIT_NOFILE's hard limit is %d", lim.Max)
	}
	return n
}

const (
	benchIdleSettle = 5 * time.Second
	// benchOpening is how many tunnels are being opened at any time.
	benchOpening = 200
)

// buildAgent builds the agent command (without the race detector even
// when the tests have it: its memory is what is measured) into a folder
// removed when b ends.
func buildAgent(b *testing.B) string {
	b.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		b.Skipf("this benchmark builds the agent command: it needs the go command on PATH: %v", err)
	}
	if out, err := exec.Command(goCmd, "env", "GOROOT").Output(); err == nil {
		goCmd = filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
	}
	bin := filepath.Join(b.TempDir(), "agent")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "vigie/agent").CombinedOutput(); err != nil {
		b.Fatalf("go build vigie/agent: %v\n%s", err, out)
	}
	return bin
}

// raiseFileLimit raises RLIMIT_NOFILE of this process, which the agent
// processes it starts inherit, to at least n, until b ends; it skips b
// when it cannot.
func raiseFileLimit(b *testing.B, tunnels int, n uint64) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		b.Skipf("RLIMIT_NOFILE: %v", err)
	}
	if old.Cur >= n {
		return
	}
	lim := syscall.Rlimit{Cur: n, Max: max(old.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("%d tunnels need %d open files in this process and in the agent; RLIMIT_NOFILE is %d (hard limit %d) and cannot be raised: %v",
			tunnels, n, old.Cur, old.Max, err)
	}
	b.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// agentProcess is `agent run --user-mode` in a child process that dies
// with the test binary.
type agentProcess struct {
	cmd     *exec.Cmd
	addr    string // the proxy on 127.0.0.1
	logPath string
	exited  chan struct{}
	waitErr error
}

// startAgentProcess starts the agent for p and returns once its status API
// says it has the tenant PAC of version pacVersion or later.
func startAgentProcess(tb testing.TB, bin string, p *platformtest.Platform, pacVersion int64) *agentProcess {
	tb.Helper()
	dir := tb.TempDir()
	cfg := Config{PlatformURL: p.BaseURL, Tenant: p.Tenant, EnrollmentSecret: p.EnrollmentSecret,
		DistributionKey: p.DistributionKey, Port: freePort(tb), StateDir: filepath.Join(dir, "state")}
	raw, err := yaml.Marshal(&cfg)
	if err != nil {
		tb.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	ap := &agentProcess{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)), logPath: filepath.Join(dir, "stderr.log"),
		exited: make(chan struct{})}
	logf, err := os.Create(ap.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	ap.cmd = exec.Command(bin, "run", "--user-mode", "--config", cfgPath)
	ap.cmd.Stdout, ap.cmd.Stderr = logf, logf
	ap.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ap.cmd.Start(); err != nil {
		tb.Fatalf("starting the agent: %v", err)
	}
	go func() {
		ap.waitErr = ap.cmd.Wait()
		close(ap.exited)
	}()
	tb.Cleanup(func() { ap.stop(tb) })

	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		select {
		case <-ap.exited:
			tb.Fatalf("the agent exited (%v):\n%s", ap.waitErr, ap.logTail())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the agent is not ready after 30s (status: %s):\n%s", last, ap.logTail())
		}
		if resp, err := c.Get("http://" + ap.addr + "/status"); err != nil {
			last = err.Error()
		} else {
			var st Status
			err := json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Sync["pac"].Version >= pacVersion {
				return ap
			}
			last = fmt.Sprintf("%s, pac %+v, %v", resp.Status, st.Sync["pac"], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the agent as its service manager would (SIGTERM), killing it
// if it has not stopped after 10 s.
func (ap *agentProcess) stop(tb testing.TB) {
	select {
	case <-ap.exited:
		return
	default:
	}
	ap.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ap.exited:
		if ap.waitErr != nil {
			tb.Errorf("the agent stopped with %v:\n%s", ap.waitErr, ap.logTail())
		}
	case <-time.After(10 * time.Second):
		ap.cmd.Process.Kill()
		<-ap.exited
		tb.Errorf("the agent did not stop within 10s of SIGTERM:\n%s", ap.logTail())
	}
}

func (ap *agentProcess) logTail() string {
	b, _ := os.ReadFile(ap.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

type agentMemory struct {
	rss, hwm float64 // MB
	fds      int
}

// memory reads the agent's VmRSS and VmHWM and counts its open files.
func (ap *agentProcess) memory(tb testing.TB) agentMemory {
	pid := ap.cmd.Process.Pid
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	var m agentMemory
	for line := range bytes.Lines(raw) {
		name, value, _ := strings.Cut(string(line), ":")
		f := strings.Fields(value) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch name {
		case "VmRSS":
			m.rss = kb * 1024 / 1e6
		case "VmHWM":
			m.hwm = kb * 1024 / 1e6
		}
	}
	if m.rss == 0 {
		tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		m.fds = len(ents)
	}
	return m
}

// status is the agent's GET /status.
func (ap *agentProcess) status(tb testing.TB) Status {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + ap.addr + "/status")
	if err != nil {
		tb.Fatalf("agent status: %v", err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		tb.Fatalf("agent status: %v", err)
	}
	return st
}

// benchSink is the child process of the test binary (sinkEnv) that holds
// the far ends of benchTunnels' tunnels.
type benchSink struct {
	echo  string // an echo server
	proxy string // an HTTP proxy that answers CONNECT with 200 and echoes
}

// startSinkProcess starts the sink process, which ends with b (or with
// this process).
func startSinkProcess(b *testing.B) benchSink {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), sinkEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the sink process: %v", err)
	}
	b.Cleanup(func() {
		stdin.Close() // the sink's signal to end
		cmd.Wait()
	})
	var s benchSink
	if _, err := fmt.Fscanln(stdout, &s.echo, &s.proxy); err != nil {
		b.Fatalf("the sink process did not say where it listens: %v", err)
	}
	return s
}

// heldTunnels is what holdTunnels opened.
type heldTunnels struct {
	conns []net.Conn // nil where opening failed
	ok    int        // tunnels that passed both echoes
	errs  []string   // the first few errors
	open  time.Duration
}

func (t *heldTunnels) close() {
	for _, c := range t.conns {
		if c != nil {
			c.Close()
		}
	}
}

// holdTunnels opens n tunnels to sink through the proxy at addr,
// benchOpening at a time, each proved by an echo, and once all are open
// proves each again; it returns them open.
func holdTunnels(b *testing.B, addr, sink string, n int) *heldTunnels {
	t := &heldTunnels{conns: make([]net.Conn, n)}
	readers := make([]*bufio.Reader, n)
	var mu sync.Mutex
	fail := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(t.errs) < 5 {
			t.errs = append(t.errs, fmt.Sprintf("tunnel %d: %v", i, err))
		}
		if t.conns[i] != nil {
			t.conns[i].Close()
			t.conns[i] = nil
		}
	}
	each := func(f func(i int) error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range benchOpening {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := f(i); err != nil {
						fail(i, err)
					}
				}
			})
		}
		wg.Wait()
	}

	start := time.Now()
	each(func(i int) error {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			return err
		}
		mu.Lock()
		t.conns[i] = c
		mu.Unlock()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", sink, sink)
		br := bufio.NewReaderSize(c, 64)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("CONNECT: %s", resp.Status)
		}
		readers[i] = br
		return echoThrough(c, br, 'a')
	})
	t.open = time.Since(start)
	each(func(i int) error {
		mu.Lock()
		c := t.conns[i]
		mu.Unlock()
		if c == nil {
			return nil
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		return echoThrough(c, readers[i], 'b')
	})
	for _, c := range t.conns {
		if c != nil {
			t.ok++
			c.SetDeadline(time.Time{})
		}
	}
	return t
}

// echoThrough sends a byte through a tunnel and reads it back.
func echoThrough(c net.Conn, r io.Reader, x byte) error {
	if _, err := c.Write([]byte{x}); err != nil {
		return err
	}
	var got [1]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if got[0] != x {
		return fmt.Errorf("echo: sent %q, got %q", x, got[0])
	}
	return nil
}
