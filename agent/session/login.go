package session

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// pendingLogin is a login started and not finished: what the callback needs
// to check it and to finish it.
type pendingLogin struct {
	state     string
	verifier  string
	url       string // the authorize URL
	returnURL string // where the user was going, or ""
	created   time.Time
	expires   time.Time // LoginTTL after it was last handed out, at most LoginMaxAge after created
}

func (p *pendingLogin) usable(now time.Time) bool { return p != nil && now.Before(p.expires) }

// BeginLogin starts a login for the user, or returns the one pending, and
// gives the platform URL the user's browser must open. See
// BeginLoginReturn.
func (m *Manager) BeginLogin(userID string) (authorizeURL string, err error) {
	return m.BeginLoginReturn(userID, "")
}

// BeginLoginReturn is BeginLogin for a user who was on their way to
// returnURL (http or https; "" for none): once signed in, the callback page
// sends the browser there.
//
// A new login gets a PKCE verifier and a random state, and is remembered for
// LoginTTL after the last call that returned it (at most LoginMaxAge), so
// the proxy may call this on every request of a signed-out user: the same
// URL comes back, and OpenBrowser is called only when a login starts. A
// non-empty returnURL replaces the pending login's.
func (m *Manager) BeginLoginReturn(userID, returnURL string) (string, error) {
	if userID == "" {
		return "", errors.New("session: login: no user")
	}
	if returnURL != "" {
		u, err := url.Parse(returnURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("session: login: return URL %q: want an http or https URL", returnURL)
		}
		returnURL = u.String()
	}
	now := m.now()
	m.mu.Lock()
	u := m.userLocked(userID)
	if p := u.pending; p.usable(now) {
		p.expires = minTime(now.Add(LoginTTL), p.created.Add(LoginMaxAge))
		if returnURL != "" {
			p.returnURL = returnURL
		}
		m.mu.Unlock()
		return p.url, nil
	}
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	p := &pendingLogin{state: randomString(24), verifier: verifier, returnURL: returnURL, created: now, expires: now.Add(LoginTTL)}
	q := url.Values{"response_type": {"code"}, "client_id": {ClientID}, "redirect_uri": {m.o.RedirectURL},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "state": {p.state}}
	if m.o.Device != "" {
		q.Set("device", m.o.Device)
	}
	p.url = m.authorize + "?" + q.Encode()
	u.pending = p
	m.mu.Unlock()
	m.log.Info("session: login started", "user", userID)
	if m.o.OpenBrowser != nil {
		if err := m.o.OpenBrowser(userID, p.url); err != nil {
			m.log.Warn("session: could not open the browser for the login", "user", userID, "err", err)
		}
	}
	return p.url, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// randomString is n random bytes, base64url: PKCE verifiers (32 bytes, 43
// characters) and states.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Callback finishes a login: the handler of the loopback redirect. userID
// is the OS user who owns the browser's connection, as the caller resolved
// it. The state must be that of a pending login of this very user (else
// 400, and nobody's pending login is touched); the code is then exchanged
// with the login's verifier, the tokens stored, and the browser gets a page
// saying so (and is sent on to where it was going, if known). Every failure
// gets a page that says what happened and what to do.
func (m *Manager) Callback(w http.ResponseWriter, r *http.Request, userID string) {
	if r.Method != http.MethodGet { // not even HEAD: a prefetch must not spend the login
		w.Header().Set("Allow", "GET")
		page(w, http.StatusMethodNotAllowed, pageData{Title: "Sign-in failed", Message: "This address only takes the sign-in answer of your organisation's platform."})
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	now := m.now()
	var p *pendingLogin
	already, alreadyReturn := false, ""
	m.mu.Lock()
	if u := m.users[userID]; u != nil && userID != "" && state != "" {
		switch {
		case u.pending.usable(now) && equal(state, u.pending.state):
			p, u.pending = u.pending, nil
		case u.doneState != "" && equal(state, u.doneState) && now.Sub(u.doneAt) < LoginTTL && u.tok != nil:
			already, alreadyReturn = true, u.doneReturn
		}
	}
	m.mu.Unlock()
	if already {
		page(w, http.StatusOK, pageData{Title: "Signed in", Message: "You are signed in. You can close this tab.", Return: alreadyReturn})
		return
	}
	if p == nil {
		m.log.Warn("session: login callback refused: its state is not that of a login this user started", "user", userID)
		page(w, http.StatusBadRequest, pageData{Title: "Sign-in not accepted",
			Message: "This sign-in answer does not match a sign-in started for you on this computer, or it took too long.", Retry: true})
		return
	}
	fail := func(status int, logMsg string, err error, msg string) {
		m.log.Warn("session: login failed", "user", userID, "reason", logMsg, "err", err)
		m.mu.Lock()
		m.userLocked(userID).lastErr = "login failed: " + logMsg
		m.mu.Unlock()
		page(w, status, pageData{Title: "Sign-in failed", Message: msg, Retry: true})
	}
	if e := q.Get("error"); e != "" {
		desc := q.Get("error_description")
		fail(http.StatusBadRequest, "the platform answered "+e, errors.New(e+": "+desc),
			"Your organisation's platform did not sign you in: "+orDefault(desc, e)+".")
		return
	}
	if iss := q.Get("iss"); iss != m.issuer {
		// RFC 9207: an answer that names another issuer is not our
		// platform's (a mix-up attack, or a misconfiguration).
		fail(http.StatusBadRequest, "unexpected issuer", fmt.Errorf("iss %q, want %q", iss, m.issuer),
			"The sign-in answer did not come from your organisation's platform.")
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "no code", errors.New("callback without code"), "The sign-in answer is incomplete.")
		return
	}
	asked := m.now()
	tr, err := m.grant(r.Context(), url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {m.o.RedirectURL}, "code_verifier": {p.verifier}})
	if err != nil {
		status, msg := http.StatusBadGateway, "Your organisation's platform could not finish the sign-in. Try again in a moment."
		if sessionGone(err) {
			status, msg = http.StatusBadRequest, "The platform refused this sign-in (it may have taken too long)."
		}
		fail(status, "code exchange", err, msg)
		return
	}
	m.mu.Lock()
	u := m.userLocked(userID)
	old := u.tok
	m.setTokensLocked(u, newTokens(tr, asked))
	u.doneState, u.doneReturn, u.doneAt = p.state, p.returnURL, now
	m.mu.Unlock()
	m.persist(u)
	m.kick() // Run recomputes its wait
	m.log.Info("session: signed in", "user", userID)
	if old != nil {
		// A new login replaces an old session: end that one too.
		if err := m.revoke(r.Context(), old.refresh); err != nil {
			m.log.Warn("session: could not revoke the replaced login session", "user", userID, "err", err)
		}
	}
	page(w, http.StatusOK, pageData{Title: "Signed in", Message: "You are signed in. You can close this tab.", Return: p.returnURL})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type pageData struct {
	Title, Message string
	Return         string // where to send the browser on
	Retry          bool   // offer to start again
}

func page(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The callback's URL carries the code: never send it on as a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	pageTmpl.Execute(w, d)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie: {{.Title}}</title>
{{- if .Return}}
<meta http-equiv="refresh" content="1; url={{.Return}}">{{end}}
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Return}}
<p>Taking you back to <a href="{{.Return}}">{{.Return}}</a>…</p>{{end}}
{{- if .Retry}}
<p><a href="/login">Start the sign-in again</a>.</p>{{end}}
</body></html>
`))
