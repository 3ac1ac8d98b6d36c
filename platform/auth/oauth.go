package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/token"
)

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status int
	Code   string `json:"error"`
	Desc   string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Desc }

func invalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc}
}
func invalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// TokenResponse is the token endpoint's answer (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	// RefreshExpiresIn is how long until the login must be confirmed at the
	// IdP again (the session's absolute end), in seconds.
	RefreshExpiresIn int `json:"refresh_expires_in"`
}

// clientKey identifies a token-endpoint client for rate limiting: the
// tenant and the remote address (the agent is a public client with no
// secret, so the address is what tells two of them apart).
func clientKey(tenantID string, r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return tenantID + "|" + host
}

func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		writeJSON(w, http.StatusNotFound, &oauthError{Code: "invalid_request", Desc: "unknown tenant"})
		return
	}
	if ok, wait := s.limit.Allow(clientKey(t.ID, r)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		writeJSON(w, http.StatusTooManyRequests, &oauthError{Code: "slow_down", Desc: "too many token requests; retry later"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, invalidRequest("the body must be application/x-www-form-urlencoded"))
		return
	}
	f := r.PostForm
	var resp *TokenResponse
	switch {
	case f.Get("client_id") != ClientID:
		err = &oauthError{http.StatusUnauthorized, "invalid_client", "unknown client_id"}
	case f.Get("grant_type") == "authorization_code":
		resp, err = s.codeGrant(r.Context(), t, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"), f.Get("device"))
	case f.Get("grant_type") == "refresh_token":
		resp, err = s.refreshGrant(r.Context(), t, f.Get("refresh_token"), f.Get("device"))
	case f.Get("grant_type") == "":
		err = invalidRequest("grant_type is required")
	default:
		err = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"}
	}
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			s.log.Error("auth: token endpoint", "tenant", t.ID, "err", err)
			oe = &oauthError{http.StatusInternalServerError, "server_error", "internal error"}
		}
		if oe.status == 0 {
			oe.status = http.StatusBadRequest
		}
		writeJSON(w, oe.status, oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// codeGrant exchanges a single-use code and its PKCE verifier for the first
// tokens of a new login session.
func (s *Service) codeGrant(ctx context.Context, t *store.Tenant, code, redirectURI, verifier, device string) (*TokenResponse, error) {
	if code == "" || redirectURI == "" || verifier == "" {
		return nil, invalidRequest("code, redirect_uri and code_verifier are required")
	}
	if !pkceValue(verifier) {
		return nil, invalidRequest("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	now := s.now()
	ac, err := s.st.TakeAuthCode(ctx, t.ID, secret.HashToken(code), now)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		s.audit(ctx, t.ID, "anonymous", "token.code_refused", "", map[string]string{"reason": err.Error()})
		return nil, invalidGrant("the code is unknown, used or expired")
	case err != nil:
		return nil, err
	}
	// The code is spent from here on, whatever follows: a second try with
	// the right verifier must not succeed after a wrong one.
	switch {
	case ac.RedirectURI != redirectURI:
		return nil, s.refuseCode(ctx, t.ID, ac, "redirect_uri does not match the authorize request")
	case !pkceMatches(verifier, ac.CodeChallenge):
		return nil, s.refuseCode(ctx, t.ID, ac, "code_verifier does not match code_challenge")
	case ac.Device != device:
		return nil, s.refuseCode(ctx, t.ID, ac, "device does not match the authorize request")
	}
	st, err := settings(t)
	if err != nil {
		return nil, err
	}
	user, err := s.st.User(ctx, t.ID, ac.UserID)
	if err != nil || !user.Active {
		return nil, s.refuseCode(ctx, t.ID, ac, "user is no longer active")
	}
	refresh := secret.NewToken()
	sess := &store.Session{Tenant: t.ID, ID: ac.SessionID, UserID: user.ID, Device: ac.Device, AuthTime: now,
		CreatedAt: now, ExpiresAt: now.Add(st.RefreshLifetime.D())}
	first := &store.RefreshToken{Tenant: t.ID, Hash: secret.HashToken(refresh), SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	if err := s.st.CreateSession(ctx, sess, first); err != nil {
		return nil, err
	}
	s.audit(ctx, t.ID, "user:"+user.ID, "session.start", sess.ID, map[string]string{"device": sess.Device})
	return s.tokenResponse(ctx, t, user, sess, refresh, st.AccessTokenTTL.D())
}

func (s *Service) refuseCode(ctx context.Context, tenantID string, ac *store.AuthCode, reason string) error {
	s.audit(ctx, tenantID, "anonymous", "token.code_refused", ac.UserID, map[string]string{"reason": reason})
	return invalidGrant(reason)
}

// refreshGrant spends a refresh token for a new pair. Claims are recomputed
// from the directory; a spent token presented again ends the whole session.
func (s *Service) refreshGrant(ctx context.Context, t *store.Tenant, refresh, device string) (*TokenResponse, error) {
	if refresh == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	st, err := settings(t)
	if err != nil {
		return nil, err
	}
	now := s.now()
	next := secret.NewToken()
	nt := &store.RefreshToken{Tenant: t.ID, Hash: secret.HashToken(next), CreatedAt: now}
	sess, err := s.st.RotateRefreshToken(ctx, t.ID, secret.HashToken(refresh), nt, now)
	switch {
	case errors.Is(err, store.ErrReused):
		s.log.Warn("auth: refresh token reused; session revoked", "tenant", t.ID, "session", sessionID(sess))
		s.audit(ctx, t.ID, "system", "token.reuse", sessionID(sess), nil)
		return nil, invalidGrant("refresh token already used: the session is revoked, sign in again")
	case errors.Is(err, store.ErrExpired):
		return nil, invalidGrant("the session has reached its maximum lifetime: sign in again")
	case errors.Is(err, store.ErrRevoked):
		return nil, invalidGrant("the session was revoked: sign in again")
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidGrant("unknown refresh token")
	case err != nil:
		return nil, err
	}
	if sess.Device != "" && device != "" && device != sess.Device {
		s.st.RevokeSession(ctx, t.ID, sess.ID, "refresh token used from another device", now)
		s.audit(ctx, t.ID, "system", "token.device_mismatch", sess.ID, map[string]string{"device": device})
		return nil, invalidGrant("refresh token used from another device: the session is revoked")
	}
	user, err := s.st.User(ctx, t.ID, sess.UserID)
	if err != nil || !user.Active {
		s.st.RevokeSession(ctx, t.ID, sess.ID, "user not active", now)
		return nil, invalidGrant("the user is no longer active")
	}
	return s.tokenResponse(ctx, t, user, sess, next, st.AccessTokenTTL.D())
}

func sessionID(s *store.Session) string {
	if s == nil {
		return ""
	}
	return s.ID
}

// tokenResponse signs an access token for the session, never outliving it.
func (s *Service) tokenResponse(ctx context.Context, t *store.Tenant, user *store.User, sess *store.Session, refresh string, ttl time.Duration) (*TokenResponse, error) {
	now := s.now()
	exp := now.Add(ttl)
	if exp.After(sess.ExpiresAt) {
		exp = sess.ExpiresAt
	}
	groups, err := s.st.GroupsOfUser(ctx, t.ID, user.ID)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.DisplayName
	}
	c := &token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: user.ID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp)},
		Tenant:           t.ID, Groups: names, SID: sess.ID, Device: sess.Device,
	}
	access, err := s.tokens.Sign(ctx, c)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(exp.Sub(now).Seconds()),
		RefreshToken: refresh, RefreshExpiresIn: int(sess.ExpiresAt.Sub(now).Seconds())}, nil
}

// handleRevoke is RFC 7009 revocation, for the agent's logout: a refresh
// token or an access token ends its login session. Unknown tokens are not
// an error (§2.2).
func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		writeJSON(w, http.StatusNotFound, &oauthError{Code: "invalid_request", Desc: "unknown tenant"})
		return
	}
	if ok, _ := s.limit.Allow(clientKey(t.ID, r)); !ok {
		writeJSON(w, http.StatusTooManyRequests, &oauthError{Code: "slow_down", Desc: "too many requests"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		writeJSON(w, http.StatusBadRequest, invalidRequest("token is required"))
		return
	}
	if r.PostForm.Get("client_id") != ClientID {
		writeJSON(w, http.StatusUnauthorized, &oauthError{Code: "invalid_client", Desc: "unknown client_id"})
		return
	}
	tok := r.PostForm.Get("token")
	ctx := r.Context()
	sid := ""
	if sess, err := s.st.RefreshTokenSession(ctx, t.ID, secret.HashToken(tok)); err == nil {
		sid = sess.ID
	} else if c, err := s.verifyAccessToken(ctx, t.ID, tok); err == nil {
		sid = c.SID
	}
	if sid != "" {
		if err := s.st.RevokeSession(ctx, t.ID, sid, "logout", s.now()); err != nil {
			s.log.Error("auth: revoking session", "tenant", t.ID, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, &oauthError{Code: "temporarily_unavailable", Desc: "try again"})
			return
		}
		s.audit(ctx, t.ID, "client", "session.revoke", sid, map[string]string{"reason": "logout"})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// verifyAccessToken checks an access token of the tenant against its keys.
func (s *Service) verifyAccessToken(ctx context.Context, tenantID, raw string) (*token.Claims, error) {
	set, err := s.tokens.JWKS(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(set)
	keys, err := token.ParseJWKS(data)
	if err != nil {
		return nil, err
	}
	v := &token.Verifier{Issuer: s.issuer(tenantID), Audience: token.Audience(s.base, tenantID), Now: s.now,
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
	return v.Verify(raw)
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return
	}
	set, err := s.tokens.JWKS(r.Context(), t.ID)
	if err != nil {
		s.log.Error("auth: JWKS", "tenant", t.ID, "err", err)
		http.Error(w, "key set unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=30")
	json.NewEncoder(w).Encode(set)
}

// ASMetadata is the RFC 8414 authorization server metadata.
type ASMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

func (s *Service) handleASMetadata(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, ASMetadata{
		Issuer:                            s.issuer(t.ID),
		AuthorizationEndpoint:             s.tenantURL(t.ID, "/oauth/authorize"),
		TokenEndpoint:                     s.tenantURL(t.ID, "/oauth/token"),
		RevocationEndpoint:                s.tenantURL(t.ID, "/oauth/revoke"),
		JWKSURI:                           s.tenantURL(t.ID, "/.well-known/jwks.json"),
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"none"},
		RevocationEndpointAuthMethods:     []string{"none"},
		AuthorizationResponseISSSupported: true,
	})
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: no randomness: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
