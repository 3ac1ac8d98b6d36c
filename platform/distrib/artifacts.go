package distrib

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"vigie/certs"
	"vigie/pac"
	"vigie/platform/distrib/artifact"
	"vigie/platform/store"
)

// Authors of artifact versions.
const (
	AuthorAdmin    = "admin"
	AuthorPlatform = "platform" // derived: defaults, the CA bundle, the platform's configuration
)

// Current returns the current version of the tenant's artifact of kind,
// storing a new version first when what the agents should have has
// changed (see the package documentation).
func (s *Service) Current(ctx context.Context, tenantID, kind string) (*store.Artifact, error) {
	if !artifact.ValidKind(kind) {
		return nil, fmt.Errorf("distrib: unknown kind %q: %w", kind, store.ErrNotFound)
	}
	for attempt := 1; ; attempt++ {
		latest, err := s.st.Artifact(ctx, tenantID, kind)
		if errors.Is(err, store.ErrNotFound) {
			latest = nil
		} else if err != nil {
			return nil, err
		}
		payload, err := s.effective(ctx, tenantID, kind, latest)
		if err != nil {
			return nil, err
		}
		if latest != nil && bytes.Equal(latest.Payload, payload) {
			return latest, nil
		}
		a, err := s.putNext(ctx, tenantID, kind, latest, payload, AuthorPlatform)
		if errors.Is(err, store.ErrStale) && attempt < 3 {
			continue // another node stored a version meanwhile: start from it
		}
		if err != nil {
			return nil, err
		}
		s.audit(ctx, tenantID, "system", "agent_artifact.update", kind, auditDetail(a))
		return a, nil
	}
}

// effective computes what the tenant's agents should have, given the
// current stored version (nil when there is none).
func (s *Service) effective(ctx context.Context, tenantID, kind string, latest *store.Artifact) ([]byte, error) {
	switch kind {
	case artifact.KindConfig:
		c := artifact.DefaultConfig()
		if latest != nil {
			var err error
			if c, err = artifact.ParseConfig(latest.Payload); err != nil {
				return nil, fmt.Errorf("distrib: tenant %q: stored configuration version %d: %w", tenantID, latest.Version, err)
			}
		}
		return s.withPlatform(c)
	case artifact.KindPAC:
		if latest != nil && latest.Author == AuthorAdmin {
			return latest.Payload, nil
		}
		if s.gateway == "" {
			return nil, ErrNoGateway
		}
		return DefaultPAC(s.gateway), nil
	case artifact.KindCA:
		cas, err := s.st.CAs(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		recs := make([]certs.Record, len(cas))
		for i, ca := range cas {
			recs[i] = certs.Record{ID: ca.ID, CertPEM: []byte(ca.CertPEM), CreatedAt: ca.CreatedAt, ActiveAt: ca.ActiveAt, RetiredAt: ca.RetiredAt, RemoveAt: ca.RemoveAt}
		}
		b := certs.Bundle(recs, s.now())
		if b == nil {
			return nil, ErrNoCA
		}
		return b, nil
	case artifact.KindRelease:
		if latest != nil {
			return latest.Payload, nil
		}
		return artifact.Release{}.Marshal(), nil
	}
	return nil, fmt.Errorf("distrib: unknown kind %q", kind)
}

// withPlatform fills in the platform's part of a configuration and
// encodes it.
func (s *Service) withPlatform(c artifact.Config) ([]byte, error) {
	if s.gateway == "" {
		return nil, ErrNoGateway
	}
	c.Gateway, c.PlatformURL = s.gateway, s.base
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.Marshal(), nil
}

// putNext stores payload as the version after latest.
func (s *Service) putNext(ctx context.Context, tenantID, kind string, latest *store.Artifact, payload []byte, author string) (*store.Artifact, error) {
	var version int64 = 1
	if latest != nil {
		version = latest.Version + 1
	}
	a := &store.Artifact{Tenant: tenantID, Kind: kind, Version: version, Payload: payload, Author: author, CreatedAt: s.now()}
	if err := s.st.PutArtifact(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// set stores an administrator's payload as the next version, unless it is
// what the administrator last set (so that repeating a PUT changes
// nothing). It reports whether a version was made.
func (s *Service) set(ctx context.Context, tenantID, kind string, payload []byte) (*store.Artifact, bool, error) {
	if _, err := s.st.Tenant(ctx, tenantID); err != nil {
		return nil, false, err
	}
	for attempt := 1; ; attempt++ {
		latest, err := s.st.Artifact(ctx, tenantID, kind)
		if errors.Is(err, store.ErrNotFound) {
			latest = nil
		} else if err != nil {
			return nil, false, err
		}
		if latest != nil && latest.Author == AuthorAdmin && bytes.Equal(latest.Payload, payload) {
			return latest, false, nil
		}
		a, err := s.putNext(ctx, tenantID, kind, latest, payload, AuthorAdmin)
		if errors.Is(err, store.ErrStale) && attempt < 3 {
			continue
		}
		return a, err == nil, err
	}
}

// SetPAC makes src the tenant's PAC file, once it compiles; an
// *InvalidError carries the engine's message, which names line and column.
// It reports whether a new version was made.
func (s *Service) SetPAC(ctx context.Context, tenantID string, src []byte) (*store.Artifact, bool, error) {
	if err := CheckPAC(src); err != nil {
		return nil, false, &InvalidError{err}
	}
	return s.set(ctx, tenantID, artifact.KindPAC, src)
}

// CheckPAC compiles a PAC file and runs its top-level code as an agent
// will, with no network: DNS answers nothing and the machine's address is
// 127.0.0.1, so a script cannot make the platform look names up.
func CheckPAC(src []byte) error {
	_, err := pac.New(src, pac.Options{
		Name:        "proxy.pac",
		Resolver:    pac.StaticResolver{},
		LocalAddrs:  func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil },
		Timeout:     2 * time.Second,
		MaxRuntimes: 1,
		CacheTTL:    -1,
		Alert:       func(string) {},
		Logger:      slog.New(slog.DiscardHandler),
	})
	return err
}

// SetConfig makes doc (the tenant's part of the agent configuration:
// artifact.ParseTenantConfig) the tenant's configuration. Errors about the
// document are *InvalidError and name the field.
func (s *Service) SetConfig(ctx context.Context, tenantID string, doc []byte) (*store.Artifact, bool, error) {
	c, err := artifact.ParseTenantConfig(doc)
	if err != nil {
		return nil, false, &InvalidError{err}
	}
	payload, err := s.withPlatform(c)
	if err != nil {
		if errors.Is(err, ErrNoGateway) {
			return nil, false, err
		}
		return nil, false, &InvalidError{err}
	}
	return s.set(ctx, tenantID, artifact.KindConfig, payload)
}

// SetRelease records a release manifest (artifact.Release, read
// strictly). Errors about the document are *InvalidError and name the
// field.
func (s *Service) SetRelease(ctx context.Context, tenantID string, doc []byte) (*store.Artifact, bool, error) {
	r, err := artifact.ParseRelease(doc, true)
	if err != nil {
		return nil, false, &InvalidError{err}
	}
	return s.set(ctx, tenantID, artifact.KindRelease, r.Marshal())
}

// Envelope returns the current version of the tenant's artifact of kind
// as served: the signed envelope's bytes and its ETag. The same version
// gives the same bytes on every node (issued_at is the version's creation
// time, and Ed25519 signatures are deterministic).
func (s *Service) Envelope(ctx context.Context, tenantID, kind string) (body []byte, etag string, err error) {
	a, err := s.Current(ctx, tenantID, kind)
	if err != nil {
		return nil, "", err
	}
	priv, err := s.signer(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	e := &artifact.Envelope{Kind: kind, Tenant: tenantID, Version: a.Version, IssuedAt: a.CreatedAt.UTC().Truncate(time.Second), Payload: a.Payload,
		Signature: ed25519.Sign(priv, artifact.Message(kind, tenantID, a.Version, a.Payload))}
	body = e.Marshal()
	return body, artifact.ETag(body), nil
}

// auditDetail describes a version for the audit log: its number, author
// and digest (the payload itself is in the history).
func auditDetail(a *store.Artifact) []byte {
	sum := sha256.Sum256(a.Payload)
	b, _ := json.Marshal(map[string]any{"version": a.Version, "author": a.Author, "sha256": hex.EncodeToString(sum[:]), "bytes": len(a.Payload)})
	return b
}

// AuditDetail is auditDetail for the admin API.
func AuditDetail(a *store.Artifact) json.RawMessage { return auditDetail(a) }
