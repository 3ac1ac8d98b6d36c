package session

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigie/platform/platformtest"
	"vigie/platform/token"
)

// TestAgainstPlatform runs the whole login against the real platform (the
// demo, with its SAML IdP, on loopback): the browser signs in through the
// IdP's form and lands on the agent's loopback callback, which is served
// here by a real listener that says which OS user is calling.
func TestAgainstPlatform(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options{})

	// The loopback callback: asUser is the OS user the agent's socket
	// lookup would find; each callback URL seen is kept.
	var asUser atomic.Value
	var cbMu sync.Mutex
	var lastCallback string
	var m *Manager
	cbSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cbMu.Lock()
		lastCallback = "http://" + r.Host + r.URL.RequestURI()
		cbMu.Unlock()
		m.Callback(w, r, asUser.Load().(string))
	}))
	defer cbSrv.Close()

	var skew atomic.Int64 // the agent's clock, moved to reach a refresh
	refreshed := make(chan error, 1)
	var err error
	dir := t.TempDir()
	m, err = New(Options{PlatformURL: p.BaseURL, Tenant: p.Tenant, Device: "laptop-7", RedirectURL: cbSrv.URL + "/callback",
		StateDir: filepath.Join(dir, "state"), KeyFile: filepath.Join(dir, "key"),
		Now:    func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	m.onRefresh = func(_ string, err error) { refreshed <- err }
	stop := runManager(t, m)
	defer stop()

	verify := jwksVerifier(t, p)
	signIn := func(osUser, login, password string, wantStatus int) string {
		t.Helper()
		au, err := m.BeginLogin(osUser)
		if err != nil {
			t.Fatal(err)
		}
		resp, page, err := platformtest.NewBrowser().SignIn(au, login, password)
		if err != nil {
			t.Fatalf("sign-in of %s: %v", login, err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("sign-in of %s as %s: %d, want %d\n%s", login, osUser, resp.StatusCode, wantStatus, page)
		}
		return page
	}
	claimsOf := func(osUser string) *token.Claims {
		t.Helper()
		tok, err := m.Token(osUser)
		if err != nil {
			t.Fatalf("Token(%s): %v", osUser, err)
		}
		c, err := verify.Verify(tok)
		if err != nil {
			t.Fatalf("Token(%s) does not verify with the tenant's JWKS: %v", osUser, err)
		}
		return c
	}

	// alice signs in as OS user 1000, but the callback comes from a socket
	// of OS user 1001 (who has a login of their own pending): refused.
	m.BeginLogin("1001")
	asUser.Store("1001")
	if page := signIn("1000", "alice", "alice-demo-pw", http.StatusBadRequest); !strings.Contains(page, "does not match a sign-in started for you") {
		t.Errorf("stranger's callback page:\n%s", page)
	}
	if _, err := m.Token("1001"); err != ErrNeedsLogin {
		t.Errorf("1001 after a stranger's callback: %v", err)
	}
	// The same answer from 1000's own socket completes 1000's login: the
	// refusal consumed neither the pending login nor the code.
	asUser.Store("1000")
	cbMu.Lock()
	replay := lastCallback
	cbMu.Unlock()
	resp, err := http.Get(replay)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "You are signed in") {
		t.Fatalf("1000's callback: %d\n%s", resp.StatusCode, body)
	}
	alice := claimsOf("1000")
	if alice.Subject != "demo-alice" || alice.Device != "laptop-7" || alice.Tenant != p.Tenant {
		t.Errorf("1000's token: %+v", alice)
	}

	// bob signs in as 1001 with 1001's pending login.
	asUser.Store("1001")
	signIn("1001", "bob", "bob-demo-pw", http.StatusOK)
	bob := claimsOf("1001")
	if bob.Subject != "demo-bob" || bob.SID == alice.SID {
		t.Errorf("1001's token: %+v", bob)
	}
	if a, _ := m.Token("1000"); a == mustToken(t, m, "1001") {
		t.Error("1000 and 1001 have the same token")
	}
	if _, err := m.Token("1002"); err != ErrNeedsLogin {
		t.Errorf("Token(1002): %v, want ErrNeedsLogin", err)
	}

	// A refresh through the real token endpoint: move the agent's clock
	// past the refresh time; Token wakes the refresher.
	before := mustToken(t, m, "1000")
	skew.Store(int64(12 * time.Minute))
	m.Token("1000")
	if err := <-refreshed; err != nil {
		t.Fatalf("refresh at the platform: %v", err)
	}
	if err := <-refreshed; err != nil { // 1001's, due as well
		t.Fatalf("refresh at the platform: %v", err)
	}
	after := claimsOf("1000")
	if tok := mustToken(t, m, "1000"); tok == before || after.SID != alice.SID || after.Subject != "demo-alice" {
		t.Errorf("after refresh: same token or another session: %+v", after)
	}

	// Logout revokes at the platform: the refresh token stops working.
	m.mu.Lock()
	refresh := m.users["1000"].tok.refresh
	m.mu.Unlock()
	if err := m.Logout(t.Context(), "1000"); err != nil {
		t.Fatalf("logout: %v", err)
	}
	_, status, err := p.PostToken(url.Values{"grant_type": {"refresh_token"}, "client_id": {ClientID}, "refresh_token": {refresh}, "device": {"laptop-7"}})
	var te *platformtest.TokenError
	if status != http.StatusBadRequest || !errors.As(err, &te) || te.Code != "invalid_grant" {
		t.Errorf("refresh after logout: %d %v, want invalid_grant", status, err)
	}
	if _, err := m.Token("1000"); err != ErrNeedsLogin {
		t.Errorf("Token(1000) after logout: %v", err)
	}
	if c := claimsOf("1001"); c.Subject != "demo-bob" {
		t.Errorf("1001 after 1000's logout: %+v", c)
	}

	// Signing in again goes through the IdP again (a new browser: no IdP
	// cookie), and works.
	asUser.Store("1000")
	signIn("1000", "alice", "alice-demo-pw", http.StatusOK)
	if c := claimsOf("1000"); c.SID == alice.SID {
		t.Error("new login, same session")
	}
}

func mustToken(t *testing.T, m *Manager, osUser string) string {
	t.Helper()
	tok, err := m.Token(osUser)
	if err != nil {
		t.Fatalf("Token(%s): %v", osUser, err)
	}
	return tok
}

// jwksVerifier checks access tokens with the tenant's published keys, as a
// gateway does.
func jwksVerifier(t *testing.T, p *platformtest.Platform) *token.Verifier {
	resp, err := http.Get(p.URL("/.well-known/jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	keys, err := token.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &token.Verifier{Issuer: token.IssuerURL(p.BaseURL, p.Tenant), Audience: token.Audience(p.BaseURL, p.Tenant),
		Key: func(kid string) (ed25519.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
}
