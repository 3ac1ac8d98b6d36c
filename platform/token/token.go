// Package token issues and verifies the platform's access tokens: JWTs
// signed with a tenant's Ed25519 key (EdDSA, with kid), their JWKS, and the
// rotation of signing keys (a new key is published before it signs; an old
// one stays published until the last token it signed has expired).
//
// Refresh tokens are opaque and live in the store; the grants that use them
// are package auth's. The Verifier here is what gateways use.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/tenant"
)

// Claims are an access token's claims.
type Claims struct {
	jwt.RegisteredClaims          // iss, sub (user id), aud (the tenant's gateway), iat, exp, jti
	Tenant               string   `json:"tenant"`
	Groups               []string `json:"groups"`
	SID                  string   `json:"sid"`              // the login session
	Device               string   `json:"device,omitempty"` // the enrolled device the login was made on
}

// IssuerURL is a tenant's issuer: the base URL of its OAuth surfaces.
func IssuerURL(base, tenantID string) string { return base + "/t/" + tenantID }

// Audience is the aud of a tenant's access tokens: its gateway, and nobody
// else's, so a token of one tenant is refused by another's.
func Audience(base, tenantID string) string { return IssuerURL(base, tenantID) + "/gateway" }

// keyCacheTTL is how long a node trusts its copy of a tenant's keys; a
// rotation made on another node is seen within it (and a key is published
// KeyPublishLead before it signs, which is longer).
const keyCacheTTL = 10 * time.Second

// Issuer signs access tokens and manages signing keys.
type Issuer struct {
	st   store.Store
	seal *secret.Sealer
	now  func() time.Time
	base string

	mu    sync.Mutex
	cache map[string]*keySet
}

type keySet struct {
	loaded time.Time
	keys   []*key // oldest first
}

type key struct {
	meta *store.SigningKey
	priv ed25519.PrivateKey
}

// NewIssuer returns an Issuer for the platform at base URL (for example
// "https://vigie.example.com").
func NewIssuer(st store.Store, seal *secret.Sealer, base string, now func() time.Time) *Issuer {
	return &Issuer{st: st, seal: seal, base: base, now: now, cache: map[string]*keySet{}}
}

func purpose(tenantID, kid string) string { return "signing-key/" + tenantID + "/" + kid }

// newKey makes a key that signs from activeAt.
func (i *Issuer) newKey(tenantID string, now, activeAt time.Time) (*store.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := randomID(12)
	return &store.SigningKey{Tenant: tenantID, KID: kid, Private: i.seal.Seal(priv.Seed(), purpose(tenantID, kid)),
		Public: pub, CreatedAt: now, ActiveAt: activeAt}, nil
}

// EnsureKey gives a tenant its first signing key, active at once, if it has
// none.
func (i *Issuer) EnsureKey(ctx context.Context, tenantID string) error {
	keys, err := i.st.SigningKeys(ctx, tenantID)
	if err != nil || len(keys) > 0 {
		return err
	}
	now := i.now()
	k, err := i.newKey(tenantID, now, now)
	if err != nil {
		return err
	}
	if err := i.st.AddSigningKey(ctx, k); err != nil {
		return err
	}
	i.forget(tenantID)
	return nil
}

// Rotate publishes a new signing key that signs from now+lead; the keys
// signing now stop then, and stay published for MaxAccessTokenTTL more so
// that every token they signed can still be verified. A lead of 0 (after a
// compromise) switches at once. Gateways learn of it from the revocation
// feed.
func (i *Issuer) Rotate(ctx context.Context, tenantID string, lead time.Duration) (*store.SigningKey, error) {
	now := i.now()
	k, err := i.newKey(tenantID, now, now.Add(lead))
	if err != nil {
		return nil, err
	}
	old, err := i.st.SigningKeys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if err := i.st.AddSigningKey(ctx, k); err != nil {
		return nil, err
	}
	for _, o := range old {
		if o.RetiredAt.IsZero() {
			o.RetiredAt = k.ActiveAt
			o.RemoveAt = k.ActiveAt.Add(tenant.MaxAccessTokenTTL + time.Minute)
			if err := i.st.UpdateSigningKey(ctx, o); err != nil {
				return nil, err
			}
		}
	}
	if err := i.st.AddRevocation(ctx, &store.Revocation{Tenant: tenantID, Kind: store.RotateKeys, Subject: k.KID,
		Reason: "signing key rotation", At: now}); err != nil {
		return nil, err
	}
	i.forget(tenantID)
	return k, nil
}

func (i *Issuer) forget(tenantID string) {
	i.mu.Lock()
	delete(i.cache, tenantID)
	i.mu.Unlock()
}

// keys returns a tenant's keys, from the cache when fresh. Keys past their
// RemoveAt are deleted on the way.
func (i *Issuer) keys(ctx context.Context, tenantID string) ([]*key, error) {
	now := i.now()
	i.mu.Lock()
	ks := i.cache[tenantID]
	i.mu.Unlock()
	if ks != nil && now.Sub(ks.loaded) < keyCacheTTL && !now.Before(ks.loaded) {
		return ks.keys, nil
	}
	metas, err := i.st.SigningKeys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	ks = &keySet{loaded: now}
	for _, m := range metas {
		if !m.RemoveAt.IsZero() && !now.Before(m.RemoveAt) {
			if err := i.st.DeleteSigningKey(ctx, tenantID, m.KID); err != nil {
				return nil, err
			}
			continue
		}
		seed, err := i.seal.Open(m.Private, purpose(tenantID, m.KID))
		if err != nil {
			return nil, fmt.Errorf("token: signing key %s of %s: %w", m.KID, tenantID, err)
		}
		ks.keys = append(ks.keys, &key{meta: m, priv: ed25519.NewKeyFromSeed(seed)})
	}
	i.mu.Lock()
	i.cache[tenantID] = ks
	i.mu.Unlock()
	return ks.keys, nil
}

// ErrNoKey means a tenant has no key that may sign now.
var ErrNoKey = errors.New("token: no active signing key")

// Sign issues an access token for claims c, which must have Subject, SID,
// Tenant, IssuedAt and ExpiresAt set; Sign fills iss, aud and jti.
func (i *Issuer) Sign(ctx context.Context, c *Claims) (string, error) {
	keys, err := i.keys(ctx, c.Tenant)
	if err != nil {
		return "", err
	}
	now := i.now()
	var signer *key
	for _, k := range keys {
		if !now.Before(k.meta.ActiveAt) && (k.meta.RetiredAt.IsZero() || now.Before(k.meta.RetiredAt)) &&
			(signer == nil || k.meta.ActiveAt.After(signer.meta.ActiveAt)) {
			signer = k
		}
	}
	if signer == nil {
		return "", fmt.Errorf("token: tenant %s: %w", c.Tenant, ErrNoKey)
	}
	c.Issuer = IssuerURL(i.base, c.Tenant)
	c.Audience = jwt.ClaimStrings{Audience(i.base, c.Tenant)}
	c.ID = randomID(16)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = signer.meta.KID
	return t.SignedString(signer.priv)
}

// JWK is one public key of a JWKS (RFC 7517, RFC 8037).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"` // "sig"
	Alg string `json:"alg"` // "EdDSA"
}

// JWKS is a key set document.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns a tenant's published keys: every key not past its RemoveAt,
// including one not signing yet.
func (i *Issuer) JWKS(ctx context.Context, tenantID string) (*JWKS, error) {
	keys, err := i.keys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	set := &JWKS{Keys: []JWK{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.meta.Public),
			Kid: k.meta.KID, Use: "sig", Alg: "EdDSA"})
	}
	sort.Slice(set.Keys, func(a, b int) bool { return set.Keys[a].Kid < set.Keys[b].Kid })
	return set, nil
}

// ParseJWKS reads a key set, keeping only Ed25519 signature keys, and
// refuses malformed ones.
func ParseJWKS(data []byte) (map[string]ed25519.PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("token: JWKS: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Use != "" && k.Use != "sig" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize || k.Kid == "" {
			return nil, fmt.Errorf("token: JWKS: key %q is malformed", k.Kid)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("token: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
