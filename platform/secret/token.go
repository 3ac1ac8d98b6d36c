package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// NewToken returns a random 256-bit secret, base64url: bearer tokens,
// authorization codes, refresh tokens.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("secret: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is how such secrets are kept: configuration files and the store
// hold the hex SHA-256, never the secret. They are 256-bit random values,
// so a plain hash is enough (no salt or slow hash is needed against
// guessing), and a lookup by hash compares no secret byte by byte.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenMatches reports, in constant time, whether token hashes to wantHash.
func TokenMatches(token, wantHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(wantHash)) == 1
}

// Bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110 §11.1).
func Bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// BearerMatches reports whether an Authorization header carries the bearer
// token whose hash is wantHash.
func BearerMatches(header, wantHash string) bool {
	tok, ok := Bearer(header)
	return ok && TokenMatches(tok, wantHash)
}
