package gateway

import (
	"container/list"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/secret"
	"vigie/platform/token"
)

// identity is an authenticated user of one request or tunnel.
type identity struct {
	tenant  string
	user    string
	session string
	device  string
	groups  []string
	issued  time.Time
	expires time.Time
}

// tenantHeader is where the agent names the tenant, for the sign-in
// redirect of users without a token. It never goes further than the
// gateway.
const tenantHeader = "X-Vigie-Tenant"

// agentPortHeader is where the agent says on which loopback port it
// serves, so that the sign-in page links to its /login there (the port is
// configurable). Like tenantHeader, it stops at the gateway.
const agentPortHeader = "X-Vigie-Agent-Port"

// Why a request is not authenticated; the metric label and the log say it.
var (
	errNoToken       = errors.New("no bearer token")
	errBadToken      = errors.New("invalid token")
	errExpiredToken  = errors.New("expired token")
	errRevoked       = errors.New("revoked")
	errUnknownTenant = errors.New("unknown tenant")
)

// authCache remembers verified tokens, so that the cost of a request that
// carries a token seen before is a map lookup; bounded LRU.
type authCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type authEntry struct {
	token string
	id    *identity
}

func newAuthCache(max int) *authCache {
	return &authCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *authCache) get(tok string) *identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[tok]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*authEntry).id
	}
	return nil
}

func (c *authCache) put(tok string, id *identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[tok]; ok {
		e.Value.(*authEntry).id = id
		return
	}
	c.items[tok] = c.order.PushFront(&authEntry{tok, id})
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(*authEntry)
		delete(c.items, old.token)
	}
}

// revocations is what the feed said: sessions ended, and users revoked at
// a time (a token issued before it is refused; one issued after, once the
// user is enabled again, is not).
type revocations struct {
	mu       sync.RWMutex
	sessions map[string]time.Time // tenant|sid → when learned
	users    map[string]time.Time // tenant|user → revoked at
}

func newRevocations() *revocations {
	return &revocations{sessions: map[string]time.Time{}, users: map[string]time.Time{}}
}

func (r *revocations) revoked(id *identity) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.sessions[id.tenant+"|"+id.session]; ok {
		return true
	}
	at, ok := r.users[id.tenant+"|"+id.user]
	return ok && !id.issued.After(at)
}

func (r *revocations) addSession(tenant, sid string, at time.Time) {
	r.mu.Lock()
	r.sessions[tenant+"|"+sid] = at
	r.mu.Unlock()
}

func (r *revocations) addUser(tenant, user string, at time.Time) {
	r.mu.Lock()
	if at.After(r.users[tenant+"|"+user]) {
		r.users[tenant+"|"+user] = at
	}
	r.mu.Unlock()
}

// forget drops what no token can still be affected by: every token is
// refused after its expiry anyway.
func (r *revocations) forget(before time.Time) {
	r.mu.Lock()
	for k, at := range r.sessions {
		if at.Before(before) {
			delete(r.sessions, k)
		}
	}
	for k, at := range r.users {
		if at.Before(before) {
			delete(r.users, k)
		}
	}
	r.mu.Unlock()
}

// bearer returns the token of a Proxy-Authorization header.
func bearer(h http.Header) (string, bool) { return secret.Bearer(h.Get("Proxy-Authorization")) }

// authenticate checks a request's bearer token: from the cache when seen
// before (a map lookup), else verified against the tenant's keys; then
// expiry (with leeway) and revocation, on every use.
func (g *Gateway) authenticate(ctx context.Context, h http.Header) (*identity, error) {
	if g.anonymous != nil {
		return g.anonymous, nil
	}
	tok, ok := bearer(h)
	if !ok {
		return nil, errNoToken
	}
	now := g.now()
	id := g.authCache.get(tok)
	if id == nil {
		var err error
		if id, err = g.verify(ctx, tok); err != nil {
			return nil, err
		}
		g.authCache.put(tok, id)
	}
	if !now.Before(id.expires.Add(g.leeway)) {
		return nil, errExpiredToken
	}
	if g.revs.revoked(id) {
		return nil, errRevoked
	}
	return id, nil
}

// verify checks a token the node has not seen: it reads the tenant claim
// without trusting it, then verifies the signature with that tenant's keys,
// issuer and audience, so a token can only be valid for the tenant it names.
func (g *Gateway) verify(ctx context.Context, raw string) (*identity, error) {
	var unverified token.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil || unverified.Tenant == "" {
		return nil, fmt.Errorf("%w: %v", errBadToken, err)
	}
	ts, err := g.tenant(ctx, unverified.Tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", errUnknownTenant, unverified.Tenant)
	}
	v := &token.Verifier{
		Issuer: token.IssuerURL(g.base, ts.id), Audience: token.Audience(g.base, ts.id), Leeway: g.leeway, Now: g.now,
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := ts.keys[kid]; return k, ok },
	}
	c, err := v.Verify(raw)
	if err != nil && errors.Is(err, token.ErrUnknownKey) {
		// A key published since the tenant was loaded: reload once.
		g.forgetTenant(ts.id)
		if ts, err = g.tenant(ctx, unverified.Tenant); err == nil {
			v.Key = func(kid string) (ed25519.PublicKey, bool) { k, ok := ts.keys[kid]; return k, ok }
			c, err = v.Verify(raw)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadToken, err)
	}
	if c.ExpiresAt == nil || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: exp and iat are required", errBadToken)
	}
	return &identity{tenant: c.Tenant, user: c.Subject, session: c.SID, device: c.Device, groups: c.Groups,
		issued: c.IssuedAt.Time, expires: c.ExpiresAt.Time}, nil
}

// authFailureLabel names an authentication failure for metrics.
func authFailureLabel(err error) string {
	switch {
	case errors.Is(err, errNoToken):
		return "no_token"
	case errors.Is(err, errExpiredToken):
		return "expired"
	case errors.Is(err, errRevoked):
		return "revoked"
	case errors.Is(err, errUnknownTenant):
		return "unknown_tenant"
	default:
		return "invalid"
	}
}

// tenantHint is the tenant of a request without a valid token, for the
// sign-in redirect: the agent names it in X-Vigie-Tenant.
func tenantHint(h http.Header) string {
	return strings.TrimSpace(h.Get(tenantHeader))
}

// agentPort is the port the agent names in agentPortHeader, or "" when it
// names none or something that is not a port.
func agentPort(h http.Header) string {
	v := strings.TrimSpace(h.Get(agentPortHeader))
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != v {
		return ""
	}
	return v
}
