package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"vigie/certs"
	"vigie/platform/policy"
	"vigie/platform/store"
	"vigie/platform/tenant"
)

// tenantState is what a node needs of a tenant: its public signing keys,
// compiled policy and leaf minter. Loaded on first use, dropped when the
// feed says one of them changed, and reloaded at least every tenantTTL in
// case an event was missed.
type tenantState struct {
	id     string
	loaded time.Time
	keys   map[string]ed25519.PublicKey
	policy *policy.Compiled
	minter *certs.Minter // nil when the tenant has no CA: nothing is inspected
}

const tenantTTL = time.Minute

type tenantCache struct {
	mu sync.Mutex
	m  map[string]*tenantState
	// gen counts invalidations (forgetTenant): a load that one overtook
	// may hold what the invalidation replaced, so it serves its own
	// request but is not cached.
	gen uint64
}

func (g *Gateway) tenant(ctx context.Context, id string) (*tenantState, error) {
	now := g.now()
	g.tenants.mu.Lock()
	ts, gen := g.tenants.m[id], g.tenants.gen
	g.tenants.mu.Unlock()
	if ts != nil && now.Sub(ts.loaded) < tenantTTL && !now.Before(ts.loaded) {
		return ts, nil
	}
	ts, err := g.loadTenant(ctx, id, now)
	if err != nil {
		return nil, err
	}
	g.tenants.mu.Lock()
	if g.tenants.gen == gen {
		g.tenants.m[id] = ts
	}
	g.tenants.mu.Unlock()
	return ts, nil
}

func (g *Gateway) forgetTenant(id string) {
	g.tenants.mu.Lock()
	delete(g.tenants.m, id)
	g.tenants.gen++
	g.tenants.mu.Unlock()
}

func (g *Gateway) loadTenant(ctx context.Context, id string, now time.Time) (*tenantState, error) {
	if _, err := g.st.Tenant(ctx, id); err != nil {
		return nil, err
	}
	ts := &tenantState{id: id, loaded: now, keys: map[string]ed25519.PublicKey{}}
	keys, err := g.st.SigningKeys(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.RemoveAt.IsZero() || now.Before(k.RemoveAt) {
			ts.keys[k.KID] = ed25519.PublicKey(k.Public)
		}
	}
	doc := &policy.Doc{}
	var version int64
	switch p, err := g.st.Policy(ctx, id); {
	case err == nil:
		if doc, err = policy.Parse(p.Doc); err != nil {
			// Stored policies were validated when written: refuse to guess.
			return nil, fmt.Errorf("gateway: tenant %s policy v%d: %w", id, p.Version, err)
		}
		version = p.Version
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	ts.policy = policy.Compile(doc, version)
	cas, err := g.st.CAs(ctx, id)
	if err != nil {
		return nil, err
	}
	if ts.minter, err = g.minterFor(id, cas, now); err != nil {
		return nil, err
	}
	return ts, nil
}

// minterFor builds the leaf minter of the tenant's signing CA, reusing the
// node's minter (and its warm leaf cache) while that CA does not change.
func (g *Gateway) minterFor(tenantID string, cas []*store.CA, now time.Time) (*certs.Minter, error) {
	recs := make([]certs.Record, len(cas))
	for i, ca := range cas {
		recs[i] = certs.Record{ID: ca.ID, CertPEM: []byte(ca.CertPEM), CreatedAt: ca.CreatedAt, ActiveAt: ca.ActiveAt,
			RetiredAt: ca.RetiredAt, RemoveAt: ca.RemoveAt}
	}
	rec, ok := certs.Signing(recs, now)
	if !ok {
		return nil, nil
	}
	g.minters.mu.Lock()
	defer g.minters.mu.Unlock()
	if m := g.minters.m[tenantID]; m != nil && m.id == rec.ID {
		return m.minter, nil
	}
	var sealed []byte
	for _, ca := range cas {
		if ca.ID == rec.ID {
			sealed = ca.Key
		}
	}
	key, err := g.seal.Open(sealed, tenant.CAKeyPurpose(tenantID, rec.ID))
	if err != nil {
		return nil, fmt.Errorf("gateway: tenant %s CA %s: %w", tenantID, rec.ID, err)
	}
	ca, err := certs.ParseCA(rec.CertPEM, key)
	if err != nil {
		return nil, fmt.Errorf("gateway: tenant %s CA %s: %w", tenantID, rec.ID, err)
	}
	m, err := certs.NewMinter(ca, certs.MinterOptions{Now: g.now})
	if err != nil {
		return nil, err
	}
	g.minters.m[tenantID] = &tenantMinter{id: rec.ID, minter: m}
	return m, nil
}

type tenantMinter struct {
	id     string
	minter *certs.Minter
}

type minterCache struct {
	mu sync.Mutex
	m  map[string]*tenantMinter
}

// categories returns the node's category list, loading it on first use.
func (g *Gateway) categories(ctx context.Context) *policy.Categories {
	if c := g.cats.Load(); c != nil {
		return c
	}
	g.reloadCategories(ctx)
	return g.cats.Load()
}

func (g *Gateway) reloadCategories(ctx context.Context) {
	_, data, err := g.st.Categories(ctx)
	if errors.Is(err, store.ErrNotFound) {
		data, err = policy.ShippedCategories, nil
	}
	if err != nil {
		g.log.Error("gateway: loading categories", "err", err)
		return
	}
	c, err := policy.ParseCategories(data)
	if err != nil {
		g.log.Error("gateway: stored categories do not parse; keeping the last good list", "err", err)
		return
	}
	g.cats.Store(c)
}
