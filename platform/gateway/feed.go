package gateway

import (
	"context"
	"time"

	"vigie/platform/store"
	"vigie/platform/tenant"
)

// revocationHorizon is how far back a starting node applies revocations:
// no token lives longer than the longest access-token lifetime.
const revocationHorizon = tenant.MaxAccessTokenTTL + 5*time.Minute

// catchUp reads the whole feed when the node starts.
func (g *Gateway) catchUp(ctx context.Context) error {
	for {
		n, err := g.followOnce(ctx, true)
		if err != nil || n < 1000 {
			return err
		}
	}
}

// follow applies what the feed has gained since the last read.
func (g *Gateway) follow(ctx context.Context) error {
	for {
		n, err := g.followOnce(ctx, false)
		if err != nil || n < 1000 {
			g.revs.forget(g.now().Add(-revocationHorizon))
			return err
		}
	}
}

func (g *Gateway) followOnce(ctx context.Context, starting bool) (int, error) {
	events, err := g.st.Revocations(ctx, g.cursor.Load(), 1000)
	if err != nil {
		return 0, err
	}
	horizon := g.now().Add(-revocationHorizon)
	for _, e := range events {
		g.apply(ctx, e, starting && e.At.Before(horizon))
		g.cursor.Store(e.Seq)
	}
	return len(events), nil
}

// apply acts on one event. Revocations older than any live token are
// skipped when catching up; configuration changes always apply.
func (g *Gateway) apply(ctx context.Context, e *store.Revocation, stale bool) {
	g.m.revocations.WithLabelValues(e.Kind).Inc()
	switch e.Kind {
	case store.RevokeSession:
		if stale {
			return
		}
		g.revs.addSession(e.Tenant, e.Subject, e.At)
		if n := g.conns.closeKey("s|" + e.Tenant + "|" + e.Subject); n > 0 {
			g.log.Info("gateway: session revoked; connections closed", "tenant", e.Tenant, "session", e.Subject, "connections", n)
		}
	case store.RevokeUser:
		if stale {
			return
		}
		g.revs.addUser(e.Tenant, e.Subject, e.At)
		if n := g.conns.closeKey("u|" + e.Tenant + "|" + e.Subject); n > 0 {
			g.log.Info("gateway: user revoked; connections closed", "tenant", e.Tenant, "user", e.Subject, "connections", n)
		}
	case store.RotateKeys, store.PolicyChanged, store.CAChanged:
		g.forgetTenant(e.Tenant)
	case store.CategoriesChanged:
		g.reloadCategories(ctx)
	}
}
