package token

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks access tokens of one tenant: EdDSA only (the algorithm is
// the verifier's choice, never the token's), a kid from the tenant's key set
// (never a key carried by the token), issuer and audience, expiry with a
// small leeway, and the claims the gateway relies on.
type Verifier struct {
	Issuer   string // IssuerURL of the tenant
	Audience string // Audience of the tenant
	// Key returns the public key for a kid, from the tenant's JWKS.
	Key func(kid string) (ed25519.PublicKey, bool)
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s.
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Errors of Verify, wrapped with detail.
var (
	ErrUnknownKey = errors.New("token: unknown signing key")
	ErrMalformed  = errors.New("token: malformed")
)

// Verify parses and checks raw, returning its claims.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	now, leeway := v.Now, v.Leeway
	if now == nil {
		now = time.Now
	}
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	)
	var c Claims
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		for _, h := range []string{"crit", "jku", "jwk", "x5u", "x5c"} {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("%w: header %q is not accepted", ErrMalformed, h)
			}
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid", ErrMalformed)
		}
		k, ok := v.Key(kid)
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
		}
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if c.Subject == "" || c.SID == "" || c.Tenant == "" {
		return nil, fmt.Errorf("%w: sub, sid and tenant are required", ErrMalformed)
	}
	return &c, nil
}
