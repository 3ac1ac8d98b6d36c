package gateway

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker knows which client connections carry which user's traffic,
// so that a revocation closes them, tunnels included, rather than waiting
// for their tokens to expire.
type connTracker struct {
	mu    sync.Mutex
	all   map[*trackedConn]struct{}
	byKey map[string]map[*trackedConn]struct{} // "u|tenant|user" and "s|tenant|session"
}

func newConnTracker() *connTracker {
	return &connTracker{all: map[*trackedConn]struct{}{}, byKey: map[string]map[*trackedConn]struct{}{}}
}

// trackedConn is a client connection; closing it deregisters it.
type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
	mu   sync.Mutex
	keys []string
	read atomic.Int64 // bytes read from the client
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// expectTraffic closes the request's connection if the client sends nothing
// more within d.
func (t *connTracker) expectTraffic(ctx context.Context, d time.Duration) {
	tc, ok := ctx.Value(connKey{}).(*trackedConn)
	if !ok {
		return
	}
	mark := tc.read.Load()
	time.AfterFunc(d, func() {
		if tc.read.Load() == mark {
			tc.Close()
		}
	})
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.remove(c) })
	return c.Conn.Close()
}

type trackedListener struct {
	net.Listener
	t *connTracker
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t}
	l.t.mu.Lock()
	l.t.all[tc] = struct{}{}
	l.t.mu.Unlock()
	return tc, nil
}

// Listener wraps the gateway's listener so that connections are tracked.
func (g *Gateway) Listener(ln net.Listener) net.Listener {
	return &trackedListener{Listener: ln, t: g.conns}
}

type connKey struct{}

// ConnContext puts the connection in its requests' context (for
// http.Server.ConnContext).
func (g *Gateway) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// attach files the request's connection under its user and session.
func (t *connTracker) attach(ctx context.Context, id *identity) {
	tc, ok := ctx.Value(connKey{}).(*trackedConn)
	if !ok {
		return
	}
	keys := []string{"u|" + id.tenant + "|" + id.user, "s|" + id.tenant + "|" + id.session}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, open := t.all[tc]; !open {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, k := range keys {
		if t.byKey[k] == nil {
			t.byKey[k] = map[*trackedConn]struct{}{}
		}
		if _, seen := t.byKey[k][tc]; !seen {
			t.byKey[k][tc] = struct{}{}
			tc.keys = append(tc.keys, k)
		}
	}
}

func (g *Gateway) attachConn(ctx context.Context, id *identity) { g.conns.attach(ctx, id) }

func (t *connTracker) remove(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.all, c)
	c.mu.Lock()
	for _, k := range c.keys {
		delete(t.byKey[k], c)
		if len(t.byKey[k]) == 0 {
			delete(t.byKey, k)
		}
	}
	c.mu.Unlock()
}

// closeKey closes every connection filed under key and returns how many.
func (t *connTracker) closeKey(key string) int {
	t.mu.Lock()
	var victims []*trackedConn
	for c := range t.byKey[key] {
		victims = append(victims, c)
	}
	t.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
	return len(victims)
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	var all []*trackedConn
	for c := range t.all {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.all)
}
