// Package feed serves the revocation feed to gateway nodes: every revoked
// user and session and every signing-key rotation, across tenants, in
// order, resumable from a cursor so that a node that reconnects misses
// nothing. Gateways long-poll it; an event reaches them within about a
// second of being stored.
package feed

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"vigie/platform/secret"
	"vigie/platform/store"
)

// Defaults of the long poll.
const (
	MaxWait      = 60 * time.Second // longest wait a client may ask for
	PollInterval = 250 * time.Millisecond
	MaxBatch     = 1000
)

// Handler serves GET /api/v1/revocations?after=CURSOR&wait=DURATION.
type Handler struct {
	Store store.Store
	// TokenSHA256 is the hex SHA-256 of the gateways' bearer token.
	TokenSHA256 string
	Log         *slog.Logger
}

// Response is one batch of the feed. Next is the cursor to ask for next.
type Response struct {
	Events []*Event `json:"events"`
	Next   int64    `json:"next"`
}

// Event is one revocation, as gateways see it.
type Event struct {
	Seq     int64     `json:"seq"`
	Tenant  string    `json:"tenant"`
	Kind    string    `json:"kind"` // "session", "user" or "keys"
	Subject string    `json:"subject"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !secret.BearerMatches(r.Header.Get("Authorization"), h.TokenSHA256) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigie-feed"`)
		http.Error(w, "feed token required", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil || after < 0 {
		http.Error(w, "after: want a non-negative cursor", http.StatusBadRequest)
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			http.Error(w, "wait: want a duration such as 30s", http.StatusBadRequest)
			return
		}
		wait = min(wait, MaxWait)
	}
	ctx := r.Context()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		revs, err := h.Store.Revocations(ctx, after, MaxBatch)
		if err != nil {
			h.Log.Error("feed: reading revocations", "err", err)
			http.Error(w, "feed unavailable", http.StatusServiceUnavailable)
			return
		}
		if len(revs) > 0 || wait == 0 {
			resp := Response{Events: make([]*Event, len(revs)), Next: after}
			for i, rv := range revs {
				resp.Events[i] = &Event{Seq: rv.Seq, Tenant: rv.Tenant, Kind: rv.Kind, Subject: rv.Subject, Reason: rv.Reason, At: rv.At}
				resp.Next = rv.Seq
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(resp)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			wait = 0 // answer with what there is (nothing)
		case <-tick.C:
		}
	}
}
