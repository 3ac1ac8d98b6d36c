// Package distrib serves what agents fetch from the platform (flows 1 and 6
// of the design): enrolment of a device with an installer's secret, and
// the tenant's agent configuration, PAC file, inspection CA bundle and
// release manifest, each a versioned artifact in a signed envelope (package
// artifact has the format).
//
// Each tenant has one Ed25519 distribution key, made with the tenant and
// sealed at rest; installers pin its public half, and agents apply nothing
// that it did not sign. Enrolled devices authenticate their requests with
// a short-lived JWT signed by their own key ("Authorization: Vigie-Device
// <JWT>").
//
// Versions: an administrator's change is a new version. So is a change the
// platform derives by itself (the CA bundle as CAs come and go, the default
// PAC and the configuration when the platform's gateway address changes):
// on each request the platform computes what the tenant's agents should
// have, and stores it as the next version when it differs from the current
// one, so that every envelope's version and bytes are the same on every
// node and versions only go up.
//
// It does not apply anything on devices (package agent/sync does), nor
// decide the policy of the gateway.
package distrib

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"vigie/platform/distrib/artifact"
	"vigie/platform/ratelimit"
	"vigie/platform/secret"
	"vigie/platform/store"
)

// Options configure a Service.
type Options struct {
	Store  store.Store
	Sealer *secret.Sealer
	// BaseURL is the platform's public URL (config base_url): the
	// configuration's platform_url, and the base of device tokens'
	// audience.
	BaseURL string
	// GatewayAddr is the host:port agents reach the gateway at (config
	// gateway.public_addr). Without it the configuration and the default
	// PAC cannot be made, and their requests fail with 503.
	GatewayAddr string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives what goes wrong. Default: discarded.
	Logger *slog.Logger
	// EnrollRate and EnrollBurst limit enrolment requests per remote
	// address. Default 2 per second, burst 30: a fleet behind one NAT
	// enrols in bursts, and agents retry after a 429.
	EnrollRate  float64
	EnrollBurst int
}

// Service serves enrolment and artifacts, and is what the admin API uses
// to change them.
type Service struct {
	st      store.Store
	seal    *secret.Sealer
	base    string
	gateway string
	now     func() time.Time
	log     *slog.Logger
	limit   *ratelimit.Keyed

	mu   sync.Mutex
	keys map[string]ed25519.PrivateKey // by tenant; a key never changes
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.EnrollRate <= 0 {
		o.EnrollRate = 2
	}
	if o.EnrollBurst <= 0 {
		o.EnrollBurst = 30
	}
	if o.GatewayAddr == "" {
		o.Logger.Warn("distrib: the configuration does not say where agents reach the gateway (gateway.public_addr): agents get no configuration and no default PAC file until it does")
	}
	return &Service{st: o.Store, seal: o.Sealer, base: o.BaseURL, gateway: o.GatewayAddr, now: o.Now, log: o.Logger,
		limit: ratelimit.New(o.EnrollRate, o.EnrollBurst, o.Now), keys: map[string]ed25519.PrivateKey{}}
}

// Register adds the agents' endpoints to mux: enrolment, and the
// artifacts. The admin endpoints are package admin's.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/enroll", s.handleEnroll)
	mux.HandleFunc("GET /t/{tenant}/agent/{kind}", s.handleArtifact)
}

// Errors callers branch on.
var (
	// ErrNoGateway: the platform's configuration does not say where agents
	// reach the gateway (gateway.public_addr).
	ErrNoGateway = errors.New("distrib: the platform has no gateway address (set gateway.public_addr in its configuration)")
	// ErrNoCA: the tenant publishes no inspection CA.
	ErrNoCA = errors.New("distrib: the tenant publishes no inspection CA")
)

// InvalidError is an input from outside (an administrator's document, an
// enrolment request) that was refused; the message says what is wrong.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &InvalidError{fmt.Errorf("distrib: "+format, args...)}
}

// KeyPurpose is what a tenant's distribution key is sealed for (package
// secret): a key copied to another tenant's row does not open.
func KeyPurpose(tenantID string) string { return "distribution-key/" + tenantID }

// Sign returns the envelope of payload as version of the tenant's artifact
// of kind, signed with priv: what the platform serves. Tests use it to make
// envelopes the platform would never make.
func Sign(priv ed25519.PrivateKey, kind, tenant string, version int64, payload []byte) *artifact.Envelope {
	return artifact.Sign(priv, kind, tenant, version, payload)
}

// EnsureKey gives the tenant its distribution key if it has none, and
// returns the public key. Tenants get theirs at creation; this also covers
// tenants made before distribution existed. Two nodes racing keep the
// first key stored.
func (s *Service) EnsureKey(ctx context.Context, tenantID string) (ed25519.PublicKey, error) {
	k, err := s.st.DistributionKey(ctx, tenantID)
	if err == nil {
		return ed25519.PublicKey(k.Public), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if _, err := s.st.Tenant(ctx, tenantID); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	err = s.st.PutDistributionKey(ctx, &store.DistributionKey{Tenant: tenantID, Private: s.seal.Seal(priv.Seed(), KeyPurpose(tenantID)), Public: pub, CreatedAt: s.now()})
	if errors.Is(err, store.ErrConflict) {
		return s.EnsureKey(ctx, tenantID) // another node made it first: theirs is the one
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, tenantID, "system", "distribution_key.create", tenantID, nil)
	return pub, nil
}

// signer returns the tenant's private distribution key, made on first use
// for a tenant that has none.
func (s *Service) signer(ctx context.Context, tenantID string) (ed25519.PrivateKey, error) {
	s.mu.Lock()
	priv, ok := s.keys[tenantID]
	s.mu.Unlock()
	if ok {
		return priv, nil
	}
	if _, err := s.EnsureKey(ctx, tenantID); err != nil {
		return nil, err
	}
	k, err := s.st.DistributionKey(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	seed, err := s.seal.Open(k.Private, KeyPurpose(tenantID))
	if err != nil {
		return nil, fmt.Errorf("distrib: tenant %q: distribution key: %w", tenantID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("distrib: tenant %q: distribution key seed is %d bytes", tenantID, len(seed))
	}
	priv = ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(k.Public)) {
		return nil, fmt.Errorf("distrib: tenant %q: the sealed distribution key does not match its public key", tenantID)
	}
	s.mu.Lock()
	s.keys[tenantID] = priv
	s.mu.Unlock()
	return priv, nil
}

// audit writes an audit event; a failure is logged, not returned: the
// action it records has happened.
func (s *Service) audit(ctx context.Context, tenantID, actor, action, target string, detail []byte) {
	if err := s.st.Audit(ctx, &store.AuditEvent{At: s.now(), Tenant: tenantID, Actor: actor, Action: action, Target: target, Detail: detail}); err != nil {
		s.log.Error("distrib: audit", "action", action, "err", err)
	}
}
