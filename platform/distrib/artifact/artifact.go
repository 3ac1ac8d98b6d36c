// Package artifact is the wire format of what the platform distributes to
// agents, as both sides read it: the signed envelope, and the payloads it
// carries (agent configuration, PAC, CA bundle, release manifest).
//
// It has no platform dependencies so that the agent can link it; serving
// artifacts is package distrib's, fetching and applying them is package
// agent/sync's.
//
// # Envelope
//
// Every artifact travels as JSON:
//
//	{"kind":"pac","tenant":"acme","version":7,"issued_at":"2026-05-04T10:30:00Z",
//	 "payload":"<base64>","signature":"<base64>"}
//
// version counts the changes of that kind for that tenant, from 1; agents
// refuse a lower version than the one they have (rollback). signature is
// Ed25519, by the tenant's distribution key, over exactly
//
//	"vigie-dist-v1\n" + kind + "\n" + tenant + "\n" + decimal(version) + "\n" + payload
//
// so that a payload cannot be replayed as another kind, for another tenant,
// or as another version. issued_at is informational and not signed: nothing
// may depend on it. base64 is the standard alphabet, padded.
package artifact

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Device requests carry "Authorization: Vigie-Device <JWT>": a JWT signed
// (EdDSA) by the key the device enrolled with, iss = sub = the device ID,
// aud = DeviceAudience, iat, exp at most MaxDeviceTokenLifetime after iat,
// and a jti.
const (
	DeviceScheme           = "Vigie-Device"
	MaxDeviceTokenLifetime = 5 * time.Minute
)

// DeviceAudience is the aud of a device token for a tenant: the base of the
// tenant's agent endpoints, so that a token made for one tenant or one
// platform is refused by another.
func DeviceAudience(base, tenant string) string { return base + "/t/" + tenant + "/agent" }

// Kinds of artifacts.
const (
	KindConfig  = "config"  // the agent configuration, JSON (Config)
	KindPAC     = "pac"     // the tenant's proxy.pac
	KindCA      = "ca"      // the tenant's inspection CA bundle, PEM
	KindRelease = "release" // the release manifest, JSON (Release)
)

// Kinds lists every kind, in the order agents fetch them.
var Kinds = []string{KindConfig, KindPAC, KindCA, KindRelease}

// ValidKind reports whether kind is one of Kinds.
func ValidKind(kind string) bool {
	switch kind {
	case KindConfig, KindPAC, KindCA, KindRelease:
		return true
	}
	return false
}

// domain starts every signed message: a signature made for something else
// with the same key (there is nothing else, but there may be) never
// verifies as an envelope.
const domain = "vigie-dist-v1\n"

// MaxEnvelopeSize bounds an envelope as read from the network or a cache:
// a 1 MiB PAC file (pac.MaxScriptSize) in base64 with room to spare.
const MaxEnvelopeSize = 4 << 20

// Envelope is one signed version of an artifact.
type Envelope struct {
	Kind      string    `json:"kind"`
	Tenant    string    `json:"tenant"`
	Version   int64     `json:"version"`
	IssuedAt  time.Time `json:"issued_at"` // not signed
	Payload   []byte    `json:"payload"`
	Signature []byte    `json:"signature"`
}

// Errors of Parse and Verify, wrapped with detail.
var (
	ErrMalformed    = errors.New("artifact: malformed envelope")
	ErrBadSignature = errors.New("artifact: bad signature")
)

// Message returns the bytes a signature covers.
func Message(kind, tenant string, version int64, payload []byte) []byte {
	v := strconv.FormatInt(version, 10)
	m := make([]byte, 0, len(domain)+len(kind)+len(tenant)+len(v)+3+len(payload))
	m = append(m, domain...)
	m = append(m, kind...)
	m = append(m, '\n')
	m = append(m, tenant...)
	m = append(m, '\n')
	m = append(m, v...)
	m = append(m, '\n')
	return append(m, payload...)
}

// Sign returns the envelope of payload as version of the tenant's artifact
// of kind, signed with priv. IssuedAt is the current time to the second;
// the platform sets it to when the version was made.
func Sign(priv ed25519.PrivateKey, kind, tenant string, version int64, payload []byte) *Envelope {
	return &Envelope{
		Kind: kind, Tenant: tenant, Version: version,
		IssuedAt:  time.Now().UTC().Truncate(time.Second),
		Payload:   payload,
		Signature: ed25519.Sign(priv, Message(kind, tenant, version, payload)),
	}
}

// Marshal encodes the envelope. The same envelope always gives the same
// bytes, so that an ETag made from them is stable.
func (e *Envelope) Marshal() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic("artifact: marshal: " + err.Error()) // plain fields: cannot fail
	}
	return b
}

// Parse decodes an envelope and checks its form (not its signature):
// every field present with the right type, a known kind, a tenant, a
// positive version, a 64-byte signature, nothing after the object.
// Unknown fields are ignored, so that the platform can add informational
// ones without stopping older agents.
func Parse(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrMalformed, len(data), MaxEnvelopeSize)
	}
	var raw struct {
		Kind      *string    `json:"kind"`
		Tenant    *string    `json:"tenant"`
		Version   *int64     `json:"version"`
		IssuedAt  *time.Time `json:"issued_at"`
		Payload   *[]byte    `json:"payload"`
		Signature *[]byte    `json:"signature"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"kind", raw.Kind == nil}, {"tenant", raw.Tenant == nil}, {"version", raw.Version == nil},
		{"issued_at", raw.IssuedAt == nil}, {"payload", raw.Payload == nil}, {"signature", raw.Signature == nil},
	} {
		if f.missing {
			return nil, fmt.Errorf("%w: no %s", ErrMalformed, f.name)
		}
	}
	e := &Envelope{Kind: *raw.Kind, Tenant: *raw.Tenant, Version: *raw.Version, IssuedAt: *raw.IssuedAt, Payload: *raw.Payload, Signature: *raw.Signature}
	switch {
	case !ValidKind(e.Kind):
		return nil, fmt.Errorf("%w: unknown kind %q", ErrMalformed, e.Kind)
	case e.Tenant == "" || len(e.Tenant) > 63:
		return nil, fmt.Errorf("%w: tenant %q", ErrMalformed, e.Tenant)
	case e.Version <= 0:
		return nil, fmt.Errorf("%w: version %d is not positive", ErrMalformed, e.Version)
	case len(e.Signature) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(e.Signature), ed25519.SignatureSize)
	}
	return e, nil
}

// Verify checks the signature with the tenant's distribution key.
func (e *Envelope) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("artifact: distribution key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(pub, Message(e.Kind, e.Tenant, e.Version, e.Payload), e.Signature) {
		return fmt.Errorf("%w on %s version %d of tenant %q: not signed by the pinned distribution key", ErrBadSignature, e.Kind, e.Version, e.Tenant)
	}
	return nil
}

// Open parses data, verifies its signature with pub, and checks that it is
// the artifact of kind for tenant: what an agent does with every envelope
// before looking at its payload.
func Open(data []byte, pub ed25519.PublicKey, kind, tenant string) (*Envelope, error) {
	e, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := e.Verify(pub); err != nil {
		return nil, err
	}
	if e.Kind != kind || e.Tenant != tenant {
		return nil, fmt.Errorf("artifact: got %s of tenant %q where %s of tenant %q was expected", e.Kind, e.Tenant, kind, tenant)
	}
	return e, nil
}

// ETag is the entity tag of an envelope's bytes as served: the quoted
// base64url SHA-256. An agent can compute it from the copy it cached and
// ask with If-None-Match after a restart.
func ETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
}
