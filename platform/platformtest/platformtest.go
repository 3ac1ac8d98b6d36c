// Package platformtest starts the whole platform inside a test: the demo
// (SQLite or a given store, the demo tenant, the in-process SAML IdP with
// its two users) on a real loopback port, and a browser that signs in the
// way a person's does (cookies, the IdP's login form, the auto-posted SAML
// response) through to the agent's loopback callback. Tests of the
// platform, the gateway and the agent build on it.
package platformtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"vigie/platform/auth"
	"vigie/platform/demo"
	"vigie/platform/server"
	"vigie/platform/store"
)

// Options of Start.
type Options struct {
	Store store.Store      // default: SQLite in a temporary folder
	Now   func() time.Time // default time.Now
	Log   io.Writer        // platform log; default discarded
	// Server passes options to the platform: the gateway's origin roots
	// and dialer.
	Server server.Options
}

// Platform is a running platform.
type Platform struct {
	*demo.Demo
	Tenant string
}

// Start runs the demo platform until the test ends.
func Start(t testing.TB, o Options) *Platform {
	t.Helper()
	if o.Log == nil {
		o.Log = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *demo.Demo, 1)
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{Dir: t.TempDir(), Listen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", Store: o.Store, Now: o.Now, Server: o.Server,
			Logger: slog.New(slog.NewTextHandler(o.Log, nil)), Ready: func(d *demo.Demo) { ready <- d }})
	}()
	select {
	case d := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("platform: %v", err)
			}
		})
		return &Platform{Demo: d, Tenant: demo.TenantID}
	case err := <-done:
		cancel()
		t.Fatalf("platform did not start: %v", err)
		return nil
	}
}

// URL is the tenant's URL for path (for example "/oauth/token").
func (p *Platform) URL(path string) string { return p.BaseURL + "/t/" + p.Tenant + path }

// PKCE returns a fresh code verifier and its S256 challenge.
func PKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// Browser is a person's browser: it keeps cookies and follows redirects.
type Browser struct {
	Client *http.Client
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// Callback is the agent's loopback callback: a real listener on 127.0.0.1
// that records the query it is called with.
type Callback struct {
	URL   string
	Query chan url.Values
	srv   *http.Server
}

// NewCallback listens on 127.0.0.1 on a free port until the test ends.
func NewCallback(t testing.TB) *Callback {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Callback{URL: "http://" + ln.Addr().String() + "/callback", Query: make(chan url.Values, 4)}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.Query <- r.URL.Query()
		io.WriteString(w, "You can close this window.")
	})}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
	return c
}

// AuthorizeURL builds the agent's authorize request; extra overrides or
// adds parameters (an empty value removes one).
func (p *Platform) AuthorizeURL(redirectURI, challenge, state string, extra url.Values) string {
	q := url.Values{"response_type": {"code"}, "client_id": {auth.ClientID}, "redirect_uri": {redirectURI},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {state}}
	for k, v := range extra {
		if len(v) == 0 || v[0] == "" {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	return p.URL("/oauth/authorize?" + q.Encode())
}

// SignIn walks a browser from authorizeURL to wherever the platform sends
// it at the end: the IdP's login form is filled with login and password
// when it appears (not when the IdP session cookie is still there). It
// returns the last response, which for a successful login is the
// callback's.
func (b *Browser) SignIn(authorizeURL, login, password string) (*http.Response, string, error) {
	resp, err := b.Client.Get(authorizeURL)
	for step := 0; err == nil && step < 5; step++ {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			return nil, "", rerr
		}
		f, ok := findForm(string(body))
		if !ok {
			return resp, string(body), nil
		}
		action, aerr := resp.Request.URL.Parse(f.action)
		if aerr != nil {
			return nil, "", aerr
		}
		if _, isLogin := f.fields["password"]; isLogin {
			f.fields.Set("user", login)
			f.fields.Set("password", password)
		}
		resp, err = b.Client.PostForm(action.String(), f.fields)
	}
	if err != nil {
		return nil, "", err
	}
	return resp, "", fmt.Errorf("platformtest: sign-in did not finish")
}

type form struct {
	action string
	fields url.Values
}

// findForm returns the first form of a page with its inputs.
func findForm(page string) (form, bool) {
	z := html.NewTokenizer(strings.NewReader(page))
	var f form
	found := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return f, found
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Key == name {
						return a.Val
					}
				}
				return ""
			}
			switch tok.Data {
			case "form":
				if found {
					return f, true
				}
				f, found = form{action: attr("action"), fields: url.Values{}}, true
			case "input":
				if found && attr("name") != "" && attr("type") != "submit" {
					f.fields.Set(attr("name"), attr("value"))
				}
			}
		}
	}
}

// Login signs a demo user in from scratch (new browser) and returns the
// tokens, as the agent would get them.
func (p *Platform) Login(t testing.TB, login, password, device string) *auth.TokenResponse {
	t.Helper()
	cb := NewCallback(t)
	verifier, challenge := PKCE()
	extra := url.Values{}
	if device != "" {
		extra.Set("device", device)
	}
	_, page, err := NewBrowser().SignIn(p.AuthorizeURL(cb.URL, challenge, "st4te", extra), login, password)
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	var q url.Values
	select {
	case q = <-cb.Query:
	default:
		t.Fatalf("sign-in did not reach the callback; last page:\n%s", page)
	}
	if q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("callback query %v", q)
	}
	tr, status, err := p.Exchange(q.Get("code"), verifier, cb.URL, device)
	if err != nil || status != http.StatusOK {
		t.Fatalf("code exchange: %d %v", status, err)
	}
	return tr
}

// TokenError is an OAuth error response.
type TokenError struct {
	Code string `json:"error"`
	Desc string `json:"error_description"`
}

func (e *TokenError) Error() string { return e.Code + ": " + e.Desc }

// PostToken posts a form to the token endpoint.
func (p *Platform) PostToken(form url.Values) (*auth.TokenResponse, int, error) {
	resp, err := http.PostForm(p.URL("/oauth/token"), form)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var te TokenError
		json.NewDecoder(resp.Body).Decode(&te)
		return nil, resp.StatusCode, &te
	}
	var tr auth.TokenResponse
	return &tr, resp.StatusCode, json.NewDecoder(resp.Body).Decode(&tr)
}

// Exchange trades a code for tokens.
func (p *Platform) Exchange(code, verifier, redirectURI, device string) (*auth.TokenResponse, int, error) {
	f := url.Values{"grant_type": {"authorization_code"}, "client_id": {auth.ClientID}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {redirectURI}}
	if device != "" {
		f.Set("device", device)
	}
	return p.PostToken(f)
}

// Refresh spends a refresh token.
func (p *Platform) Refresh(refresh string) (*auth.TokenResponse, int, error) {
	return p.PostToken(url.Values{"grant_type": {"refresh_token"}, "client_id": {auth.ClientID}, "refresh_token": {refresh}})
}
