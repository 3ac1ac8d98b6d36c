package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeNet is the injected dialer of the synctest tests: addresses are
// reachable or not as the test says, and it remembers every dial.
type fakeNet struct {
	mu    sync.Mutex
	up    map[string]bool
	drop  bool // unreachable addresses hang until the probe times out
	dials []dialRecord
}

type dialRecord struct {
	addr string
	at   time.Time
}

func newFakeNet() *fakeNet { return &fakeNet{up: map[string]bool{}} }

func (f *fakeNet) set(addr string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[addr] = up
}

func (f *fakeNet) setDrop(drop bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = drop
}

func (f *fakeNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.dials = append(f.dials, dialRecord{addr, time.Now()})
	up, drop := f.up[addr], f.drop
	f.mu.Unlock()
	if up {
		c, s := net.Pipe()
		s.Close()
		return c, nil
	}
	if drop {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connect: connection refused")}
}

// dialTimes returns when addr was dialled, as offsets from start.
func (f *fakeNet) dialTimes(addr string, start time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ds []time.Duration
	for _, d := range f.dials {
		if d.addr == addr {
			ds = append(ds, d.at.Sub(start))
		}
	}
	return ds
}

// fakePortal answers the portal-detection URL as the test says: "204",
// "login" (200 and a login page), "302" (to the portal's login page),
// "204+body", or "offline" (a network error).
type fakePortal struct {
	mu     sync.Mutex
	answer string
	calls  int
}

func (f *fakePortal) set(answer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = answer
}

func (f *fakePortal) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakePortal) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.calls++
	answer := f.answer
	f.mu.Unlock()
	resp := &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody, Request: r}
	switch answer {
	case "204":
		resp.StatusCode = http.StatusNoContent
	case "204+body":
		resp.StatusCode = http.StatusNoContent
		resp.Body = io.NopCloser(strings.NewReader("x"))
	case "login":
		resp.StatusCode = http.StatusOK
		resp.Body = io.NopCloser(strings.NewReader("<html><form>Room number</form></html>"))
	case "302":
		resp.StatusCode = http.StatusFound
		resp.Header.Set("Location", "http://portal.hotel.example/login")
	default:
		return nil, errors.New("dial tcp: lookup detect.example: no such host")
	}
	resp.Status = http.StatusText(resp.StatusCode)
	return resp, nil
}

// logRecorder keeps the messages logged, to check that only transitions
// are.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, strings.TrimPrefix(r.Message, "health: "))
	return nil
}

func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

const (
	gwA       = "gw-a.example:3128"
	gwB       = "gw-b.example:3128"
	portalURL = "http://detect.example/generate_204"
)

// bubble is a Prober running inside a synctest bubble on fakes.
type bubble struct {
	t      *testing.T
	p      *Prober
	net    *fakeNet
	portal *fakePortal
	logs   *logRecorder
	start  time.Time
}

// runProber starts a Prober on gwA (up or not) with the default timings
// and portal detection, inside the current synctest bubble, and stops it
// when the test ends. tweak may change the options.
func runProber(t *testing.T, gatewayUp bool, tweak func(*Options)) *bubble {
	t.Helper()
	b := &bubble{t: t, net: newFakeNet(), portal: &fakePortal{answer: "204"}, logs: &logRecorder{}, start: time.Now()}
	b.net.set(gwA, gatewayUp)
	o := Options{
		Target:     gwA,
		PortalURL:  portalURL,
		HTTPClient: &http.Client{Transport: b.portal},
		Dial:       b.net.Dial,
		Logger:     slog.New(b.logs),
	}
	if tweak != nil {
		tweak(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	b.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	synctest.Wait()
	return b
}

// at advances the bubble's clock to start+d and lets the prober settle.
func (b *bubble) at(d time.Duration) ProbeStatus {
	b.t.Helper()
	if w := time.Until(b.start.Add(d)); w > 0 {
		time.Sleep(w)
	}
	synctest.Wait()
	return b.p.Status()
}

// changed reports whether a change notification is waiting, and takes it.
func (b *bubble) changed() bool {
	select {
	case <-b.p.Changes():
		return true
	default:
		return false
	}
}

// seconds is a shorthand for durations in tables.
func seconds(s ...float64) []time.Duration {
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = time.Duration(x * float64(time.Second))
	}
	return ds
}
