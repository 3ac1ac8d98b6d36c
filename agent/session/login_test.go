package session

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// clock is a settable clock for tests outside a bubble.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.now.Store(t0.UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func TestBeginLogin(t *testing.T) {
	f := newFakePlatform()
	clk := newClock()
	o := testOptions(t, f, t.TempDir())
	o.Now = clk.Now
	var mu sync.Mutex
	var opened []string
	o.OpenBrowser = func(user, u string) error {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, user+" "+u)
		return errors.New("no tray for this user") // logged, not fatal
	}
	m := newTestManager(t, o)

	first, err := m.BeginLogin("1000")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(first)
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != f.issuer()+"/oauth/authorize" || q.Get("response_type") != "code" || q.Get("client_id") != "vigie-agent" ||
		q.Get("redirect_uri") != testRedirect || q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
		len(q.Get("state")) < 32 || q.Get("device") != "dev-1" {
		t.Errorf("authorize URL %s", first)
	}
	// The proxy asks again and again: the same login, the browser opened once.
	clk.Advance(9 * time.Minute)
	if again, _ := m.BeginLoginReturn("1000", "https://intranet.example/page?x=1"); again != first {
		t.Errorf("second BeginLogin started another login")
	}
	clk.Advance(9 * time.Minute) // 10 minutes after it was last handed out: still pending
	if again, _ := m.BeginLogin("1000"); again != first {
		t.Errorf("pending login forgotten 9 minutes after it was last handed out")
	}
	if other, _ := m.BeginLogin("1001"); other == first {
		t.Error("two users share a login")
	}
	if len(opened) != 2 || !strings.HasPrefix(opened[0], "1000 ") || !strings.HasPrefix(opened[1], "1001 ") {
		t.Errorf("OpenBrowser calls: %q", opened)
	}
	clk.Advance(LoginTTL)
	fresh, _ := m.BeginLogin("1000")
	if fresh == first {
		t.Error("login still pending LoginTTL after it was last handed out")
	}
	// Never longer than LoginMaxAge, however often it is asked for.
	for range 7 {
		clk.Advance(9 * time.Minute)
		m.BeginLogin("1000")
	}
	if again, _ := m.BeginLogin("1000"); again == fresh {
		t.Error("login pending after LoginMaxAge")
	}

	for _, bad := range []string{"javascript:alert(1)", "file:///etc/passwd", "//evil.example/", "https://"} {
		if _, err := m.BeginLoginReturn("1000", bad); err == nil {
			t.Errorf("return URL %q accepted", bad)
		}
	}
	if _, err := m.BeginLogin(""); err == nil {
		t.Error("login for no user")
	}
}

func TestCallback(t *testing.T) {
	f := newFakePlatform()
	dir := t.TempDir()
	m := newTestManager(t, testOptions(t, f, dir))

	// 1001 has a login of its own pending; a callback carrying 1000's
	// state reaches the agent from a socket of 1001.
	m.BeginLogin("1001")
	au, _ := m.BeginLoginReturn("1000", "https://intranet.example/page?a=1&b=2")
	cb := f.authorize(t, au, "alice")
	for _, stranger := range []string{"1001", "1002", ""} {
		rec := callback(m, cb, stranger)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "does not match a sign-in started for you") {
			t.Errorf("callback as %q: %d %s", stranger, rec.Code, rec.Body)
		}
	}
	if _, err := m.Token("1001"); err != ErrNeedsLogin {
		t.Errorf("stranger got tokens: %v", err)
	}
	// Refused callbacks consumed nothing: neither the code nor the login.
	rec := callback(m, cb, "1000")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "You are signed in") ||
		!strings.Contains(body, `<meta http-equiv="refresh" content="1; url=https://intranet.example/page?a=1&amp;b=2">`) {
		t.Errorf("callback as 1000: %d %s", rec.Code, body)
	}
	for h, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if got := rec.Header().Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if _, err := m.Token("1000"); err != nil {
		t.Errorf("Token after sign-in: %v", err)
	}
	if st := m.Status(); len(st) != 2 || !st[1].LoginPending || st[1].LoggedIn {
		t.Errorf("status: %+v", st)
	}
	// A second tab finishing the same login: told it is signed in.
	if rec := callback(m, cb, "1000"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "signed in") {
		t.Errorf("second tab: %d %s", rec.Code, rec.Body)
	}

	try := func(name, osUser string, edit func(q url.Values), wantStatus int, wantText string) {
		t.Helper()
		au, _ := m.BeginLogin(osUser)
		u, _ := url.Parse(f.authorize(t, au, "bob"))
		q := u.Query()
		edit(q)
		u.RawQuery = q.Encode()
		rec := callback(m, u.String(), osUser)
		if rec.Code != wantStatus || !strings.Contains(rec.Body.String(), wantText) {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
		// Whatever happened, that login is over.
		if rec := callback(m, u.String(), osUser); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: login usable after it failed: %d", name, rec.Code)
		}
	}
	try("error from the platform", "1001", func(q url.Values) {
		q.Del("code")
		q.Set("error", "access_denied")
		q.Set("error_description", "Your account is not enabled for Vigie")
	}, http.StatusBadRequest, "Your account is not enabled for Vigie")
	try("another issuer", "1001", func(q url.Values) { q.Set("iss", "https://evil.example/t/demo") }, http.StatusBadRequest, "did not come from")
	try("no issuer", "1001", func(q url.Values) { q.Del("iss") }, http.StatusBadRequest, "did not come from")
	try("no code", "1001", func(q url.Values) { q.Del("code") }, http.StatusBadRequest, "incomplete")
	try("unknown code", "1001", func(q url.Values) { q.Set("code", "made-up") }, http.StatusBadRequest, "refused this sign-in")
	f.setFault(func(*http.Request, url.Values) (int, error) { return http.StatusServiceUnavailable, nil })
	try("platform down", "1001", func(url.Values) {}, http.StatusBadGateway, "could not finish the sign-in")
	f.setFault(nil)
	if st := m.Status(); !strings.Contains(st[1].LastError, "code exchange") {
		t.Errorf("status after failed logins: %+v", st[1])
	}
	if _, err := m.Token("1001"); err != ErrNeedsLogin {
		t.Errorf("1001 after failed logins: %v", err)
	}

	if rec := callback(m, cb, "1000"); rec.Code != http.StatusOK {
		t.Errorf("replay of a finished login: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	m.Callback(rec, httptest.NewRequest(http.MethodPost, cb, nil), "1000")
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}

	// Signing in again replaces the session, and ends the old one.
	old, _ := m.Token("1000")
	login(t, m, f, "1000", "alice")
	if now, _ := m.Token("1000"); now == old {
		t.Error("same token after a new login")
	}
	if s := f.Stats("alice"); s.revokes != 1 {
		t.Errorf("old session revoked %d times, want 1", s.revokes)
	}
}

func TestLogout(t *testing.T) {
	f := newFakePlatform()
	o := testOptions(t, f, t.TempDir())
	m := newTestManager(t, o)
	login(t, m, f, "1000", "alice")
	login(t, m, f, "1001", "bob")
	refresh := m.users["1000"].tok.refresh
	if err := m.Logout(t.Context(), "1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Token("1000"); err != ErrNeedsLogin {
		t.Errorf("Token after logout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.StateDir, fileName("1000"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after logout: %v", err)
	}
	if status, v := f.token(url.Values{"client_id": {ClientID}, "grant_type": {"refresh_token"}, "refresh_token": {refresh}, "device": {"dev-1"}}); status != 400 ||
		v.(map[string]string)["error"] != "invalid_grant" {
		t.Errorf("refresh after logout: %d %v", status, v)
	}
	if _, err := m.Token("1001"); err != nil {
		t.Errorf("bob after alice's logout: %v", err)
	}
	if err := m.Logout(t.Context(), "1000"); err != nil {
		t.Errorf("second logout: %v", err)
	}
	if err := m.Logout(t.Context(), "1999"); err != nil {
		t.Errorf("logout of a stranger: %v", err)
	}

	// Platform unreachable: forgotten here all the same, and said so.
	f.setFault(func(*http.Request, url.Values) (int, error) { return 0, errors.New("connection refused") })
	err := m.Logout(t.Context(), "1001")
	if err == nil || !strings.Contains(err.Error(), "did not confirm") || !strings.HasPrefix(err.Error(), "session: ") {
		t.Errorf("logout with the platform down: %v", err)
	}
	if _, err := m.Token("1001"); err != ErrNeedsLogin {
		t.Errorf("Token after a failed revocation: %v", err)
	}
}

// TestLogoutDuringRefresh: a logout while a refresh is on its way waits for
// it and revokes the rotated refresh token, so nothing stays alive at the
// platform.
func TestLogoutDuringRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		f.latency = 5 * time.Second
		m := newTestManager(t, testOptions(t, f, t.TempDir()))
		login(t, m, f, "1000", "alice")
		stop := runManager(t, m)
		defer stop()
		for !m.Status()[0].Refreshing {
			time.Sleep(time.Second) // simulated
		}
		if err := m.Logout(t.Context(), "1000"); err != nil {
			t.Fatal(err)
		}
		if s := f.Stats("alice"); s.ok != 1 || s.revokes != 1 {
			t.Errorf("%d refreshes, %d revocations: want the rotated token revoked", s.ok, s.revokes)
		}
		f.mu.Lock()
		for sid, s := range f.sessions {
			if !s.revoked {
				t.Errorf("session %s still alive", sid)
			}
		}
		f.mu.Unlock()
		if _, err := m.Token("1000"); err != ErrNeedsLogin {
			t.Errorf("Token: %v", err)
		}
	})
}
