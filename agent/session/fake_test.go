package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakePlatform is the platform's token and revocation endpoints in memory,
// as an http.RoundTripper, for tests inside a synctest bubble (where real
// sockets cannot run) and for fast store and callback tests. It keeps the
// grant rules of platform/auth: single-use codes bound to the PKCE
// challenge, redirect URI and device; access tokens of accessTTL that never
// outlive their session; refresh tokens rotated on every use, a spent one
// presented again revoking the whole session; an absolute session lifetime
// of sessionTTL; invalid_grant for each refusal.
type fakePlatform struct {
	base, tenant          string
	accessTTL, sessionTTL time.Duration
	// latency is how long each answer takes (simulated time in a bubble).
	latency time.Duration

	mu sync.Mutex
	// fault, if set, is asked before each request is served: a non-zero
	// status is answered as is, an error fails the round trip.
	fault    func(req *http.Request, form url.Values) (int, error)
	n        int
	codes    map[string]*fakeCode
	refresh  map[string]*fakeRefresh
	sessions map[string]*fakeSession
	access   map[string]fakeAccess
	stats    map[string]*fakeStats // by platform user
}

type fakeCode struct {
	user, challenge, redirect, device string
	expires                           time.Time
}

type fakeRefresh struct {
	sid   string
	spent bool
}

type fakeSession struct {
	user, device string
	end          time.Time
	revoked      bool
}

type fakeAccess struct {
	user string
	exp  time.Time
}

// fakeStats counts one platform user's refresh requests.
type fakeStats struct {
	attempts      []time.Time // every refresh request, when it arrived
	ok            int         // refreshes that gave new tokens
	invalidGrants int
	inflight, max int // refresh requests being served at once, and the most ever
	revokes       int
}

func newFakePlatform() *fakePlatform {
	return &fakePlatform{base: "http://127.0.0.1:9", tenant: "demo", accessTTL: 15 * time.Minute, sessionTTL: 7 * 24 * time.Hour,
		codes: map[string]*fakeCode{}, refresh: map[string]*fakeRefresh{}, sessions: map[string]*fakeSession{},
		access: map[string]fakeAccess{}, stats: map[string]*fakeStats{}}
}

func (f *fakePlatform) issuer() string { return f.base + "/t/" + f.tenant }

func (f *fakePlatform) statsLocked(user string) *fakeStats {
	s := f.stats[user]
	if s == nil {
		s = &fakeStats{}
		f.stats[user] = s
	}
	return s
}

// Stats returns a copy of a platform user's counters.
func (f *fakePlatform) Stats(user string) fakeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := *f.statsLocked(user)
	s.attempts = append([]time.Time(nil), s.attempts...)
	return s
}

func (f *fakePlatform) setFault(fn func(req *http.Request, form url.Values) (int, error)) {
	f.mu.Lock()
	f.fault = fn
	f.mu.Unlock()
}

func (f *fakePlatform) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	req.Body.Close()
	form, _ := url.ParseQuery(string(body))
	isRefresh := req.URL.Path == "/t/"+f.tenant+"/oauth/token" && form.Get("grant_type") == "refresh_token"
	f.mu.Lock()
	var st *fakeStats
	if isRefresh {
		user := "?"
		if r := f.refresh[form.Get("refresh_token")]; r != nil {
			user = f.sessions[r.sid].user
		}
		st = f.statsLocked(user)
		st.attempts = append(st.attempts, time.Now())
		st.inflight++
		st.max = max(st.max, st.inflight)
	}
	fault := f.fault
	f.mu.Unlock()
	if st != nil {
		defer func() { f.mu.Lock(); st.inflight--; f.mu.Unlock() }()
	}
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	if fault != nil {
		status, err := fault(req, form)
		if err != nil {
			return nil, err
		}
		if status != 0 {
			return jsonAnswer(req, status, map[string]string{"error": "temporarily_unavailable", "error_description": "injected fault"}), nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch req.URL.Path {
	case "/t/" + f.tenant + "/oauth/token":
		status, v := f.token(form)
		return jsonAnswer(req, status, v), nil
	case "/t/" + f.tenant + "/oauth/revoke":
		if form.Get("client_id") != ClientID {
			return jsonAnswer(req, 401, map[string]string{"error": "invalid_client"}), nil
		}
		if r := f.refresh[form.Get("token")]; r != nil {
			f.sessions[r.sid].revoked = true
			f.statsLocked(f.sessions[r.sid].user).revokes++
		}
		return jsonAnswer(req, 200, nil), nil
	}
	return jsonAnswer(req, 404, map[string]string{"error": "not_found"}), nil
}

func jsonAnswer(req *http.Request, status int, v any) *http.Response {
	var b []byte
	if v != nil {
		b, _ = json.Marshal(v)
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprint(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)), Request: req}
}

func invalidGrant(desc string) (int, any) {
	return 400, map[string]string{"error": "invalid_grant", "error_description": desc}
}

// token serves the token endpoint. f.mu is held.
func (f *fakePlatform) token(form url.Values) (int, any) {
	now := time.Now()
	if form.Get("client_id") != ClientID {
		return 401, map[string]string{"error": "invalid_client"}
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		c := f.codes[form.Get("code")]
		delete(f.codes, form.Get("code")) // spent by any attempt
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		switch {
		case c == nil || !now.Before(c.expires):
			return invalidGrant("the code is unknown, used or expired")
		case c.redirect != form.Get("redirect_uri"):
			return invalidGrant("redirect_uri does not match")
		case c.challenge != base64.RawURLEncoding.EncodeToString(sum[:]):
			return invalidGrant("code_verifier does not match code_challenge")
		case c.device != form.Get("device"):
			return invalidGrant("device does not match")
		}
		f.n++
		sid := fmt.Sprintf("sid-%d", f.n)
		f.sessions[sid] = &fakeSession{user: c.user, device: c.device, end: now.Add(f.sessionTTL)}
		return f.issue(sid, now)
	case "refresh_token":
		st := f.statsLocked("?")
		r := f.refresh[form.Get("refresh_token")]
		if r != nil {
			st = f.statsLocked(f.sessions[r.sid].user)
		}
		st.invalidGrants++ // undone below on success
		switch {
		case r == nil:
			return invalidGrant("unknown refresh token")
		case r.spent:
			f.sessions[r.sid].revoked = true
			return invalidGrant("refresh token already used: the session is revoked, sign in again")
		case f.sessions[r.sid].revoked:
			return invalidGrant("the session was revoked: sign in again")
		case !now.Before(f.sessions[r.sid].end):
			return invalidGrant("the session has reached its maximum lifetime: sign in again")
		case f.sessions[r.sid].device != form.Get("device"):
			f.sessions[r.sid].revoked = true
			return invalidGrant("refresh token used from another device")
		}
		st.invalidGrants--
		st.ok++
		r.spent = true
		return f.issue(r.sid, now)
	}
	return 400, map[string]string{"error": "unsupported_grant_type"}
}

// issue mints a pair for a session. f.mu is held.
func (f *fakePlatform) issue(sid string, now time.Time) (int, any) {
	s := f.sessions[sid]
	exp := now.Add(f.accessTTL)
	if exp.After(s.end) {
		exp = s.end
	}
	f.n++
	at, rt := fmt.Sprintf("at-%s-%d", s.user, f.n), fmt.Sprintf("rt-%d", f.n)
	f.access[at] = fakeAccess{user: s.user, exp: exp}
	f.refresh[rt] = &fakeRefresh{sid: sid}
	return 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(exp.Sub(now).Seconds()),
		"refresh_token": rt, "refresh_expires_in": int(s.end.Sub(now).Seconds())}
}

// accessInfo says whose an access token is and when it really expires.
func (f *fakePlatform) accessInfo(tok string) (fakeAccess, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.access[tok]
	return a, ok
}

// sessionEnd is the end of the platform user's latest session.
func (f *fakePlatform) sessionEnd(user string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var end time.Time
	for _, s := range f.sessions {
		if s.user == user && s.end.After(end) {
			end = s.end
		}
	}
	return end
}

// revokeUser ends every session of a platform user (an administrator's
// revocation, or the user disabled in the directory).
func (f *fakePlatform) revokeUser(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.user == user {
			s.revoked = true
		}
	}
}

// authorize plays the browser's trip through the platform and the IdP: it
// checks the agent's authorize URL, signs user in, and returns the URL of
// the loopback callback the platform would redirect to.
func (f *fakePlatform) authorize(t testing.TB, authorizeURL, user string) string {
	t.Helper()
	u, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/t/"+f.tenant+"/oauth/authorize" || q.Get("response_type") != "code" || q.Get("client_id") != ClientID ||
		q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("state") == "" {
		t.Fatalf("authorize URL %s", authorizeURL)
	}
	f.mu.Lock()
	f.n++
	code := fmt.Sprintf("code-%d", f.n)
	f.codes[code] = &fakeCode{user: user, challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"),
		device: q.Get("device"), expires: time.Now().Add(time.Minute)}
	f.mu.Unlock()
	cb, _ := url.Parse(q.Get("redirect_uri"))
	cq := url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {f.issuer()}}
	cb.RawQuery = cq.Encode()
	return cb.String()
}

// callback calls m.Callback as osUser and returns the recorded answer.
func callback(m *Manager, callbackURL, osUser string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	m.Callback(rec, httptest.NewRequest(http.MethodGet, callbackURL, nil), osUser)
	return rec
}

// login signs osUser in as the platform's user.
func login(t testing.TB, m *Manager, f *fakePlatform, osUser, user string) {
	t.Helper()
	au, err := m.BeginLogin(osUser)
	if err != nil {
		t.Fatal(err)
	}
	if rec := callback(m, f.authorize(t, au, user), osUser); rec.Code != http.StatusOK {
		t.Fatalf("callback of %s: %d %s", osUser, rec.Code, rec.Body)
	}
}

// fastDir is a temporary folder, on tmpfs when the machine has one: the
// long simulations write each user's file (with fsync) a thousand times.
func fastDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "vigie-session-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

const testRedirect = "http://127.0.0.1:3129/callback"

// testOptions are a Manager's options against f, with its files in dir and
// jitter from a fixed seed.
func testOptions(t testing.TB, f *fakePlatform, dir string) Options {
	return Options{PlatformURL: f.base, Tenant: f.tenant, Device: "dev-1", RedirectURL: testRedirect,
		StateDir: filepath.Join(dir, "state"), KeyFile: filepath.Join(dir, "key"),
		HTTPClient: &http.Client{Transport: f}, Rand: rand.NewChaCha8([32]byte{1, 2, 3}),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

func newTestManager(t testing.TB, o Options) *Manager {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
