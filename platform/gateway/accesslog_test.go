package gateway_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/platform/gateway"
	"vigie/platform/server"
	"vigie/platform/store"
)

// TestAccessLogOverflow: when the store stops taking records, the bounded
// queue fills and what does not fit is dropped, counted
// (vigie_gateway_log_dropped_total) and said in the log, while requests
// go on: logging never holds up the data path. Once the store is back,
// every record has been either written or counted as dropped.
func TestAccessLogOverflow(t *testing.T) {
	p := startPlatform(t, nil, server.Options{})
	origin := newLoopbackOrigin(t)
	st := &stuckStore{Store: p.Server.Store, release: make(chan struct{})}
	var logs lockedBuffer
	const queue = 4
	g, err := gateway.New(gateway.Options{Store: st, Sealer: p.Sealer(t), BaseURL: p.BaseURL, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Dial: dialOnly(origin), LogQueue: queue, LogBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := proxyClient(serveGateway(t, g), p.token(t, 0))
	metric := func(name string) int {
		rec := httptest.NewRecorder()
		g.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return promGauge(rec.Body.String(), name)
	}

	// The writer takes the first record and is stuck with it; the queue
	// holds the next four; the others are dropped.
	const n = 20
	for i := range n {
		if resp, body := get(t, c, "http://"+origin+"/overflow"); resp.StatusCode != 200 {
			t.Fatalf("request %d with the store stuck: %d %q", i, resp.StatusCode, body)
		}
	}
	eventually(t, 10*time.Second, "the dropped records counted", func() bool { return metric("vigie_gateway_log_dropped_total") >= n-1-queue })
	if !strings.Contains(logs.String(), "access-log queue full") {
		t.Errorf("the log does not say that records were dropped:\n%s", logs.String())
	}
	close(st.release)
	eventually(t, 10*time.Second, "every record written or counted as dropped", func() bool {
		return metric("vigie_gateway_log_written_total")+metric("vigie_gateway_log_dropped_total") == n
	})
}

// stuckStore holds every access-log write until release is closed.
type stuckStore struct {
	store.Store
	release chan struct{}
}

func (s *stuckStore) AppendAccess(ctx context.Context, records []*store.AccessRecord) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.AppendAccess(ctx, records)
}

// lockedBuffer is a log destination that goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
