package token

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/store/storetest"
	"vigie/platform/tenant"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func newIssuer(t *testing.T) (*Issuer, store.Store, *fakeClock) {
	st := storetest.SQLite(t)
	seal, _ := secret.New(bytes.Repeat([]byte{1}, secret.KeySize))
	clk := &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	if err := st.CreateTenant(context.Background(), &store.Tenant{ID: "acme", Name: "Acme", Settings: tenant.Defaults().JSON(),
		CreatedAt: clk.t, UpdatedAt: clk.t}); err != nil {
		t.Fatal(err)
	}
	return NewIssuer(st, seal, "https://p.example", clk.Now), st, clk
}

func claimsAt(now time.Time) *Claims {
	return &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute))}, Tenant: "acme", SID: "s1"}
}

// keysOf reads the published JWKS as a verifier would.
func keysOf(t *testing.T, i *Issuer) map[string]ed25519.PublicKey {
	set, err := i.JWKS(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(set)
	keys, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func verifierFor(i *Issuer, keys map[string]ed25519.PublicKey, now func() time.Time) *Verifier {
	return &Verifier{Issuer: IssuerURL("https://p.example", "acme"), Audience: Audience("https://p.example", "acme"), Now: now,
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
}

func kidOf(t *testing.T, raw string) string {
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &Claims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Header["kid"].(string)
}

func TestSignAndVerify(t *testing.T) {
	i, _, clk := newIssuer(t)
	ctx := context.Background()
	if _, err := i.Sign(ctx, claimsAt(clk.t)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Sign without a key: %v", err)
	}
	if err := i.EnsureKey(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := i.EnsureKey(ctx, "acme"); err != nil || len(keysOf(t, i)) != 1 {
		t.Fatalf("EnsureKey is not idempotent: %v", err)
	}
	raw, err := i.Sign(ctx, claimsAt(clk.t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifierFor(i, keysOf(t, i), clk.Now).Verify(raw)
	if err != nil || c.Issuer != "https://p.example/t/acme" || c.Audience[0] != "https://p.example/t/acme/gateway" || c.ID == "" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// The private key is sealed at rest.
	keys, _ := i.st.SigningKeys(ctx, "acme")
	if bytes.Contains(keys[0].Private, keys[0].Public) || len(keys[0].Private) < ed25519.SeedSize+16 {
		t.Error("signing key stored in clear")
	}
}

// TestRotation: a new key is published before it signs; the old one keeps
// signing until then and stays published until its last token expired.
func TestRotation(t *testing.T) {
	i, st, clk := newIssuer(t)
	ctx := context.Background()
	i.EnsureKey(ctx, "acme")
	oldTok, _ := i.Sign(ctx, claimsAt(clk.t))
	oldKid := kidOf(t, oldTok)

	newKey, err := i.Rotate(ctx, "acme", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if keys := keysOf(t, i); len(keys) != 2 || keys[newKey.KID] == nil {
		t.Fatalf("after rotation the JWKS holds %d keys, want both", len(keys))
	}
	if tok, _ := i.Sign(ctx, claimsAt(clk.t)); kidOf(t, tok) != oldKid {
		t.Fatal("the new key signs before its publication lead is over")
	}
	revs, _ := st.Revocations(ctx, 0, 10)
	if len(revs) != 1 || revs[0].Kind != store.RotateKeys || revs[0].Subject != newKey.KID {
		t.Fatalf("feed after rotation: %+v", revs)
	}

	clk.t = clk.t.Add(5 * time.Minute)
	newTok, _ := i.Sign(ctx, claimsAt(clk.t))
	if kidOf(t, newTok) != newKey.KID {
		t.Fatal("the new key does not sign after the lead")
	}
	// The old token still verifies while it is valid: its key is published.
	if _, err := verifierFor(i, keysOf(t, i), clk.Now).Verify(oldTok); err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	// After the longest token lifetime, the old key is gone.
	clk.t = clk.t.Add(tenant.MaxAccessTokenTTL + 2*time.Minute)
	if keys := keysOf(t, i); len(keys) != 1 || keys[oldKid] != nil {
		t.Fatalf("old key still published: %d keys", len(keys))
	}
	// An immediate rotation (after a compromise) switches at once.
	k3, _ := i.Rotate(ctx, "acme", 0)
	if tok, _ := i.Sign(ctx, claimsAt(clk.t)); kidOf(t, tok) != k3.KID {
		t.Fatal("a zero-lead rotation did not switch at once")
	}
}

// TestKeyCacheSeesOtherNodes: a rotation made by another node is seen
// within the cache lifetime.
func TestKeyCacheSeesOtherNodes(t *testing.T) {
	i, st, clk := newIssuer(t)
	ctx := context.Background()
	i.EnsureKey(ctx, "acme")
	i.Sign(ctx, claimsAt(clk.t)) // fills the cache
	other := NewIssuer(st, i.seal, "https://p.example", clk.Now)
	k, _ := other.Rotate(ctx, "acme", 0)
	clk.t = clk.t.Add(keyCacheTTL + time.Second)
	if tok, _ := i.Sign(ctx, claimsAt(clk.t)); kidOf(t, tok) != k.KID {
		t.Fatal("a node kept signing with a key another node retired")
	}
}

func TestWrongMasterKey(t *testing.T) {
	i, st, clk := newIssuer(t)
	ctx := context.Background()
	i.EnsureKey(ctx, "acme")
	seal, _ := secret.New(bytes.Repeat([]byte{2}, secret.KeySize))
	other := NewIssuer(st, seal, "https://p.example", clk.Now)
	if _, err := other.Sign(ctx, claimsAt(clk.t)); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("Sign with the wrong master key: %v", err)
	}
}
