package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"

	"vigie/platform/secret"
	"vigie/platform/store"
)

// Register adds the login and token endpoints of every tenant to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /t/{tenant}/saml/metadata", s.handleMetadata)
	mux.HandleFunc("POST /t/{tenant}/saml/acs", s.handleACS)
	mux.HandleFunc("GET /t/{tenant}/oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("GET /t/{tenant}/auth/login", s.handleAuthorize) // DESIGN.md's name for it
	mux.HandleFunc("POST /t/{tenant}/oauth/token", s.handleToken)
	mux.HandleFunc("POST /t/{tenant}/oauth/revoke", s.handleRevoke)
	mux.HandleFunc("GET /t/{tenant}/.well-known/jwks.json", s.handleJWKS)
	mux.HandleFunc("GET /t/{tenant}/.well-known/oauth-authorization-server", s.handleASMetadata)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/t/{tenant}", s.handleASMetadata)
}

// lookupTenant finds the tenant of the request's path.
func (s *Service) lookupTenant(r *http.Request) (*store.Tenant, error) {
	return s.st.Tenant(r.Context(), r.PathValue("tenant"))
}

func (s *Service) handleMetadata(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return
	}
	sp, err := s.serviceProvider(t)
	if err != nil {
		s.log.Error("auth: SAML metadata", "tenant", t.ID, "err", err)
		http.Error(w, "SAML is not set up for this tenant", http.StatusServiceUnavailable)
		return
	}
	md := sp.Metadata()
	desc := &md.SPSSODescriptors[0]
	desc.AuthnRequestsSigned = ptr(true)
	desc.WantAssertionsSigned = ptr(true)
	var acs []saml.IndexedEndpoint
	for _, e := range desc.AssertionConsumerServices {
		if e.Binding == saml.HTTPPostBinding { // the only binding the ACS accepts
			acs = append(acs, e)
		}
	}
	desc.AssertionConsumerServices = acs
	buf, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Write(buf)
}

func ptr[T any](v T) *T { return &v }

// authorizeParams are the native app's authorize request, checked.
type authorizeParams struct {
	redirect  *url.URL
	challenge string
	state     string
	device    string
}

// loopbackRedirect checks an RFC 8252 §7.3 redirect URI: http on the
// loopback IP literals 127.0.0.1 or [::1], any port, no user info or
// fragment. "localhost" is refused: it can resolve elsewhere.
func loopbackRedirect(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("redirect_uri is not a URL")
	}
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.RawFragment != "" || u.Opaque != "" {
		return nil, errors.New("redirect_uri must be http://127.0.0.1:<port>/… or http://[::1]:<port>/… (RFC 8252 loopback redirect)")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || host != "127.0.0.1" && host != "::1" {
		return nil, fmt.Errorf("redirect_uri host %q is not the loopback IP literal 127.0.0.1 or [::1]", host)
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return nil, errors.New("redirect_uri port is not a port number")
		}
	}
	return u, nil
}

func parsePort(p string) (int, error) {
	n := 0
	if len(p) > 5 {
		return 0, errors.New("too long")
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// pkceValue checks an RFC 7636 code_verifier or S256 code_challenge: 43 to
// 128 characters of [A-Za-z0-9-._~].
func pkceValue(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// pkceMatches compares S256(verifier) with the challenge in constant time.
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// handleAuthorize starts a login: it checks the native app's request and
// sends the browser to the tenant's IdP with a signed AuthnRequest.
func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	t, err := s.lookupTenant(r)
	if err != nil {
		errorPage(w, http.StatusNotFound, "Unknown organisation", "This sign-in link names an organisation Vigie does not know. Ask your IT team for the right address.")
		return
	}
	q := r.URL.Query()
	redirect, err := loopbackRedirect(q.Get("redirect_uri"))
	if err != nil {
		// RFC 6749 §4.1.2.1: never redirect to an unchecked URI.
		errorPage(w, http.StatusBadRequest, "Invalid sign-in request", err.Error())
		return
	}
	fail := func(code, desc string) {
		s.audit(r.Context(), t.ID, "anonymous", "login.refused", "", map[string]string{"error": code, "reason": desc})
		redirectError(w, r, redirect, code, desc, q.Get("state"), s.issuer(t.ID))
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case q.Get("client_id") != ClientID:
		fail("unauthorized_client", "unknown client_id")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case !pkceValue(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
		return
	case q.Get("state") == "" || len(q.Get("state")) > 512:
		fail("invalid_request", "state is required (at most 512 characters)")
		return
	case len(q.Get("device")) > 128:
		fail("invalid_request", "device is too long")
		return
	}
	sp, err := s.serviceProvider(t)
	if err != nil || sp.IDPMetadata == nil {
		s.log.Error("auth: authorize without a usable IdP", "tenant", t.ID, "err", err)
		fail("temporarily_unavailable", "the organisation's identity provider is not configured")
		return
	}
	idpURL := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if idpURL == "" {
		idpURL = sp.GetSSOBindingLocation(saml.HTTPPostBinding)
	}
	req, err := sp.MakeAuthenticationRequest(idpURL, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		s.log.Error("auth: making AuthnRequest", "tenant", t.ID, "err", err)
		fail("server_error", "could not start the sign-in")
		return
	}
	now := s.now()
	ar := &store.AuthRequest{Tenant: t.ID, ID: req.ID, RedirectURI: redirect.String(), CodeChallenge: q.Get("code_challenge"),
		State: q.Get("state"), Device: q.Get("device"), CreatedAt: now, ExpiresAt: now.Add(AuthRequestTTL)}
	if err := s.st.PutAuthRequest(r.Context(), ar); err != nil {
		s.log.Error("auth: storing auth request", "tenant", t.ID, "err", err)
		fail("server_error", "could not start the sign-in")
		return
	}
	to, err := req.Redirect(req.ID, sp)
	if err != nil {
		s.log.Error("auth: signing AuthnRequest", "tenant", t.ID, "err", err)
		fail("server_error", "could not start the sign-in")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// issuer is a tenant's OAuth issuer identifier.
func (s *Service) issuer(tenantID string) string { return s.tenantURL(tenantID, "") }

// redirectError sends an OAuth error back to the app (RFC 6749 §4.1.2.1),
// with iss (RFC 9207).
func redirectError(w http.ResponseWriter, r *http.Request, redirect *url.URL, code, desc, state, iss string) {
	u := *redirect
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", desc)
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", iss)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// handleACS receives the IdP's SAML response, checks it, maps the NameID to
// an active directory user, and sends the browser back to the app with a
// single-use code.
func (s *Service) handleACS(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.lookupTenant(r)
	if err != nil {
		errorPage(w, http.StatusNotFound, "Unknown organisation", "This sign-in answer names an organisation Vigie does not know.")
		return
	}
	refuse := func(status int, reason, title, msg string) {
		s.log.Warn("auth: SAML response refused", "tenant", t.ID, "reason", reason)
		s.audit(ctx, t.ID, "anonymous", "login.failure", "", map[string]string{"reason": reason})
		errorPage(w, status, title, msg)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "unreadable form: "+err.Error(), "Invalid sign-in answer", "The identity provider's answer could not be read.")
		return
	}
	if r.Form.Has("SAMLart") {
		// HTTP-POST only: crewjam would resolve an artifact with a
		// server-side call to the IdP, on behalf of anyone who posts one.
		refuse(http.StatusBadRequest, "SAML artifact binding is not supported", "Invalid sign-in answer", "The identity provider's answer could not be read.")
		return
	}
	now := s.now()
	ar, err := s.st.TakeAuthRequest(ctx, t.ID, r.PostForm.Get("RelayState"), now)
	if err != nil {
		refuse(http.StatusBadRequest, "no pending sign-in for RelayState: "+err.Error(), "Sign-in expired",
			"This sign-in was already used or took too long. Start again from the Vigie agent (or reload the page you wanted).")
		return
	}
	sp, err := s.serviceProvider(t)
	if err != nil || sp.IDPMetadata == nil {
		refuse(http.StatusServiceUnavailable, fmt.Sprint("no usable IdP: ", err), "Sign-in unavailable", "The organisation's identity provider is not configured.")
		return
	}
	assertion, err := sp.ParseResponse(r, []string{ar.ID})
	if err != nil {
		reason := err.Error()
		var ire *saml.InvalidResponseError
		if errors.As(err, &ire) && ire.PrivateErr != nil {
			reason = ire.PrivateErr.Error()
		}
		refuse(http.StatusForbidden, "invalid SAML response: "+reason, "Sign-in refused",
			"The identity provider's answer could not be verified. Try again; if it keeps failing, tell your IT team.")
		return
	}
	until := now.Add(time.Hour)
	if c := assertion.Conditions; c != nil && !c.NotOnOrAfter.IsZero() {
		until = c.NotOnOrAfter.Add(saml.MaxClockSkew)
	}
	switch err := s.st.SeeAssertion(ctx, t.ID, assertion.ID, until, now); {
	case errors.Is(err, store.ErrReplay):
		refuse(http.StatusForbidden, "assertion replayed: "+assertion.ID, "Sign-in refused", "This sign-in answer was already used.")
		return
	case err != nil:
		s.log.Error("auth: recording assertion", "tenant", t.ID, "err", err)
		errorPage(w, http.StatusServiceUnavailable, "Sign-in failed", "Something went wrong on our side. Try again.")
		return
	}
	if assertion.Subject == nil || assertion.Subject.NameID == nil || strings.TrimSpace(assertion.Subject.NameID.Value) == "" {
		refuse(http.StatusForbidden, "assertion without NameID", "Sign-in refused", "The identity provider did not say who you are.")
		return
	}
	nameID := strings.TrimSpace(assertion.Subject.NameID.Value)
	user, err := s.directoryUser(ctx, t, nameID, assertion)
	if err != nil {
		refuse(http.StatusForbidden, err.Error(), "Access not granted",
			"Your account is not enabled for Vigie. Ask your IT team to give you access.")
		return
	}
	code := secret.NewToken()
	ac := &store.AuthCode{Tenant: t.ID, Hash: secret.HashToken(code), UserID: user.ID, SessionID: secret.NewToken(),
		RedirectURI: ar.RedirectURI, CodeChallenge: ar.CodeChallenge, Device: ar.Device, ExpiresAt: now.Add(CodeTTL)}
	if err := s.st.PutAuthCode(ctx, ac); err != nil {
		s.log.Error("auth: storing code", "tenant", t.ID, "err", err)
		errorPage(w, http.StatusInternalServerError, "Sign-in failed", "Something went wrong on our side. Try again.")
		return
	}
	s.audit(ctx, t.ID, "user:"+user.ID, "login.success", user.ID, map[string]string{"name_id": nameID, "device": ar.Device})
	redirect, _ := url.Parse(ar.RedirectURI)
	q := redirect.Query()
	q.Set("code", code)
	q.Set("state", ar.State)
	q.Set("iss", s.issuer(t.ID))
	redirect.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// directoryUser maps a NameID to an active directory user; with
// just-in-time provisioning on, an unknown NameID becomes a new user.
func (s *Service) directoryUser(ctx context.Context, t *store.Tenant, nameID string, a *saml.Assertion) (*store.User, error) {
	u, err := s.st.UserByName(ctx, t.ID, nameID)
	if errors.Is(err, store.ErrNotFound) {
		st, serr := settings(t)
		if serr != nil {
			return nil, serr
		}
		if !st.JITProvisioning {
			return nil, fmt.Errorf("NameID %q is not in the directory", nameID)
		}
		now := s.now()
		u = &store.User{Tenant: t.ID, ID: newUUID(), UserName: nameID, DisplayName: nameID, Active: true,
			Attributes: []byte(`{}`), CreatedAt: now, UpdatedAt: now}
		if err := s.st.CreateUser(ctx, u); err != nil {
			return nil, fmt.Errorf("provisioning %q: %w", nameID, err)
		}
		s.audit(ctx, t.ID, "system", "user.jit_create", u.ID, map[string]string{"user_name": nameID})
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, fmt.Errorf("user %s (%q) is not active", u.ID, nameID)
	}
	return u, nil
}

func xmlUnmarshal(data []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	return d.Decode(v)
}

func readLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, fmt.Errorf("more than %d bytes", n)
	}
	return b, nil
}
