package token

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var verifyNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type testKeys struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	v    *Verifier
}

func newTestKeys(t *testing.T) *testKeys {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &testKeys{pub: pub, priv: priv}
	k.v = &Verifier{
		Issuer:   IssuerURL("https://p.example", "acme"),
		Audience: Audience("https://p.example", "acme"),
		Key: func(kid string) (ed25519.PublicKey, bool) {
			if kid == "k1" {
				return pub, true
			}
			return nil, false
		},
		Now: func() time.Time { return verifyNow },
	}
	return k
}

func goodClaims() *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: IssuerURL("https://p.example", "acme"), Subject: "user-1",
			Audience: jwt.ClaimStrings{Audience("https://p.example", "acme")}, ID: "j1",
			IssuedAt: jwt.NewNumericDate(verifyNow.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(verifyNow.Add(14 * time.Minute)),
		},
		Tenant: "acme", SID: "s1", Groups: []string{"staff"},
	}
}

func (k *testKeys) sign(t *testing.T, c *Claims, header map[string]any) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = "k1"
	for h, v := range header {
		if v == nil {
			delete(tok.Header, h)
		} else {
			tok.Header[h] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyAccepts(t *testing.T) {
	k := newTestKeys(t)
	c, err := k.v.Verify(k.sign(t, goodClaims(), nil))
	if err != nil || c.Subject != "user-1" || c.SID != "s1" || c.Groups[0] != "staff" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// Within the leeway on both sides.
	cl := goodClaims()
	cl.ExpiresAt = jwt.NewNumericDate(verifyNow.Add(-10 * time.Second))
	if _, err := k.v.Verify(k.sign(t, cl, nil)); err != nil {
		t.Errorf("expired 10s ago, within the 30s leeway: %v", err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRejects(t *testing.T) {
	k := newTestKeys(t)
	mod := func(f func(c *Claims)) *Claims { c := goodClaims(); f(c); return c }
	payload, _ := json.Marshal(goodClaims())
	hs := func(header string, key []byte) string {
		in := b64(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	good := k.sign(t, goodClaims(), nil)
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	flipped[5] ^= 1
	tests := map[string]string{
		"alg none":              b64(`{"alg":"none","kid":"k1"}`) + "." + parts[1] + ".",
		"alg None":              b64(`{"alg":"None","kid":"k1"}`) + "." + parts[1] + ".",
		"alg nOnE":              b64(`{"alg":"nOnE","kid":"k1"}`) + "." + parts[1] + ".",
		"HS256 with public key": hs(`{"alg":"HS256","kid":"k1"}`, k.pub),
		"HS256 empty key kid":   hs(`{"alg":"HS256","kid":"../../../../dev/null"}`, nil),
		"empty signature":       parts[0] + "." + parts[1] + ".",
		"flipped signature":     parts[0] + "." + parts[1] + "." + string(flipped),
		"tampered payload":      parts[0] + "." + b64(`{"sub":"admin","sid":"s1","tenant":"acme"}`) + "." + parts[2],
		"unknown kid":           k.sign(t, goodClaims(), map[string]any{"kid": "k2"}),
		"no kid":                k.sign(t, goodClaims(), map[string]any{"kid": nil}),
		"crit":                  k.sign(t, goodClaims(), map[string]any{"crit": []string{"x-unknown"}, "x-unknown": 1}),
		"embedded jwk":          k.sign(t, goodClaims(), map[string]any{"jwk": map[string]string{"kty": "OKP"}}),
		"jku":                   k.sign(t, goodClaims(), map[string]any{"jku": "https://evil.example/jwks"}),
		"wrong audience":        k.sign(t, mod(func(c *Claims) { c.Audience = jwt.ClaimStrings{Audience("https://p.example", "other")} }), nil),
		"no audience":           k.sign(t, mod(func(c *Claims) { c.Audience = nil }), nil),
		"wrong issuer":          k.sign(t, mod(func(c *Claims) { c.Issuer = "https://evil.example/t/acme" }), nil),
		"expired":               k.sign(t, mod(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(verifyNow.Add(-time.Minute)) }), nil),
		"no expiry":             k.sign(t, mod(func(c *Claims) { c.ExpiresAt = nil }), nil),
		"not yet valid":         k.sign(t, mod(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(verifyNow.Add(2 * time.Minute)) }), nil),
		"issued in the future":  k.sign(t, mod(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(verifyNow.Add(5 * time.Minute)) }), nil),
		"no subject":            k.sign(t, mod(func(c *Claims) { c.Subject = "" }), nil),
		"no session":            k.sign(t, mod(func(c *Claims) { c.SID = "" }), nil),
		"not a JWT":             "thisisnotreallyajwt",
		"bearer prefix":         "Bearer " + good,
		"bad JSON claims":       parts[0] + "." + b64(`{"sub":`) + "." + parts[2],
	}
	for name, raw := range tests {
		if c, err := k.v.Verify(raw); err == nil {
			t.Errorf("%s: accepted (%+v)", name, c)
		}
	}
	// "On or after" exp is expired (RFC 7519 §4.1.4): exactly at exp plus
	// the leeway, the token is refused.
	if _, err := k.v.Verify(k.sign(t, mod(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(verifyNow.Add(-30 * time.Second)) }), nil)); err == nil {
		t.Error("a token at exp + leeway was accepted")
	}
}

// TestSharedVectors runs the team's JWT vectors (../shared/checklists):
// every unsigned, HMAC, RSA or ECDSA token must be refused by an EdDSA
// verifier, and the RFC 8037 Ed25519 signature must verify with the RFC key.
func TestSharedVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "checklists", "jwt_vectors.json"))
	if err != nil {
		t.Skipf("shared vectors not found: %v", err)
	}
	var f struct {
		Keys    map[string]json.RawMessage `json:"keys"`
		Vectors []struct{ ID, Alg, Token string }
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	k := newTestKeys(t)
	for _, vec := range f.Vectors {
		if vec.Alg == "EdDSA" {
			var jwk JWK
			json.Unmarshal(f.Keys["ed25519_8037_public_jwk"], &jwk)
			x, _ := base64.RawURLEncoding.DecodeString(jwk.X)
			parts := strings.Split(vec.Token, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			if err := jwt.SigningMethodEdDSA.Verify(parts[0]+"."+parts[1], sig, ed25519.PublicKey(x)); err != nil {
				t.Errorf("%s: RFC 8037 signature does not verify: %v", vec.ID, err)
			}
			continue
		}
		if _, err := k.v.Verify(vec.Token); err == nil {
			t.Errorf("%s (%s): accepted", vec.ID, vec.Alg)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	k := newTestKeys(t)
	doc, _ := json.Marshal(JWKS{Keys: []JWK{
		{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub), Kid: "k1", Use: "sig", Alg: "EdDSA"},
		{Kty: "RSA", Kid: "r1"},
	}})
	keys, err := ParseJWKS(doc)
	if err != nil || len(keys) != 1 || !keys["k1"].Equal(k.pub) {
		t.Fatalf("ParseJWKS = %v, %v", keys, err)
	}
	for _, bad := range []string{`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}]}`, `{"keys":`, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` +
		base64.RawURLEncoding.EncodeToString(k.pub) + `"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%s) succeeded", bad)
		}
	}
	if _, err := k.v.Verify("x"); !errors.Is(err, jwt.ErrTokenMalformed) {
		t.Errorf("malformed token error = %v", err)
	}
}
