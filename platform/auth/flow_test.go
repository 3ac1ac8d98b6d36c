package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigie/platform/auth"
	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/store"
	"vigie/platform/store/storetest"
	"vigie/platform/token"
)

// clock is the platform's clock in these tests: real time plus an offset
// the test moves (SAML messages keep real time, as the IdP does).
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func startPlatform(t *testing.T, st store.Store) (*platformtest.Platform, *clock) {
	c := &clock{}
	return platformtest.Start(t, platformtest.Options{Store: st, Now: c.Now}), c
}

// verifier checks the platform's access tokens with its published JWKS.
func verifier(t *testing.T, p *platformtest.Platform, now func() time.Time) *token.Verifier {
	resp, err := http.Get(p.URL("/.well-known/jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	keys, err := token.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &token.Verifier{Issuer: token.IssuerURL(p.BaseURL, p.Tenant), Audience: token.Audience(p.BaseURL, p.Tenant), Now: now,
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
}

// TestLoginToRevocation is the whole identity path in one process, on both
// stores: the in-process IdP signs in alice, the SP turns it into a code,
// the code into tokens; refresh rotates; a spent refresh token presented
// again kills the session; SCIM deactivates bob, whose refresh then fails,
// and the revocation feed shows it.
func TestLoginToRevocation(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{"sqlite": storetest.SQLite, "postgres": storetest.Postgres} {
		t.Run(name, func(t *testing.T) {
			p, clk := startPlatform(t, open(t))
			alice := demo.Users[0]
			tr := p.Login(t, alice.Login, alice.Password, "device-1")
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 900 || tr.RefreshExpiresIn < 7*24*3600-5 {
				t.Fatalf("token response %+v", tr)
			}
			v := verifier(t, p, clk.Now)
			c, err := v.Verify(tr.AccessToken)
			if err != nil {
				t.Fatalf("access token: %v", err)
			}
			if c.Subject != "demo-alice" || c.Tenant != "demo" || c.Device != "device-1" || c.SID == "" || strings.Join(c.Groups, ",") != "staff" {
				t.Fatalf("claims %+v", c)
			}

			// Refresh rotates: a new pair, the same session.
			clk.Advance(10 * time.Minute)
			tr2, status, err := p.Refresh(tr.RefreshToken)
			if err != nil || status != http.StatusOK || tr2.RefreshToken == tr.RefreshToken {
				t.Fatalf("refresh: %d %v", status, err)
			}
			c2, err := v.Verify(tr2.AccessToken)
			if err != nil || c2.SID != c.SID || c2.ID == c.ID {
				t.Fatalf("refreshed token: %+v %v", c2, err)
			}

			// The first refresh token again: reuse. The whole session ends, so
			// the second one fails too.
			if _, status, err := p.Refresh(tr.RefreshToken); status != http.StatusBadRequest || !strings.Contains(err.Error(), "invalid_grant") {
				t.Fatalf("reused refresh token: %d %v", status, err)
			}
			if _, status, _ := p.Refresh(tr2.RefreshToken); status != http.StatusBadRequest {
				t.Fatalf("refresh after reuse detection: %d, want 400", status)
			}
			ctx := context.Background()
			sess, err := p.Server.Store.Session(ctx, p.Tenant, c.SID)
			if err != nil || sess.RevokedAt.IsZero() {
				t.Fatalf("session after reuse: %+v %v", sess, err)
			}

			// SCIM deactivates bob: his refresh fails at once.
			bob := demo.Users[1]
			tb := p.Login(t, bob.Login, bob.Password, "")
			cb, _ := v.Verify(tb.AccessToken)
			if strings.Join(cb.Groups, ",") != "contractors" {
				t.Fatalf("bob's groups %v", cb.Groups)
			}
			req, _ := http.NewRequest(http.MethodPatch, p.URL("/scim/v2/Users/demo-bob"), strings.NewReader(
				`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":false}]}`))
			req.Header.Set("Authorization", "Bearer "+p.SCIMToken)
			req.Header.Set("Content-Type", "application/scim+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode/100 != 2 {
				t.Fatalf("SCIM deactivate: %v %v", resp, err)
			}
			resp.Body.Close()
			if _, status, err := p.Refresh(tb.RefreshToken); status != http.StatusBadRequest {
				t.Fatalf("bob's refresh after deactivation: %d %v", status, err)
			}

			// The feed tells gateways: alice's session (reuse) and bob (user).
			freq, _ := http.NewRequest(http.MethodGet, p.BaseURL+"/api/v1/revocations?after=0", nil)
			freq.Header.Set("Authorization", "Bearer "+p.FeedToken)
			fresp, err := http.DefaultClient.Do(freq)
			if err != nil {
				t.Fatal(err)
			}
			var feed struct {
				Events []struct{ Kind, Subject, Tenant string }
				Next   int64
			}
			json.NewDecoder(fresp.Body).Decode(&feed)
			fresp.Body.Close()
			var seen []string
			for _, e := range feed.Events {
				seen = append(seen, e.Kind+":"+e.Subject)
			}
			got := strings.Join(seen, " ")
			if !strings.Contains(got, "session:"+c.SID) || !strings.Contains(got, "user:demo-bob") || feed.Next == 0 {
				t.Fatalf("feed events %q (next %d)", got, feed.Next)
			}
		})
	}
}

// TestGroupChangeReachesNextRefresh: claims are recomputed at every refresh.
func TestGroupChangeReachesNextRefresh(t *testing.T) {
	p, _ := startPlatform(t, nil)
	alice := demo.Users[0]
	tr := p.Login(t, alice.Login, alice.Password, "")
	ctx := context.Background()
	g, err := p.Server.Store.Group(ctx, p.Tenant, "demo-contractors")
	if err != nil {
		t.Fatal(err)
	}
	g.Members = append(g.Members, "demo-alice")
	if err := p.Server.Store.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	tr2, _, err := p.Refresh(tr.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := verifier(t, p, time.Now).Verify(tr2.AccessToken)
	if strings.Join(c.Groups, ",") != "contractors,staff" {
		t.Fatalf("groups after refresh: %v", c.Groups)
	}
}

func TestSessionLifetime(t *testing.T) {
	p, clk := startPlatform(t, nil)
	alice := demo.Users[0]
	tr := p.Login(t, alice.Login, alice.Password, "")
	// Refresh every 10 hours for 160 hours: each access token ends with the
	// session at the latest.
	for elapsed := 10 * time.Hour; elapsed <= 160*time.Hour; elapsed += 10 * time.Hour {
		clk.Advance(10 * time.Hour)
		next, status, err := p.Refresh(tr.RefreshToken)
		if err != nil {
			t.Fatalf("refresh at +%v: %d %v", elapsed, status, err)
		}
		if left := 168*time.Hour - elapsed; time.Duration(next.RefreshExpiresIn)*time.Second > left {
			t.Fatalf("at +%v the session claims %ds left, want at most %v", elapsed, next.RefreshExpiresIn, left)
		}
		tr = next
	}
	clk.Advance(9 * time.Hour) // 169 h: past the 7-day absolute lifetime
	if _, status, err := p.Refresh(tr.RefreshToken); status != http.StatusBadRequest || !strings.Contains(err.Error(), "maximum lifetime") {
		t.Fatalf("refresh after 7 days: %d %v", status, err)
	}
}

func TestCodeExchangeAttacks(t *testing.T) {
	p, clk := startPlatform(t, nil)
	alice := demo.Users[0]
	signIn := func(device string) (code, verifier, redirect string) {
		cb := platformtest.NewCallback(t)
		verifier, challenge := platformtest.PKCE()
		extra := url.Values{}
		if device != "" {
			extra.Set("device", device)
		}
		if _, page, err := platformtest.NewBrowser().SignIn(p.AuthorizeURL(cb.URL, challenge, "s", extra), alice.Login, alice.Password); err != nil {
			t.Fatalf("sign-in: %v %s", err, page)
		}
		select {
		case q := <-cb.Query:
			return q.Get("code"), verifier, cb.URL
		default:
			t.Fatal("sign-in did not reach the callback")
			return
		}
	}
	code, verifier, redirect := signIn("")
	otherVerifier, _ := platformtest.PKCE()
	// A wrong verifier spends the code: the right one cannot be tried after.
	if _, status, err := p.Exchange(code, otherVerifier, redirect, ""); status != 400 || !strings.Contains(err.Error(), "code_verifier") {
		t.Fatalf("wrong verifier: %d %v", status, err)
	}
	if _, status, _ := p.Exchange(code, verifier, redirect, ""); status != 400 {
		t.Fatalf("code after a failed attempt: %d", status)
	}
	code, verifier, redirect = signIn("")
	for name, form := range map[string][2]string{
		"missing verifier":    {"", redirect},
		"short verifier":      {"abc", redirect},
		"mismatched redirect": {verifier, strings.Replace(redirect, "/callback", "/other", 1)},
	} {
		if _, status, err := p.Exchange(code, form[0], form[1], ""); status != 400 {
			t.Errorf("%s: %d %v", name, status, err)
		}
	}
	code, verifier, redirect = signIn("laptop-7")
	if _, status, err := p.Exchange(code, verifier, redirect, "other-device"); status != 400 || !strings.Contains(err.Error(), "device") {
		t.Errorf("other device: %d %v", status, err)
	}
	// Reuse: the second exchange of a good code fails.
	code, verifier, redirect = signIn("")
	if _, status, err := p.Exchange(code, verifier, redirect, ""); status != 200 {
		t.Fatalf("exchange: %d %v", status, err)
	}
	if _, status, _ := p.Exchange(code, verifier, redirect, ""); status != 400 {
		t.Errorf("reused code: %d", status)
	}
	// Expiry: 61 seconds later the code is gone.
	code, verifier, redirect = signIn("")
	clk.Advance(auth.CodeTTL + time.Second)
	if _, status, _ := p.Exchange(code, verifier, redirect, ""); status != 400 {
		t.Errorf("expired code: %d", status)
	}
	// Unknown grant, client, garbage.
	for name, f := range map[string]url.Values{
		"no grant":        {"client_id": {auth.ClientID}},
		"unknown grant":   {"client_id": {auth.ClientID}, "grant_type": {"password"}},
		"unknown client":  {"client_id": {"evil"}, "grant_type": {"refresh_token"}, "refresh_token": {"x"}},
		"unknown refresh": {"client_id": {auth.ClientID}, "grant_type": {"refresh_token"}, "refresh_token": {"nope"}},
	} {
		if _, status, err := p.PostToken(f); status != 400 && status != 401 {
			t.Errorf("%s: %d %v", name, status, err)
		}
	}
}

func TestAuthorizeRefusesBadRequests(t *testing.T) {
	p, _ := startPlatform(t, nil)
	_, challenge := platformtest.PKCE()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Redirect URIs that are not loopback IP literals: an error page, never a redirect.
	for _, ru := range []string{"", "http://localhost:5000/cb", "https://127.0.0.1:5000/cb", "http://10.0.0.1:5000/cb",
		"http://evil.example/cb", "http://127.0.0.1.evil.example/cb", "http://user@127.0.0.1:5000/cb", "http://127.0.0.1:5000/cb#frag",
		"http://[::2]:5000/cb", "http://127.0.0.2:5000/cb", "custom.scheme:/cb", "http://127.0.0.1:99999/cb"} {
		resp := get(p.AuthorizeURL(ru, challenge, "s", nil))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %q: %d Location %q", ru, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// [::1] is fine.
	if resp := get(p.AuthorizeURL("http://[::1]:5000/cb", challenge, "s", nil)); resp.StatusCode != http.StatusFound ||
		!strings.Contains(resp.Header.Get("Location"), "/idp/sso") {
		t.Errorf("[::1] redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Other errors go back to the app, with state and iss.
	for name, extra := range map[string]url.Values{
		"plain PKCE":      {"code_challenge_method": {"plain"}},
		"no challenge":    {"code_challenge": {""}},
		"short challenge": {"code_challenge": {"abc"}},
		"no state":        {"state": {""}},
		"wrong client":    {"client_id": {"other"}},
		"token response":  {"response_type": {"token"}},
	} {
		resp := get(p.AuthorizeURL("http://127.0.0.1:5000/cb", challenge, "s", extra))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Host != "127.0.0.1:5000" || loc.Query().Get("error") == "" ||
			loc.Query().Get("iss") != p.URL("") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, loc)
		}
	}
	if resp := get(p.BaseURL + "/t/nope/oauth/authorize"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown tenant: %d", resp.StatusCode)
	}
}

func TestInactiveOrUnknownUserCannotSignIn(t *testing.T) {
	p, _ := startPlatform(t, nil)
	ctx := context.Background()
	u, _ := p.Server.Store.User(ctx, p.Tenant, "demo-bob")
	u.Active = false
	if err := p.Server.Store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	cb := platformtest.NewCallback(t)
	_, challenge := platformtest.PKCE()
	resp, page, err := platformtest.NewBrowser().SignIn(p.AuthorizeURL(cb.URL, challenge, "s", nil), demo.Users[1].Login, demo.Users[1].Password)
	if err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "not enabled for Vigie") {
		t.Fatalf("inactive user: %v %v %s", resp.StatusCode, err, page)
	}
	// A user the IdP knows but the directory does not (JIT off by default).
	if err := p.IdP.AddUser("carol", "carol@demo.example", "carol-pw", nil); err != nil {
		t.Fatal(err)
	}
	resp, _, _ = platformtest.NewBrowser().SignIn(p.AuthorizeURL(cb.URL, challenge, "s", nil), "carol", "carol-pw")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unknown user: %d", resp.StatusCode)
	}
}

func TestMetadataEndpoints(t *testing.T) {
	p, _ := startPlatform(t, nil)
	for _, u := range []string{p.BaseURL + "/.well-known/oauth-authorization-server/t/demo", p.URL("/.well-known/oauth-authorization-server")} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var md auth.ASMetadata
		json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if md.Issuer != p.URL("") || md.TokenEndpoint != p.URL("/oauth/token") || md.CodeChallengeMethodsSupported[0] != "S256" ||
			md.JWKSURI != p.URL("/.well-known/jwks.json") || md.RevocationEndpoint != p.URL("/oauth/revoke") {
			t.Errorf("%s: %+v", u, md)
		}
	}
	resp, err := http.Get(p.URL("/saml/metadata"))
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	resp.Body.Close()
	_ = body
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "samlmetadata") {
		t.Errorf("SAML metadata: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestRevokeEndpointLogsOut(t *testing.T) {
	p, clk := startPlatform(t, nil)
	tr := p.Login(t, demo.Users[0].Login, demo.Users[0].Password, "")
	revoke := func(tok string) int {
		resp, err := http.PostForm(p.URL("/oauth/revoke"), url.Values{"token": {tok}, "client_id": {auth.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := revoke(tr.RefreshToken); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if _, status, _ := p.Refresh(tr.RefreshToken); status != 400 {
		t.Fatalf("refresh after logout: %d", status)
	}
	if status := revoke("unknown-token"); status != 200 {
		t.Errorf("unknown token: %d, want 200 (RFC 7009 §2.2)", status)
	}
	// An access token revokes its session too.
	tr = p.Login(t, demo.Users[0].Login, demo.Users[0].Password, "")
	if status := revoke(tr.AccessToken); status != 200 {
		t.Fatal(status)
	}
	if _, status, _ := p.Refresh(tr.RefreshToken); status != 400 {
		t.Fatalf("refresh after access-token revocation: %d", status)
	}
	_ = clk
}

func TestTokenEndpointRateLimit(t *testing.T) {
	p, _ := startPlatform(t, nil)
	limited := 0
	for i := 0; i < 100; i++ {
		if _, status, _ := p.Refresh("nope"); status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("100 token requests at once were never limited")
	}
}
