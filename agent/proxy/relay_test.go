package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (near, far *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); a.Close() })
	return c.(*net.TCPConn), a.(*net.TCPConn)
}

// relayed is a tunnel under test: client ↔ [agent's two sockets, relay]
// ↔ server, on loopback.
type relayed struct {
	client, server    *net.TCPConn // the test's ends
	agentIn, agentOut *net.TCPConn // the relay's
}

// newRelayed relays between two loopback connections; wrap, when set,
// wraps the relay's two connections (to hide their type, or hold
// read-ahead bytes).
func newRelayed(t testing.TB, wrap func(in, out net.Conn) (net.Conn, net.Conn)) *relayed {
	t.Helper()
	r := &relayed{}
	r.client, r.agentIn = tcpPair(t)
	r.agentOut, r.server = tcpPair(t)
	var in, out net.Conn = r.agentIn, r.agentOut
	if wrap != nil {
		in, out = wrap(in, out)
	}
	relay(in, out)
	return r
}

func deadline(cs ...net.Conn) {
	for _, c := range cs {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
}

// sendAndCheck writes n random bytes to from and checks that to reads the
// same bytes (without waiting for an end). It may run on any goroutine.
func sendAndCheck(t testing.TB, from, to net.Conn, n int) {
	t.Helper()
	if err := send(from, to, n); err != nil {
		t.Error(err)
	}
}

func send(from, to net.Conn, n int) error {
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := from.Write(data)
		errc <- err
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(to, got); err != nil {
		return fmt.Errorf("reading %d bytes: %w", n, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing %d bytes: %w", n, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("%d bytes arrived changed", n)
	}
	return nil
}

// expectEOF checks that c's next read is its end.
func expectEOF(t testing.TB, c net.Conn, what string) {
	t.Helper()
	var b [1]byte
	if n, err := c.Read(b[:]); n != 0 || err != io.EOF {
		t.Fatalf("%s: read %d bytes, %v; want EOF", what, n, err)
	}
}

// hideType hides the connections' type from the relay: it copies them
// the plain way, and cannot half-close them.
func hideType(in, out net.Conn) (net.Conn, net.Conn) {
	return struct{ net.Conn }{in}, struct{ net.Conn }{out}
}

var relayKinds = []struct {
	name string
	wrap func(in, out net.Conn) (net.Conn, net.Conn)
}{
	{"waited", nil},
	{"plain copy", hideType},
}

func TestRelayBothWays(t *testing.T) {
	for _, k := range relayKinds {
		t.Run(k.name, func(t *testing.T) {
			r := newRelayed(t, k.wrap)
			deadline(r.client, r.server)
			sendAndCheck(t, r.client, r.server, 1)
			sendAndCheck(t, r.server, r.client, 1)
			// Bulk, both ways at once: the buffer is kept while reads fill it.
			var wg sync.WaitGroup
			wg.Go(func() { sendAndCheck(t, r.client, r.server, 8<<20) })
			wg.Go(func() { sendAndCheck(t, r.server, r.client, 8<<20+17) })
			wg.Wait()
		})
	}
}

// TestRelayHalfClose: an end that closes its writing side is passed on,
// and the other direction keeps working until it ends too; then the relay
// closes both connections.
func TestRelayHalfClose(t *testing.T) {
	for _, clientFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("client first %v", clientFirst), func(t *testing.T) {
			r := newRelayed(t, nil)
			deadline(r.client, r.server)
			first, second := r.client, r.server
			if !clientFirst {
				first, second = second, first
			}
			sendAndCheck(t, first, second, 100)
			first.CloseWrite()
			expectEOF(t, second, "after the first half-close")
			sendAndCheck(t, second, first, 64<<10)
			second.CloseWrite()
			expectEOF(t, first, "after the second half-close")
			waitClosed(t, r.agentIn)
			waitClosed(t, r.agentOut)
		})
	}
}

// TestRelayNoHalfCloseCloses: a connection that cannot be half-closed is
// closed when its source ends (its reader must see an end).
func TestRelayNoHalfCloseCloses(t *testing.T) {
	r := newRelayed(t, hideType)
	deadline(r.client, r.server)
	sendAndCheck(t, r.client, r.server, 10)
	r.client.CloseWrite()
	expectEOF(t, r.server, "server")
	waitClosed(t, r.agentIn)
	waitClosed(t, r.agentOut)
}

// TestRelayErrorClosesBoth: a connection reset on one side closes the
// other, even while it is idle.
func TestRelayErrorClosesBoth(t *testing.T) {
	for _, k := range relayKinds {
		t.Run(k.name, func(t *testing.T) {
			r := newRelayed(t, k.wrap)
			deadline(r.client, r.server)
			sendAndCheck(t, r.client, r.server, 10)
			r.server.SetLinger(0)
			r.server.Close() // a reset
			var b [1]byte
			if _, err := r.client.Read(b[:]); err == nil {
				t.Fatal("the client's end stayed open after the server's reset")
			}
			waitClosed(t, r.agentIn)
			waitClosed(t, r.agentOut)
		})
	}
}

// TestRelayReadAhead: bytes read ahead from either connection go first.
func TestRelayReadAhead(t *testing.T) {
	r := newRelayed(t, func(in, out net.Conn) (net.Conn, net.Conn) {
		return &bufferedConn{Conn: in, buf: []byte("client hello ")}, &bufferedConn{Conn: out, buf: []byte("server hello ")}
	})
	deadline(r.client, r.server)
	r.client.Write([]byte("then more"))
	r.client.CloseWrite()
	r.server.Write([]byte("then more"))
	r.server.CloseWrite()
	for _, c := range []struct {
		end  net.Conn
		want string
	}{{r.server, "client hello then more"}, {r.client, "server hello then more"}} {
		got, err := io.ReadAll(c.end)
		if err != nil || string(got) != c.want {
			t.Errorf("read %q, %v; want %q", got, err, c.want)
		}
	}
}

// waitClosed waits until c has been closed by the relay.
func waitClosed(t testing.TB, c net.Conn) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; {
		// SetDeadline fails on a closed connection, and only then.
		if err := c.SetReadDeadline(time.Time{}); errors.Is(err, net.ErrClosed) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the relay did not close %v", c.LocalAddr())
		}
		time.Sleep(5 * time.Millisecond) // polling the relay's goroutines: nothing to synchronise with
	}
}

// TestRelayIdleHoldsNoBuffer: idle tunnels, whether new or after traffic,
// hold no copy buffer: what the heap keeps per tunnel is far less than
// one 32 KiB buffer.
func TestRelayIdleHoldsNoBuffer(t *testing.T) {
	if a, b := tcpPair(t); newReadWaiter(a, b) == nil {
		t.Skip("no readWaiter on this OS: tunnels hold a buffer")
	}
	const n = 200
	heap := func() uint64 {
		// Two collections empty the buffer pool (and its victim cache).
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	rs := make([]*relayed, n)
	// The sockets alone, as a baseline: four per tunnel.
	type pair struct{ a, b *net.TCPConn }
	base := make([]pair, 2*n)
	before := heap()
	for i := range base {
		base[i].a, base[i].b = tcpPair(t)
	}
	sockets := heap() - before
	before = heap()
	for i := range rs {
		rs[i] = newRelayed(t, nil)
	}
	fresh := heap() - before
	for _, r := range rs {
		deadline(r.client, r.server)
		sendAndCheck(t, r.client, r.server, 40<<10)
		sendAndCheck(t, r.server, r.client, 40<<10)
	}
	used := heap() - before
	perTunnel := func(b uint64) float64 { return (float64(b) - float64(sockets)) / n / 1024 }
	t.Logf("heap per tunnel beyond its four sockets (%.1f KiB): fresh %.1f KiB, after traffic %.1f KiB",
		float64(sockets)/n/1024, perTunnel(fresh), perTunnel(used))
	if perTunnel(fresh) > 4 || perTunnel(used) > 4 {
		t.Errorf("idle tunnels hold %.1f KiB (fresh) and %.1f KiB (after traffic) each: a copy buffer is held", perTunnel(fresh), perTunnel(used))
	}
	runtime.KeepAlive(base)
}

// openFiles counts this process's open files, or -1 where it cannot.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestRelayIdleHoldsNoPipe: a tunnel that carried bulk transfers (which
// go by splice, through pipes, on Linux) holds no pipe once idle.
func TestRelayIdleHoldsNoPipe(t *testing.T) {
	if openFiles() < 0 {
		t.Skip("no /proc/self/fd")
	}
	runtime.GC()
	runtime.GC()
	before := openFiles()
	r := newRelayed(t, nil)
	deadline(r.client, r.server)
	var wg sync.WaitGroup
	wg.Go(func() { sendAndCheck(t, r.client, r.server, 16<<20) })
	wg.Go(func() { sendAndCheck(t, r.server, r.client, 16<<20) })
	wg.Wait()
	// The runtime keeps pipes in a pool that garbage collection empties
	// (closing them): what is open after that beyond the tunnel's four
	// sockets, the tunnel holds.
	for end := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		runtime.GC()
		n := openFiles() - before
		if n <= 4 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("an idle tunnel holds %d files; want its 4 sockets", n)
		}
		time.Sleep(20 * time.Millisecond) // a burst ends by a deadline; finalizers run on their own
	}
	sendAndCheck(t, r.client, r.server, 1)
}

// TestRelayNoLeak: tunnels ended every way give back their goroutines and
// their file descriptors.
func TestRelayNoLeak(t *testing.T) {
	fds := openFiles
	settle := func() (int, int) { runtime.GC(); return runtime.NumGoroutine(), fds() }
	g0, f0 := settle()
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		k := relayKinds[i%len(relayKinds)]
		r := newRelayed(t, k.wrap)
		wg.Go(func() {
			deadline(r.client, r.server)
			sendAndCheck(t, r.client, r.server, 1000)
			switch i % 3 {
			case 0: // both ends close
				r.client.Close()
				r.server.Close()
			case 1: // half-closes, then the ends close
				r.client.CloseWrite()
				io.ReadAll(r.server)
				r.server.CloseWrite()
				io.ReadAll(r.client)
				r.client.Close()
				r.server.Close()
			case 2: // a reset
				r.client.SetLinger(0)
				r.client.Close()
				io.ReadAll(r.server)
				r.server.Close()
			}
		})
	}
	wg.Wait()
	for end := time.Now().Add(10 * time.Second); ; {
		g, f := settle()
		if g <= g0 && f <= f0 {
			return
		}
		if time.Now().After(end) {
			buf := make([]byte, 64<<10)
			t.Fatalf("after %d tunnels: %d goroutines (was %d), %d files (was %d)\n%s", n, g, g0, f, f0, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // the relay's goroutines end on their own
	}
}

// TestReadableAllocatesNothing: waiting costs no garbage.
func TestReadableAllocatesNothing(t *testing.T) {
	a, b := tcpPair(t)
	w := newReadWaiter(a, b)
	if w == nil {
		t.Skip("no readWaiter on this OS")
	}
	a.Write([]byte("x"))
	if n := testing.AllocsPerRun(100, func() { w.wait() }); n > 0 {
		t.Errorf("a wait allocates %v times", n)
	}
}

// TestConnectEarlyBytes: a client that sends the tunnel's first bytes with
// its CONNECT, before the 200, loses none of them, DIRECT and through an
// upstream proxy.
func TestConnectEarlyBytes(t *testing.T) {
	h := newHarness(t, "")
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	testHosts.Store("echo.example:7", echo.Addr().String())
	for _, pacSrc := range []string{`return "DIRECT";`, `return "PROXY ` + h.gateway + `";`} {
		h.setPAC(`function FindProxyForURL(url, host) { ` + pacSrc + ` }`)
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		deadline(c)
		io.WriteString(c, "CONNECT echo.example:7 HTTP/1.1\r\nHost: echo.example:7\r\n\r\nearly bytes, ")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: CONNECT: %v %v", pacSrc, resp, err)
		}
		io.WriteString(c, "then the rest")
		want := "early bytes, then the rest"
		got := make([]byte, len(want))
		_, err = io.ReadFull(br, got)
		c.Close()
		if string(got) != want || err != nil {
			t.Errorf("%s: echoed %q, %v; want %q", pacSrc, got, err, want)
		}
	}
	if c := h.p.Counters(); h.gatewayH.count() != 1 || c.Tunnels != 2 || c.Direct != 1 || c.OtherProxy+c.Gateway != 1 {
		t.Errorf("the gateway saw %d CONNECTs; counters %+v", h.gatewayH.count(), c)
	}
}

// BenchmarkRelay is one direction's bulk throughput through the relay,
// all on this machine's cores.
func BenchmarkRelay(b *testing.B) {
	r := newRelayed(b, nil)
	buf := make([]byte, 256<<10)
	go func() {
		io.Copy(io.Discard, r.server)
	}()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := r.client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
