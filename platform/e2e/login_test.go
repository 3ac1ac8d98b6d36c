//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigie/platform/config"
	"vigie/platform/platformtest"
	"vigie/platform/server"
	"vigie/platform/token"
)

const (
	tenantID = "e2e"
	clientID = "vigie-agent" // the agent: the platform's one OAuth client
)

// TestLoginWithSAMLIdP is the native-app login against an independent
// IdP. The operator creates a tenant, configures saml-idp from the
// tenant's SP metadata and the tenant from saml-idp's metadata; the
// provisioning client creates the person through SCIM; the person signs in
// at saml-idp in a browser; the agent gets the code on its loopback
// callback and exchanges it (PKCE) for tokens that verify against the
// tenant's JWKS; a refresh rotates them. SCIM deactivation then makes the
// next refresh fail and the next sign-in end at the platform's refusal.
func TestLoginWithSAMLIdP(t *testing.T) {
	p := startPlatform(t)
	person := idpUser{UserName: "ada.lovelace@e2e.example", Email: "ada.lovelace@e2e.example",
		FirstName: "Ada", LastName: "Lovelace", DisplayName: "Ada Lovelace"}

	// The operator: a tenant; the IdP learns the SP from its metadata, the
	// tenant learns the IdP from its metadata URL; a SCIM token.
	p.admin(t, http.MethodPost, "/api/v1/tenants", `{"id":"`+tenantID+`","name":"End to end"}`, http.StatusCreated, nil)
	sp := p.spMetadata(t)
	idp := startSAMLIdP(t, sp.ACS, sp.EntityID, person)
	var tv struct {
		IdP *struct {
			EntityID string `json:"entity_id"`
		} `json:"idp"`
	}
	p.admin(t, http.MethodPut, "/api/v1/tenants/"+tenantID+"/idp", jsonString(t, map[string]string{"metadata_url": idp.Metadata}), http.StatusOK, &tv)
	if tv.IdP == nil || tv.IdP.EntityID != idp.Issuer {
		t.Fatalf("tenant's IdP after PUT idp: %+v, want entity ID %s", tv.IdP, idp.Issuer)
	}
	var scimTok struct{ Token string }
	p.admin(t, http.MethodPost, "/api/v1/tenants/"+tenantID+"/scim-tokens", `{"name":"e2e"}`, http.StatusCreated, &scimTok)

	// The provisioning client: the person, whose userName is the NameID
	// saml-idp asserts, in a group.
	var user struct{ ID string }
	p.scim(t, scimTok.Token, http.MethodPost, "/Users", jsonString(t, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    person.UserName,
		"name":        map[string]string{"givenName": person.FirstName, "familyName": person.LastName},
		"displayName": person.DisplayName,
		"emails":      []map[string]any{{"value": person.Email, "type": "work", "primary": true}},
		"active":      true,
	}), http.StatusCreated, &user)
	p.scim(t, scimTok.Token, http.MethodPost, "/Groups", jsonString(t, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "e2e-staff",
		"members":     []map[string]string{{"value": user.ID}},
	}), http.StatusCreated, nil)

	// The agent: discovery, a loopback callback, PKCE.
	md := p.discover(t)
	cb := platformtest.NewCallback(t)
	verifier, challenge := platformtest.PKCE()
	const device = "e2e-device-1"
	state := rand.Text()
	authorize := md.AuthorizationEndpoint + "?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {cb.URL},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {state}, "device": {device},
	}.Encode()

	// The person, in a browser.
	b := newBrowser()
	last := signIn(t, b, authorize, idp, sp, person.UserName)
	var q url.Values
	select {
	case q = <-cb.Query:
	default:
		t.Fatalf("sign-in did not reach the agent's callback; the browser ended at %s", last)
	}
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("callback query %v: want a code", q)
	}
	if q.Get("state") != state {
		t.Fatalf("callback state %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != md.Issuer {
		t.Fatalf("callback iss %q, want the issuer %q (RFC 9207)", q.Get("iss"), md.Issuer)
	}

	// The agent exchanges the code; the tokens verify against the JWKS.
	tr, err := postToken(md.TokenEndpoint, url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID},
		"code": {q.Get("code")}, "redirect_uri": {cb.URL}, "code_verifier": {verifier}, "device": {device}})
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 || tr.RefreshToken == "" {
		t.Fatalf("token response %+v", tr)
	}
	v := p.verifier(t, md)
	c1, err := v.Verify(tr.AccessToken)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if c1.Subject != user.ID || c1.Tenant != tenantID || c1.Device != device || c1.SID == "" || !slices.Equal(c1.Groups, []string{"e2e-staff"}) {
		t.Fatalf("access token claims %+v; want sub %s (the SCIM user), tenant %s, device %s, a sid, groups [e2e-staff]",
			c1, user.ID, tenantID, device)
	}

	// A refresh rotates the pair within the same session.
	tr2, err := postToken(md.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID},
		"refresh_token": {tr.RefreshToken}, "device": {device}})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tr2.RefreshToken == "" || tr2.RefreshToken == tr.RefreshToken {
		t.Fatalf("refresh did not rotate the refresh token: %+v", tr2)
	}
	c2, err := v.Verify(tr2.AccessToken)
	if err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}
	if c2.SID != c1.SID || c2.Subject != c1.Subject || c2.ID == c1.ID {
		t.Fatalf("refreshed claims %+v; want the session %s and user %s with a new jti", c2, c1.SID, c1.Subject)
	}

	// The provisioning client deactivates the person: the next refresh
	// fails at once.
	p.scim(t, scimTok.Token, http.MethodPatch, "/Users/"+user.ID,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`,
		http.StatusOK, nil)
	_, err = postToken(md.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID},
		"refresh_token": {tr2.RefreshToken}, "device": {device}})
	var te *tokenError
	if !errors.As(err, &te) || te.status != http.StatusBadRequest || te.Code != "invalid_grant" {
		t.Fatalf("refresh after SCIM deactivation: %v; want 400 invalid_grant", err)
	}

	// Signing in again: saml-idp still vouches for the person, the
	// platform refuses them, and the agent's callback is not called.
	_, challenge = platformtest.PKCE()
	again := md.AuthorizationEndpoint + "?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {cb.URL},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {rand.Text()},
	}.Encode()
	last = signIn(t, b, again, idp, sp, person.UserName)
	select {
	case q := <-cb.Query:
		t.Fatalf("a deactivated person's sign-in reached the callback with %v", q)
	default:
	}
	if last.URL.String() != sp.ACS || last.Status != http.StatusForbidden {
		t.Fatalf("a deactivated person's sign-in ended at %s; want the platform's refusal (403 at the ACS)", last)
	}
}

// signIn walks the browser from the authorize URL through saml-idp's
// sign-in page (the person types their login in the NameID field and
// presses Sign in) and its auto-posting page to wherever the platform's
// ACS sends it, and returns that last page.
func signIn(t *testing.T, b *browser, authorize string, idp *samlIdP, sp *spMetadata, login string) *page {
	t.Helper()
	login1, err := b.open(authorize)
	if err != nil {
		t.Fatalf("opening the authorize URL: %v", err)
	}
	if login1.Status != http.StatusOK || !strings.HasPrefix(login1.URL.String(), idp.URL+"/") {
		t.Fatalf("authorize should lead to saml-idp's sign-in page; got %s", login1)
	}
	f, err := login1.postForm()
	if err != nil || f.Action.Path != "/signin" || !f.Fields.Has("userName") || !f.Fields.Has("_authnRequest") {
		t.Fatalf("saml-idp's sign-in form (POST /signin with userName and _authnRequest): %v %+v; page %s", err, f, login1)
	}
	// saml-idp carries the AuthnRequest it parsed in a hidden field; without
	// its ID the response would not answer the platform's request.
	var ar struct{ ID, AcsURL, RelayState string }
	raw, err := base64.StdEncoding.DecodeString(f.Fields.Get("_authnRequest"))
	if err != nil || json.Unmarshal(raw, &ar) != nil || ar.ID == "" || ar.RelayState == "" {
		t.Fatalf("saml-idp did not parse the platform's AuthnRequest: %q (%v)", raw, err)
	}
	if ar.AcsURL != sp.ACS {
		t.Fatalf("AuthnRequest's ACS URL %q, want the metadata's %q", ar.AcsURL, sp.ACS)
	}
	f.Fields.Set("userName", login)

	post, err := b.submit(f)
	if err != nil {
		t.Fatalf("submitting saml-idp's sign-in form: %v", err)
	}
	f, err = post.postForm()
	if err != nil || f.Action.String() != sp.ACS || f.Fields.Get("SAMLResponse") == "" || f.Fields.Get("RelayState") != ar.RelayState {
		t.Fatalf("saml-idp should answer with a page that posts SAMLResponse and RelayState %q to the ACS: %v %+v; page %s", ar.RelayState, err, f, post)
	}
	last, err := b.submit(f)
	if err != nil {
		t.Fatalf("posting the SAML response to the platform: %v", err)
	}
	return last
}

// platform is the platform running in this test process.
type platform struct {
	BaseURL    string
	adminToken string
	client     *http.Client
}

// startPlatform runs the platform as `platform serve` would (a YAML
// configuration file, SQLite, its own master key) on a free loopback port
// until the test ends. On failure the test log gets the platform's log.
func startPlatform(t *testing.T) *platform {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminToken, feedToken := rand.Text(), rand.Text()
	p := &platform{BaseURL: "http://" + ln.Addr().String(), adminToken: adminToken, client: &http.Client{Timeout: 30 * time.Second}}
	cfgFile := filepath.Join(dir, "platform.yaml")
	cfg := fmt.Sprintf("listen: %s\nbase_url: %s\ndatabase:\n  driver: sqlite\n  dsn: %s\nmaster_key_file: %s\nadmin_token_sha256: %s\nfeed_token_sha256: %s\n",
		strconv.Quote(ln.Addr().String()), strconv.Quote(p.BaseURL), strconv.Quote(filepath.Join(dir, "vigie.db")),
		strconv.Quote(filepath.Join(dir, "master.key")), sha256Hex(adminToken), sha256Hex(feedToken))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile)
	if err != nil {
		t.Fatalf("platform configuration: %v", err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, c, server.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		cancel()
		t.Fatalf("platform: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("platform: closing: %v", err)
		}
		if t.Failed() && logs.String() != "" {
			t.Logf("platform log:\n%s", logs)
		}
	})
	return p
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (p *platform) tenantURL(path string) string { return p.BaseURL + "/t/" + tenantID + path }

// call sends a JSON request (with a bearer token if not empty) and decodes the answer
// into out (if not nil); any status but want fails the test.
func (p *platform) call(t *testing.T, bearer, method, u, body, contentType string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, u, resp.Status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, u, raw, err)
		}
	}
}

// admin calls the admin API.
func (p *platform) admin(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	p.call(t, p.adminToken, method, p.BaseURL+path, body, "application/json", want, out)
}

// scim calls the tenant's SCIM API, as a provisioning client would.
func (p *platform) scim(t *testing.T, bearer, method, path, body string, want int, out any) {
	t.Helper()
	p.call(t, bearer, method, p.tenantURL("/scim/v2"+path), body, "application/scim+json", want, out)
}

// spMetadata is what an IdP administrator reads of the tenant's SAML SP
// metadata.
type spMetadata struct {
	EntityID string // the audience of assertions
	ACS      string // the HTTP-POST assertion consumer service
}

// spMetadata reads the tenant's SP metadata, where DESIGN.md says it is.
func (p *platform) spMetadata(t *testing.T) *spMetadata {
	t.Helper()
	u := p.tenantURL("/saml/metadata")
	resp, err := p.client.Get(u)
	if err != nil {
		t.Fatalf("SP metadata: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SP metadata %s: %s %v: %s", u, resp.Status, err, raw)
	}
	var md struct {
		EntityID string `xml:"entityID,attr"`
		SP       []struct {
			ACS []struct {
				Binding  string `xml:"Binding,attr"`
				Location string `xml:"Location,attr"`
			} `xml:"AssertionConsumerService"`
		} `xml:"SPSSODescriptor"`
	}
	if err := xml.Unmarshal(raw, &md); err != nil {
		t.Fatalf("SP metadata %s: %v: %s", u, err, raw)
	}
	sp := &spMetadata{EntityID: md.EntityID}
	for _, d := range md.SP {
		for _, acs := range d.ACS {
			if acs.Binding == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" && sp.ACS == "" {
				sp.ACS = acs.Location
			}
		}
	}
	if sp.EntityID == "" || sp.ACS == "" {
		t.Fatalf("SP metadata %s has no entityID or no HTTP-POST AssertionConsumerService: %s", u, raw)
	}
	return sp
}

// asMetadata is what the agent reads of RFC 8414 metadata.
type asMetadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// discover reads the tenant's authorization server metadata at the RFC
// 8414 location.
func (p *platform) discover(t *testing.T) *asMetadata {
	t.Helper()
	var md asMetadata
	p.call(t, "", http.MethodGet, p.BaseURL+"/.well-known/oauth-authorization-server/t/"+tenantID, "", "", http.StatusOK, &md)
	if md.Issuer != token.IssuerURL(p.BaseURL, tenantID) || md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" || md.JWKSURI == "" {
		t.Fatalf("authorization server metadata %+v", md)
	}
	for _, u := range []string{md.AuthorizationEndpoint, md.TokenEndpoint, md.JWKSURI} {
		if !strings.HasPrefix(u, md.Issuer+"/") {
			t.Fatalf("endpoint %s is outside the issuer %s", u, md.Issuer)
		}
	}
	return &md
}

// verifier checks access tokens with the keys the tenant publishes.
func (p *platform) verifier(t *testing.T, md *asMetadata) *token.Verifier {
	t.Helper()
	var raw json.RawMessage
	p.call(t, "", http.MethodGet, md.JWKSURI, "", "", http.StatusOK, &raw)
	keys, err := token.ParseJWKS(raw)
	if err != nil || len(keys) == 0 {
		t.Fatalf("tenant JWKS %s: %d keys, %v", raw, len(keys), err)
	}
	return &token.Verifier{Issuer: md.Issuer, Audience: token.Audience(p.BaseURL, tenantID),
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
}

// tokenResponse is the token endpoint's answer (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// tokenError is the token endpoint's error answer (RFC 6749 §5.2).
type tokenError struct {
	status int
	Code   string `json:"error"`
	Desc   string `json:"error_description"`
}

func (e *tokenError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.Code, e.Desc) }

// postToken posts a grant to the token endpoint, as the agent does.
func postToken(endpoint string, form url.Values) (*tokenResponse, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).PostForm(endpoint, form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		te := &tokenError{status: resp.StatusCode}
		if err := json.Unmarshal(raw, te); err != nil {
			return nil, fmt.Errorf("%s: %s", resp.Status, raw)
		}
		return nil, te
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", raw, err)
	}
	return &tr, nil
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
