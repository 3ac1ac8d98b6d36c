package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/store/storetest"
	"vigie/platform/tenant"
	"vigie/platform/token"
)

// benchService is the token endpoint on a store, with a tenant, a user in
// a group, and no rate limit: what one refresh grant costs, without SAML or
// the network.
func benchService(b *testing.B, st store.Store) (*Service, http.Handler, string) {
	ctx := context.Background()
	seal, _ := secret.New(bytes.Repeat([]byte{9}, secret.KeySize))
	now := time.Now
	issuer := token.NewIssuer(st, seal, "http://127.0.0.1", now)
	s := New(Options{Store: st, Tokens: issuer, Sealer: seal, BaseURL: "http://127.0.0.1", TokenRate: 1e9, TokenBurst: 1e9})
	t0 := now()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(st.CreateTenant(ctx, &store.Tenant{ID: "bench", Name: "Bench", Settings: tenant.Defaults().JSON(), CreatedAt: t0, UpdatedAt: t0}))
	must(issuer.EnsureKey(ctx, "bench"))
	must(st.CreateUser(ctx, &store.User{Tenant: "bench", ID: "u1", UserName: "u1@bench.example", Active: true, Attributes: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}))
	must(st.CreateGroup(ctx, &store.Group{Tenant: "bench", ID: "g1", DisplayName: "staff", Members: []string{"u1"}, Attributes: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}))
	refresh := secret.NewToken()
	sess := &store.Session{Tenant: "bench", ID: "s1", UserID: "u1", AuthTime: t0, CreatedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour)}
	must(st.CreateSession(ctx, sess, &store.RefreshToken{Tenant: "bench", Hash: secret.HashToken(refresh), SessionID: "s1", CreatedAt: t0, ExpiresAt: sess.ExpiresAt}))
	mux := http.NewServeMux()
	s.Register(mux)
	return s, mux, refresh
}

// BenchmarkRefreshGrant measures refresh grants per second through the
// token endpoint's handler on SQLite and PostgreSQL, in one run: each
// iteration spends the refresh token the previous one returned (rotation,
// claims recomputed from the directory, a signed access token).
func BenchmarkRefreshGrant(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(db.name, func(b *testing.B) {
			_, h, refresh := benchService(b, db.open(b))
			for b.Loop() {
				form := url.Values{"grant_type": {"refresh_token"}, "client_id": {ClientID}, "refresh_token": {refresh}}
				req := httptest.NewRequest(http.MethodPost, "/t/bench/oauth/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("refresh: %d %s", rec.Code, rec.Body)
				}
				var tr TokenResponse
				json.Unmarshal(rec.Body.Bytes(), &tr)
				refresh = tr.RefreshToken
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// BenchmarkJWT measures signing and verifying one access token.
func BenchmarkJWT(b *testing.B) {
	s, _, _ := benchService(b, storetest.SQLite(b))
	ctx := context.Background()
	now := time.Now()
	claims := func() *token.Claims {
		return &token.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute))}, Tenant: "bench", SID: "s1", Groups: []string{"staff"}}
	}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.tokens.Sign(ctx, claims()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	raw, _ := s.tokens.Sign(ctx, claims())
	set, _ := s.tokens.JWKS(ctx, "bench")
	data, _ := json.Marshal(set)
	keys, _ := token.ParseJWKS(data)
	v := &token.Verifier{Issuer: token.IssuerURL("http://127.0.0.1", "bench"), Audience: token.Audience("http://127.0.0.1", "bench"),
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
