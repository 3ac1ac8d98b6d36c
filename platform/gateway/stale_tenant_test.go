package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"vigie/platform/gateway"
	"vigie/platform/server"
	"vigie/platform/store"
)

// TestPolicyChangeDuringTenantLoad: a node that is loading a tenant (first
// use, or after an earlier change) when the feed says the tenant's policy
// changed must not keep what that load read: the next request is decided
// with the new policy, not up to a minute later (tenantTTL).
func TestPolicyChangeDuringTenantLoad(t *testing.T) {
	p := startPlatform(t, nil, server.Options{})
	origin := newLoopbackOrigin(t)
	st := &pausingStore{Store: p.Server.Store, policyRead: make(chan struct{}), resume: make(chan struct{})}
	g, err := gateway.New(gateway.Options{Store: st, Sealer: p.Sealer(t), BaseURL: p.BaseURL,
		Logger: slog.New(slog.DiscardHandler), Dial: dialOnly(origin)})
	if err != nil {
		t.Fatal(err)
	}
	c := proxyClient(serveGateway(t, g), p.token(t, 0))
	page := "http://" + origin + "/stale"

	// A first request makes the node load the tenant; the load reads the
	// policy (none yet: allow) and is held there.
	st.pause.Store(true)
	first := make(chan int, 1)
	go func() {
		resp, err := c.Get(page)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-st.policyRead
	// Meanwhile the admin blocks the origin, and the node applies the event.
	p.admin(t, "PUT", "/api/v1/tenants/demo/policy", `{"version":0,"policy":{"rules":[{"id":"stale","hosts":["127.0.0.1"],"action":"block"}]}}`)
	// The feed is read in turn with applying what it said: of the reads
	// that end from now on, the first may have started before the change,
	// the second has the event, and the third starts once it is applied.
	for seen := st.feedReads.Load(); st.feedReads.Load() < seen+3; {
		time.Sleep(10 * time.Millisecond) // the node's poll: no clock to inject
	}
	close(st.resume)
	if s := <-first; s != http.StatusOK && s != http.StatusForbidden {
		t.Fatalf("the request in flight during the change: %d", s) // either policy may decide it
	}
	resp, body := get(t, c, page)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the first request after the node applied the policy change: %d %q (the load that started before the change was cached)", resp.StatusCode, body)
	}
}

// pausingStore holds the first Policy read after pause is set, once it has
// read, until resume is closed; it counts the feed reads.
type pausingStore struct {
	store.Store
	pause      atomic.Bool
	policyRead chan struct{}
	resume     chan struct{}
	feedReads  atomic.Int64
}

func (s *pausingStore) Policy(ctx context.Context, tenant string) (*store.Policy, error) {
	p, err := s.Store.Policy(ctx, tenant)
	if s.pause.CompareAndSwap(true, false) {
		close(s.policyRead)
		<-s.resume
	}
	return p, err
}

func (s *pausingStore) Revocations(ctx context.Context, after int64, limit int) ([]*store.Revocation, error) {
	defer s.feedReads.Add(1)
	return s.Store.Revocations(ctx, after, limit)
}
