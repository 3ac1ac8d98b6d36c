package distrib

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/distrib/artifact"
	"vigie/platform/store"
)

// DeviceScheme is the Authorization scheme of device requests:
// "Authorization: Vigie-Device <JWT>".
const DeviceScheme = artifact.DeviceScheme

// MaxDeviceTokenLifetime bounds exp - iat of a device token: a token
// copied from a request is useless minutes later.
const MaxDeviceTokenLifetime = artifact.MaxDeviceTokenLifetime

// deviceLeeway tolerates the difference between a device's clock and the
// platform's, on exp and iat.
const deviceLeeway = time.Minute

// Audience is the aud of a device token for a tenant (see
// artifact.DeviceAudience).
func Audience(base, tenantID string) string { return artifact.DeviceAudience(base, tenantID) }

// authError is a refused device request: the status and what the agent
// is told.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return "distrib: " + e.msg }

// errRevoked is returned once the token is verified: a revoked device is
// told so, which tells nothing to someone without its key.
var errRevoked = errors.New("distrib: device revoked")

// Authenticate checks a device request's token for tenantID and returns
// the device: EdDSA only, signed by the key the device enrolled with
// (iss = sub = the device ID), aud = Audience, exp and iat present, iat not
// in the future and exp at most MaxDeviceTokenLifetime after it (both
// within a minute's leeway), a jti, and a device that is not revoked.
// Tokens are not remembered: within its few minutes a copied token reads
// what the device could read, and every request is read-only.
func (s *Service) Authenticate(ctx context.Context, header, tenantID string) (*store.Device, error) {
	scheme, raw, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, DeviceScheme) || strings.TrimSpace(raw) == "" {
		return nil, &authError{http.StatusUnauthorized, "a device token is required (Authorization: " + DeviceScheme + " <JWT>)"}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithAudience(Audience(s.base, tenantID)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(deviceLeeway),
		jwt.WithTimeFunc(s.now),
	)
	var (
		claims   jwt.RegisteredClaims
		device   *store.Device
		storeErr error // the store failed: not the device's fault
	)
	_, err := p.ParseWithClaims(strings.TrimSpace(raw), &claims, func(t *jwt.Token) (any, error) {
		for _, h := range []string{"crit", "jku", "jwk", "x5u", "x5c"} {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("header %q is not accepted", h)
			}
		}
		if claims.Issuer == "" {
			return nil, errors.New("no iss (the device ID)")
		}
		d, err := s.st.Device(ctx, tenantID, claims.Issuer)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errors.New("unknown device")
		}
		if err != nil {
			storeErr = err
			return nil, err
		}
		if len(d.PublicKey) != ed25519.PublicKeySize {
			return nil, errors.New("the device's stored key is not an Ed25519 key")
		}
		device = d
		return ed25519.PublicKey(d.PublicKey), nil
	})
	if storeErr != nil {
		return nil, storeErr
	}
	if err != nil {
		return nil, &authError{http.StatusUnauthorized, "device token refused: " + err.Error()}
	}
	switch {
	case claims.Subject != claims.Issuer:
		return nil, &authError{http.StatusUnauthorized, "device token refused: sub must be the device ID, as iss"}
	case claims.IssuedAt == nil:
		return nil, &authError{http.StatusUnauthorized, "device token refused: no iat"}
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxDeviceTokenLifetime:
		return nil, &authError{http.StatusUnauthorized, fmt.Sprintf("device token refused: exp is more than %v after iat", MaxDeviceTokenLifetime)}
	case claims.ID == "" || len(claims.ID) > 128:
		return nil, &authError{http.StatusUnauthorized, "device token refused: jti is required (at most 128 characters)"}
	case !device.RevokedAt.IsZero():
		return nil, errRevoked
	}
	return device, nil
}

// handleArtifact serves GET /t/{tenant}/agent/{kind} to an enrolled device.
func (s *Service) handleArtifact(w http.ResponseWriter, r *http.Request) {
	tenantID, kind := r.PathValue("tenant"), r.PathValue("kind")
	if !artifact.ValidKind(kind) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown artifact %q; agents fetch %s", kind, strings.Join(artifact.Kinds, ", ")))
		return
	}
	_, err := s.Authenticate(r.Context(), r.Header.Get("Authorization"), tenantID)
	var ae *authError
	switch {
	case errors.As(err, &ae):
		w.Header().Set("WWW-Authenticate", DeviceScheme+` realm="vigie"`)
		writeError(w, ae.status, ae.msg)
		return
	case errors.Is(err, errRevoked):
		writeError(w, http.StatusForbidden, "this device is revoked; it must be enrolled again")
		return
	case err != nil:
		s.log.Error("distrib: device authentication", "tenant", tenantID, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (see the platform log)")
		return
	}
	body, etag, err := s.Envelope(r.Context(), tenantID, kind)
	switch {
	case errors.Is(err, ErrNoGateway):
		s.log.Error("distrib: cannot make the agent configuration", "tenant", tenantID, "kind", kind, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the platform's configuration does not name its gateway; its operator must set gateway.public_addr")
		return
	case errors.Is(err, ErrNoCA):
		writeError(w, http.StatusNotFound, "this tenant publishes no inspection CA")
		return
	case err != nil:
		s.log.Error("distrib: artifact", "tenant", tenantID, "kind", kind, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (see the platform log)")
		return
	}
	// Revalidate every time: the platform decides when a version changes.
	w.Header().Set("Cache-Control", "private, no-cache")
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110
// §13.1.2) against a strong ETag: "*", or a listed tag equal to it with or
// without W/.
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
