// Package tenant holds what a tenant configures: its settings, with their
// defaults and limits, and the rules for tenant identifiers. It reads and
// validates; storage is package store's.
package tenant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Settings are a tenant's knobs. JSON field names are the admin API's.
type Settings struct {
	// AccessTokenTTL is the lifetime of an access token. Default 15m;
	// 1m to 1h.
	AccessTokenTTL Duration `json:"access_token_ttl"`
	// RefreshLifetime is how long a login lasts from the IdP login, across
	// refreshes; after it the IdP must confirm the user again. Default 7 days
	// (168h); 1h to 90 days.
	RefreshLifetime Duration `json:"refresh_lifetime"`
	// JITProvisioning creates a directory user at the first SAML login of
	// an unknown NameID. Default false: users come from SCIM.
	JITProvisioning bool `json:"jit_provisioning"`
	// KeyPublishLead is how long a new signing key is published in the JWKS
	// before it signs, so that every gateway has it first. Default 5m; 0 to 24h.
	KeyPublishLead Duration `json:"key_publish_lead"`
}

// Defaults returns the settings of a new tenant.
func Defaults() Settings {
	return Settings{
		AccessTokenTTL:  Duration(15 * time.Minute),
		RefreshLifetime: Duration(7 * 24 * time.Hour),
		KeyPublishLead:  Duration(5 * time.Minute),
	}
}

// MaxAccessTokenTTL bounds every tenant's access tokens; a retired signing
// key stays published this long after its last signature.
const MaxAccessTokenTTL = time.Hour

// Parse reads settings stored or sent as JSON over the defaults: absent
// fields keep their default, unknown fields and out-of-range values are
// errors that name the field.
func Parse(raw []byte) (Settings, error) {
	s := Defaults()
	if len(bytes.TrimSpace(raw)) == 0 {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("tenant settings: %w", err)
	}
	return s, s.Validate()
}

// Merge applies a partial JSON update to s.
func (s Settings) Merge(patch []byte) (Settings, error) {
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("tenant settings: %w", err)
	}
	return s, s.Validate()
}

// Validate checks every field's range.
func (s Settings) Validate() error {
	for _, c := range []struct {
		name     string
		v        Duration
		min, max time.Duration
	}{
		{"access_token_ttl", s.AccessTokenTTL, time.Minute, MaxAccessTokenTTL},
		{"refresh_lifetime", s.RefreshLifetime, time.Hour, 90 * 24 * time.Hour},
		{"key_publish_lead", s.KeyPublishLead, 0, 24 * time.Hour},
	} {
		if time.Duration(c.v) < c.min || time.Duration(c.v) > c.max {
			return fmt.Errorf("tenant settings: %s: %v is outside %v to %v", c.name, time.Duration(c.v), c.min, c.max)
		}
	}
	return nil
}

// JSON encodes the settings for storage.
func (s Settings) JSON() json.RawMessage {
	b, _ := json.Marshal(s) // cannot fail: plain fields
	return b
}

// Duration is a time.Duration written as a Go duration string ("15m",
// "168h") in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"15m\" or \"168h\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"15m\" or \"168h\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var idPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidID checks a tenant identifier: 1 to 63 lower-case letters, digits and
// inner hyphens, as it appears in URLs (/t/{tenant}/…).
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("tenant id %q: use 1 to 63 lower-case letters, digits and inner hyphens", id)
	}
	if reserved[strings.ToLower(id)] {
		return fmt.Errorf("tenant id %q is reserved", id)
	}
	return nil
}

var reserved = map[string]bool{"api": true, "admin": true, "static": true, "well-known": true}

// CAKeyPurpose is what a tenant CA's private key is sealed for (package
// secret): a key copied to another tenant's row does not open.
func CAKeyPurpose(tenantID, caID string) string { return "tls-ca-key/" + tenantID + "/" + caID }
