// Package sync keeps the agent's copy of what the platform distributes to
// it (flow 6 of the design): the agent configuration, the tenant's PAC
// file, the inspection CA bundle and the release manifest. It fetches each
// at start and every sync interval, with If-None-Match, and applies a new
// version only once it has checked it: the signature with the tenant's
// distribution key pinned at install, that it is the artifact asked for,
// that its version does not go back, and that its content is usable (the
// configuration validates, the PAC file compiles, the bundle is CA
// certificates, the manifest parses). Anything else keeps the last good
// copy. Good copies are cached on disk, so that an agent starts offline
// with what it last had.
//
// It also enrols the device (LoadOrEnroll) and signs each request with the
// device key.
//
// It does not act on what it fetches: the proxy routes with the PAC, the
// continuity logic reads the configuration, the trust store installs the
// bundle (package agent/truststore), and the self-update applies releases.
// They read Current and wait on Changes.
package sync

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	gosync "sync"
	"sync/atomic"
	"time"

	"vigie/pac"
	"vigie/platform/distrib/artifact"
)

// Options configure a Syncer.
type Options struct {
	// PlatformURL is the platform's base URL, as given at install (the
	// platform's base_url, exactly: device tokens name it).
	PlatformURL string
	// Tenant is the tenant's identifier.
	Tenant string
	// DistributionKey is the tenant's distribution key, pinned at install:
	// nothing it did not sign is applied.
	DistributionKey ed25519.PublicKey
	// Device is the enrolled device (LoadOrEnroll) whose key signs each
	// request.
	Device *Device
	// CacheDir keeps the last good envelope of each kind (created 0700,
	// files 0600). Required.
	CacheDir string
	// HTTPClient makes the requests. Default: a client with a one-minute
	// timeout and the environment's proxy settings ignored (the agent is
	// the machine's proxy; it must not go through itself).
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives transitions: a kind that starts or stops failing, a
	// new version applied. Default: discarded.
	Logger *slog.Logger
	// Interval is the time between two fetches of everything. Default: the
	// configuration's sync_interval (30m until a configuration is loaded).
	Interval time.Duration
	// Jitter varies each wait by up to this fraction of it either way, so
	// that a fleet started together does not fetch together. Default 0.1
	// (±10%); negative for none.
	Jitter float64
	// PACOptions are given to pac.New for each PAC file: the resolver,
	// clock and limits the proxy evaluates it with.
	PACOptions pac.Options
}

// Syncer fetches and holds the artifacts.
type Syncer struct {
	o       Options
	base    string // PlatformURL without a trailing slash
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
	changes chan struct{}
	cur     atomic.Pointer[Snapshot]
	// skew is the platform's clock minus ours, when they differ by more
	// than the platform tolerates: device tokens are dated by its clock.
	skew atomic.Int64

	mu       gosync.Mutex // serialises Sync: one update of the snapshot at a time
	failing  map[string]bool
	failures int // consecutive rounds with a failure, for the retry schedule
}

// Snapshot is what the agent has, immutable: a new one replaces it on
// every change. Until a kind is first loaded its fields are the zero value
// (Config: artifact.DefaultConfig, without gateway).
type Snapshot struct {
	Config   artifact.Config
	PAC      *pac.Script // nil until a PAC file is loaded
	CABundle []byte      // PEM
	Release  artifact.Release
	// Status has an entry for every kind of artifact.Kinds; do not modify.
	Status map[string]Status

	envelopes map[string]*artifact.Envelope // what is applied, by kind
}

// Status is where one kind stands.
type Status struct {
	Version     int64     // 0: none yet
	ETag        string    // of the envelope in use, for If-None-Match
	IssuedAt    time.Time // as the envelope says (not signed: informational)
	LastAttempt time.Time
	LastSuccess time.Time // the platform answered with this version, or "not modified"
	LastError   error     // of the last attempt; nil after a success
	Failures    uint64    // attempts that failed since New
}

// Version returns the version of kind in use, 0 for none.
func (s *Snapshot) Version(kind string) int64 { return s.Status[kind].Version }

// clone copies the snapshot for a change; maps are copied, values shared.
func (s *Snapshot) clone() *Snapshot {
	c := *s
	c.Status = make(map[string]Status, len(s.Status))
	for k, v := range s.Status {
		c.Status[k] = v
	}
	c.envelopes = make(map[string]*artifact.Envelope, len(s.envelopes))
	for k, v := range s.envelopes {
		c.envelopes[k] = v
	}
	return &c
}

// New checks the options and loads the cached envelopes, re-verifying
// each as if it had just been fetched: the agent starts with the last good
// copies, before it can reach the platform.
func New(o Options) (*Syncer, error) {
	u, err := url.Parse(o.PlatformURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sync: platform URL %q: want the platform's http(s) base URL", o.PlatformURL)
	}
	switch {
	case o.Tenant == "":
		return nil, errors.New("sync: no tenant")
	case len(o.DistributionKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("sync: the pinned distribution key is %d bytes, want %d", len(o.DistributionKey), ed25519.PublicKeySize)
	case o.Device == nil || o.Device.ID == "" || len(o.Device.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("sync: no enrolled device (see LoadOrEnroll)")
	case o.CacheDir == "":
		return nil, errors.New("sync: no cache directory")
	}
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("sync: cache: %w", err)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	s := &Syncer{o: o, base: trimSlash(o.PlatformURL), client: o.HTTPClient, now: o.Now, log: o.Logger,
		changes: make(chan struct{}, 1), failing: map[string]bool{}}
	snap := &Snapshot{Config: artifact.DefaultConfig(), Status: map[string]Status{}, envelopes: map[string]*artifact.Envelope{}}
	for _, kind := range artifact.Kinds {
		snap.Status[kind] = Status{}
		if err := s.loadCached(snap, kind); err != nil {
			s.log.Warn("sync: cached copy not used; fetching it again", "kind", kind, "err", err)
		}
	}
	s.cur.Store(snap)
	return s, nil
}

func trimSlash(u string) string {
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

// Current returns what the agent has now. It never blocks.
func (s *Syncer) Current() *Snapshot { return s.cur.Load() }

// Changes receives a value after the content of the snapshot changed (a
// new version applied). Notifications coalesce: a reader that was busy
// gets one for several changes, and reads Current.
func (s *Syncer) Changes() <-chan struct{} { return s.changes }

// Run fetches everything at once, then every interval (with jitter), until
// ctx ends; it returns nil then. After a round with failures it retries
// sooner (30s, then doubling up to the interval), so that an agent that
// starts offline catches up soon after the network comes back.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		err := s.Sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		if err != nil {
			s.failures++
		} else {
			s.failures = 0
		}
		failures := s.failures
		s.mu.Unlock()
		t := time.NewTimer(nextDelay(s.interval(), s.o.Jitter, failures, rand.Float64()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// interval is Options.Interval, or the configuration's.
func (s *Syncer) interval() time.Duration {
	if s.o.Interval > 0 {
		return s.o.Interval
	}
	if d := s.Current().Config.SyncInterval.D(); d > 0 {
		return d
	}
	return artifact.DefaultSyncInterval
}

// retryMin is the first wait after a round with a failure.
const retryMin = 30 * time.Second

// nextDelay is the wait before the next round: the interval, or after
// failures rounds in a row that failed, retryMin doubled for each but the
// first, never more than the interval; then varied by ±jitter of itself,
// r in [0, 1) choosing where.
func nextDelay(interval time.Duration, jitter float64, failures int, r float64) time.Duration {
	d := interval
	if failures > 0 {
		retry := retryMin
		for i := 1; i < failures && retry < interval; i++ {
			retry *= 2
		}
		d = min(retry, interval)
	}
	if jitter > 0 {
		d += time.Duration((2*r - 1) * jitter * float64(d))
	}
	return d
}

// Sync fetches every kind once, in artifact.Kinds order, and applies what
// passes every check. It returns the failures, joined; each kind's stand
// is also in Current().Status.
func (s *Syncer) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, kind := range artifact.Kinds {
		if err := s.syncKind(ctx, kind); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// notify tells Changes' reader, without waiting for it.
func (s *Syncer) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}
