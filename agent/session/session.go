// Package session keeps the agent's tokens, one set per OS user: the login
// (an OAuth 2.1 native app with the RFC 8252 loopback redirect and RFC 7636
// PKCE), the refresh of every user's access token well before it expires,
// logout (RFC 7009 revocation), and the tokens' encrypted store on disk.
//
// One agent service serves every OS user of the machine, so everything here
// is keyed by the OS user ID its caller resolved (a uid on Linux and macOS,
// a SID on Windows). A user's tokens are only ever returned for that user,
// and a login callback completes only the login of the user who owns the
// browser's socket.
//
// What it is not: it does not find out who owns a connection (package
// identity), open browsers (the tray, through Options.OpenBrowser), or put
// tokens on requests (package proxy). Token never touches the network, so
// the proxy can call it on every request.
//
// Times: access tokens live 15 minutes and are refreshed at about 2/3 of
// their lifetime (±10% of it, at random); a login session lasts 7 days from
// the IdP sign-in, after which the user signs in again (without typing
// anything while the IdP's own session cookie lasts).
package session

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ClientID is the agent's OAuth client ID at the platform.
const ClientID = "vigie-agent"

// Timings.
const (
	// LoginTTL is how long a pending login is remembered after BeginLogin
	// last handed it out; a login is never kept longer than LoginMaxAge.
	LoginTTL    = 10 * time.Minute
	LoginMaxAge = time.Hour

	// TokenMargin is the least lifetime an access token has left when Token
	// returns it: enough for the request to reach the gateway.
	TokenMargin = 30 * time.Second

	// minBackoff and maxBackoff bound the wait between refresh attempts
	// after a network or server error.
	minBackoff = 5 * time.Second
	maxBackoff = 5 * time.Minute

	// minGain: a refresh that would extend an access token by less than
	// this (the session ends first) is not worth making.
	minGain = time.Minute

	// maxWait is the longest Run sleeps without looking at the clock:
	// timers stop while a laptop sleeps, the wall clock does not.
	maxWait = time.Minute
)

// Errors of Token. ErrRefreshing is an ErrNeedsLogin (errors.Is), so a
// caller that only checks ErrNeedsLogin treats the user as signed out; one
// that checks ErrRefreshing first can avoid starting a login the user does
// not need.
var (
	// ErrNeedsLogin means the user has no usable tokens: they must sign in
	// (BeginLogin).
	ErrNeedsLogin = errors.New("session: not signed in: a login is needed")
	// ErrRefreshing means the access token has expired but the login
	// session has not: a refresh is under way or being retried (the
	// platform was unreachable). errors.Is(ErrRefreshing, ErrNeedsLogin)
	// is true.
	ErrRefreshing error = refreshingError{}
)

type refreshingError struct{}

func (refreshingError) Error() string        { return "session: access token expired; a refresh is under way" }
func (refreshingError) Is(target error) bool { return target == ErrNeedsLogin }

// Options configures a Manager.
type Options struct {
	// PlatformURL is the platform's base URL, for example
	// "https://vigie.example.com" (http only on a loopback address).
	PlatformURL string
	// Tenant is the organisation's tenant ID on the platform.
	Tenant string
	// Device is this machine's enrolled device ID, sent with every grant so
	// that the platform binds login sessions to it. Optional.
	Device string
	// RedirectURL is the agent's loopback callback, for example
	// "http://127.0.0.1:3129/callback": http, a loopback IP literal, a port.
	RedirectURL string
	// StateDir holds one encrypted file per user; created 0700.
	StateDir string
	// KeyFile holds the 32-byte AES-256 key of those files; created 0600
	// (on Windows, protected with DPAPI) if it does not exist.
	KeyFile string
	// HTTPClient talks to the platform. Default: 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of jitter (not of secrets, which always come
	// from crypto/rand). Default crypto/rand.
	Rand io.Reader
	// Logger receives transitions (sign-in, refresh failures and recovery,
	// logout, unreadable files). Default slog.Default().
	Logger *slog.Logger
	// OpenBrowser, if set, asks the user's tray to open a login URL; it is
	// called when BeginLogin starts a new login, not when it returns the
	// pending one, and should not block for long. nil: the user reaches
	// the login through the gateway's sign-in redirect.
	OpenBrowser func(userID, url string) error
}

// UserStatus is one user's state, for the tray and `agent status`.
type UserStatus struct {
	UserID         string    `json:"user_id"`
	LoggedIn       bool      `json:"logged_in"`     // has a login session (its access token may be expired while a refresh is retried)
	LoginPending   bool      `json:"login_pending"` // a login was started and not finished
	AccessExpires  time.Time `json:"access_expires,omitzero"`
	SessionExpires time.Time `json:"session_expires,omitzero"` // when the user must sign in again
	Refreshing     bool      `json:"refreshing"`
	LastError      string    `json:"last_error,omitempty"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"`
}

// Manager holds every user's tokens.
type Manager struct {
	o         Options
	issuer    string // the tenant's OAuth issuer: PlatformURL/t/tenant
	authorize string
	tokenURL  string
	revokeURL string
	aead      cipher.AEAD
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	running   atomic.Bool
	wake      chan struct{} // a refresh may be due: Run looks again

	randMu sync.Mutex

	mu    sync.Mutex
	users map[string]*user

	// onRefresh, if set (tests), is called after every refresh attempt.
	onRefresh func(userID string, err error)
}

// tokens are one login session's current tokens. Immutable: a refresh
// replaces the pointer, which is also how a finished refresh knows whether
// the tokens it started from are still the user's.
type tokens struct {
	access     string
	refresh    string
	issued     time.Time // when the access token was asked for (wall clock)
	accessExp  time.Time
	sessionExp time.Time
}

type op int

const (
	opNone op = iota
	opRefresh
	opLogout
)

type user struct {
	id  string
	tok *tokens // nil: signed out

	next     time.Time // next refresh attempt (with no refresh possible: the session's end)
	failures int       // refresh failures in a row
	busy     op
	done     chan struct{} // closed when busy ends

	pending *pendingLogin
	// The last completed login, so that a second tab finishing the same
	// login is told the user is signed in rather than shown an error.
	doneState, doneReturn string
	doneAt                time.Time

	lastErr     string
	lastRefresh time.Time

	saveMu sync.Mutex // orders writes of this user's file
}

// New checks o, opens (or creates) the key, and loads every user's stored
// tokens. A stored file that cannot be read is moved aside and its user
// treated as signed out.
func New(o Options) (*Manager, error) {
	base, err := url.Parse(o.PlatformURL)
	if err != nil || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" ||
		base.Scheme != "https" && !(base.Scheme == "http" && isLoopbackHost(base.Hostname())) {
		return nil, fmt.Errorf("session: platform URL %q: want https://host[:port] (http only on a loopback address)", o.PlatformURL)
	}
	if o.Tenant == "" || url.PathEscape(o.Tenant) != o.Tenant {
		return nil, fmt.Errorf("session: tenant %q: want a non-empty tenant ID", o.Tenant)
	}
	if err := checkRedirectURL(o.RedirectURL); err != nil {
		return nil, err
	}
	if o.StateDir == "" || o.KeyFile == "" {
		return nil, errors.New("session: StateDir and KeyFile are required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	issuer := base.Scheme + "://" + base.Host + trimSlash(base.Path) + "/t/" + o.Tenant
	m := &Manager{
		o:         o,
		issuer:    issuer,
		authorize: issuer + "/oauth/authorize",
		tokenURL:  issuer + "/oauth/token",
		revokeURL: issuer + "/oauth/revoke",
		client:    o.HTTPClient,
		now:       func() time.Time { return o.Now().Round(0) }, // wall clock: the monotonic one stops during sleep
		log:       o.Logger,
		wake:      make(chan struct{}, 1),
		users:     map[string]*user{},
	}
	key, err := loadKey(o.KeyFile, o.StateDir)
	if err != nil {
		return nil, err
	}
	if m.aead, err = newAEAD(key); err != nil {
		return nil, err
	}
	if err := m.loadAll(); err != nil {
		return nil, err
	}
	return m, nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

func isLoopbackHost(h string) bool {
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// checkRedirectURL insists on what RFC 8252 §7.3 and the platform accept:
// http to a loopback IP literal with a port.
func checkRedirectURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || !isLoopbackHost(u.Hostname()) || u.Port() == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("session: redirect URL %q: want http://127.0.0.1:<port>/<path> (a loopback IP literal and a port)", s)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("session: redirect URL %q: bad port", s)
	}
	return nil
}

// Token returns the user's access token if it is valid for at least
// TokenMargin more; otherwise ErrNeedsLogin (or ErrRefreshing, which wraps
// it). It never waits on the network; when a refresh is due it wakes Run.
func (m *Manager) Token(userID string) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[userID]
	if u == nil || u.tok == nil {
		return "", ErrNeedsLogin
	}
	t := u.tok
	if u.busy == opNone && !now.Before(u.next) {
		m.kick()
	}
	switch {
	case !now.Before(t.sessionExp):
		return "", ErrNeedsLogin
	case now.Before(t.accessExp.Add(-TokenMargin)):
		return t.access, nil
	default:
		return "", ErrRefreshing
	}
}

// kick wakes Run without waiting.
func (m *Manager) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Status reports every user the manager knows, ordered by user ID.
func (m *Manager) Status() []UserStatus {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]UserStatus, 0, len(m.users))
	for _, u := range m.users {
		s := UserStatus{UserID: u.id, LoginPending: u.pending.usable(now), Refreshing: u.busy == opRefresh,
			LastError: u.lastErr, LastRefresh: u.lastRefresh}
		if t := u.tok; t != nil && now.Before(t.sessionExp) {
			s.LoggedIn, s.AccessExpires, s.SessionExpires = true, t.accessExp, t.sessionExp
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// userLocked returns the user's record, creating it. m.mu is held.
func (m *Manager) userLocked(id string) *user {
	u := m.users[id]
	if u == nil {
		u = &user{id: id}
		m.users[id] = u
	}
	return u
}

// jitter returns a number in [0, 1) from o.Rand (0.5 if it fails).
func (m *Manager) jitter() float64 {
	var b [8]byte
	m.randMu.Lock()
	_, err := io.ReadFull(m.o.Rand, b[:])
	m.randMu.Unlock()
	if err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

// setTokensLocked makes t the user's tokens and schedules their refresh.
// m.mu is held.
func (m *Manager) setTokensLocked(u *user, t *tokens) {
	u.tok = t
	u.failures = 0
	u.lastErr = ""
	u.next = refreshAt(t, m.jitter())
}
