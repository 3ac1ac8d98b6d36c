package feed_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"vigie/platform/feed"
	"vigie/platform/platformtest"
	"vigie/platform/store"
)

func poll(t *testing.T, p *platformtest.Platform, token, query string) (int, *feed.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.BaseURL+"/api/v1/revocations"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r feed.Response
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, &r
}

func TestFeed(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})
	ctx := context.Background()
	for _, tok := range []string{"", "wrong", p.AdminToken} {
		if status, _ := poll(t, p, tok, "?after=0"); status != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, status)
		}
	}
	for _, q := range []string{"?after=-1", "?after=x", "?wait=soon", "?wait=-1s"} {
		if status, _ := poll(t, p, p.FeedToken, q); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, status)
		}
	}
	// The demo's setup already put configuration events (categories, the
	// tenant's CA) on the feed: start after them.
	status, first := poll(t, p, p.FeedToken, "?after=0")
	if status != 200 {
		t.Fatalf("feed: %d %+v", status, first)
	}
	for _, e := range first.Events {
		if e.Kind == store.RevokeUser || e.Kind == store.RevokeSession {
			t.Fatalf("a revocation before any: %+v", e)
		}
	}
	base := itoa(first.Next)

	// A long poll returns as soon as a revocation is stored.
	got := make(chan *feed.Response, 1)
	go func() {
		_, r := poll(t, p, p.FeedToken, "?after="+base+"&wait=30s")
		got <- r
	}()
	if _, err := p.Server.Store.RevokeUserSessions(ctx, p.Tenant, "demo-bob", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	var r *feed.Response
	select {
	case r = <-got:
	case <-time.After(25 * time.Second): // the poll's own 30 s would be a miss
		t.Fatal("the long poll did not return the revocation")
	}
	if len(r.Events) != 1 || r.Events[0].Kind != store.RevokeUser || r.Events[0].Subject != "demo-bob" || r.Next != r.Events[0].Seq {
		t.Fatalf("events %+v", r)
	}

	// Resuming from the cursor gives what came after, and nothing twice.
	if err := p.Server.Store.AddRevocation(ctx, &store.Revocation{Tenant: p.Tenant, Kind: store.RevokeSession, Subject: "s-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, r2 := poll(t, p, p.FeedToken, "?after="+itoa(r.Next))
	if len(r2.Events) != 1 || r2.Events[0].Kind != store.RevokeSession || r2.Events[0].Seq <= r.Next {
		t.Fatalf("resumed: %+v", r2)
	}
	// A poll with nothing new waits, then answers empty with the same cursor.
	_, r3 := poll(t, p, p.FeedToken, "?after="+itoa(r2.Next)+"&wait=300ms")
	if len(r3.Events) != 0 || r3.Next != r2.Next {
		t.Fatalf("empty wait: %+v", r3)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
