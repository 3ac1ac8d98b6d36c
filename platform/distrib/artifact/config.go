package artifact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Continuity policies: what the agent does with traffic for the gateway
// while the gateway does not answer.
const (
	FailOpen   = "fail-open"   // route it DIRECT
	FailClosed = "fail-closed" // refuse it, with a local page saying why
)

// Defaults of the agent configuration.
const (
	DefaultProbeInterval  = 10 * time.Second
	DefaultPortalCheckURL = "http://connectivitycheck.gstatic.com/generate_204"
	DefaultSyncInterval   = 30 * time.Minute
)

// Config is the agent configuration (kind config). Gateway and PlatformURL
// come from the platform's own configuration; the rest is the tenant's.
type Config struct {
	// Gateway is the host:port of the tenant's filtering proxy.
	Gateway string `json:"gateway"`
	// PlatformURL is the platform's base URL, without a trailing slash.
	PlatformURL string `json:"platform_url"`
	// Continuity is FailOpen or FailClosed. Default FailOpen.
	Continuity string `json:"continuity"`
	// ProbeInterval is how often the agent probes the gateway. Default
	// 10s; 1s to 10m.
	ProbeInterval Duration `json:"probe_interval"`
	// PortalCheckURL is fetched to tell a captive portal (which answers
	// something else) from a working network (which answers 204). Default
	// DefaultPortalCheckURL.
	PortalCheckURL string `json:"portal_check_url"`
	// SyncInterval is how often the agent fetches its artifacts. Default
	// 30m; 1m to 24h.
	SyncInterval Duration `json:"sync_interval"`
}

// DefaultConfig returns the configuration of a tenant that set nothing,
// without the platform's Gateway and PlatformURL.
func DefaultConfig() Config {
	return Config{
		Continuity:     FailOpen,
		ProbeInterval:  Duration(DefaultProbeInterval),
		PortalCheckURL: DefaultPortalCheckURL,
		SyncInterval:   Duration(DefaultSyncInterval),
	}
}

// ParseConfig reads a config payload over the defaults and validates it.
// Unknown fields are ignored: the payload is signed, and a newer platform
// may add fields an older agent does not use.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := decodeFields(data, c.fields(true), false); err != nil {
		return Config{}, fmt.Errorf("artifact: config: %w", err)
	}
	return c, c.Validate()
}

// ParseTenantConfig reads what a tenant's administrator sets: the fields
// of Config other than Gateway and PlatformURL, which are the platform's,
// over the defaults. Unknown fields are errors, so that a typo does not
// leave a default in place; the result has no Gateway or PlatformURL yet,
// so it is validated once the caller has filled them in.
func ParseTenantConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	probe := map[string]json.RawMessage{}
	if json.Unmarshal(data, &probe) == nil {
		for _, name := range []string{"gateway", "platform_url"} {
			if _, ok := probe[name]; ok {
				return Config{}, fmt.Errorf("artifact: config: %s: set by the platform's configuration (gateway.public_addr, base_url), not per tenant", name)
			}
		}
	}
	if err := decodeFields(data, c.fields(false), true); err != nil {
		return Config{}, fmt.Errorf("artifact: config: %w", err)
	}
	return c, nil
}

// fields lists the JSON fields of c; platform ones only when asked.
func (c *Config) fields(platform bool) []field {
	f := []field{
		{"continuity", &c.Continuity},
		{"probe_interval", &c.ProbeInterval},
		{"portal_check_url", &c.PortalCheckURL},
		{"sync_interval", &c.SyncInterval},
	}
	if platform {
		f = append(f, field{"gateway", &c.Gateway}, field{"platform_url", &c.PlatformURL})
	}
	return f
}

// Validate checks every field and names the first that is wrong.
func (c Config) Validate() error {
	if err := ValidHostPort(c.Gateway); err != nil {
		return fmt.Errorf("artifact: config: gateway: %w", err)
	}
	if err := validURL(c.PlatformURL, true); err != nil {
		return fmt.Errorf("artifact: config: platform_url: %w", err)
	}
	if c.Continuity != FailOpen && c.Continuity != FailClosed {
		return fmt.Errorf("artifact: config: continuity: want %q or %q, got %q", FailOpen, FailClosed, c.Continuity)
	}
	for _, d := range []struct {
		name     string
		v        Duration
		min, max time.Duration
	}{
		{"probe_interval", c.ProbeInterval, time.Second, 10 * time.Minute},
		{"sync_interval", c.SyncInterval, time.Minute, 24 * time.Hour},
	} {
		if d.v.D() < d.min || d.v.D() > d.max {
			return fmt.Errorf("artifact: config: %s: %v is outside %v to %v", d.name, d.v.D(), d.min, d.max)
		}
	}
	if err := validURL(c.PortalCheckURL, false); err != nil {
		return fmt.Errorf("artifact: config: portal_check_url: %w", err)
	}
	return nil
}

// Marshal encodes the configuration; equal configurations give equal bytes.
func (c Config) Marshal() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic("artifact: marshal config: " + err.Error()) // plain fields: cannot fail
	}
	return b
}

// ValidHostPort checks a host:port that agents dial: a host name or IP
// address and a port from 1 to 65535.
func ValidHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("want host:port, such as gateway.example.com:3128, got %q", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

// validURL checks an absolute http(s) URL; base URLs also have no path
// ending in "/", query or fragment.
func validURL(s string, base bool) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("want an absolute http or https URL, got %q", s)
	}
	if base && (u.RawQuery != "" || u.Fragment != "" || u.Path != "" && u.Path[len(u.Path)-1] == '/') {
		return fmt.Errorf("want a base URL without trailing slash, query or fragment, got %q", s)
	}
	return nil
}

// field is a JSON object member and where to decode it.
type field struct {
	name string
	dst  any
}

// decodeFields decodes a JSON object member by member, so that an error
// names the member; strict refuses members not in fields. Exactly one
// object, nothing after it.
func decodeFields(data []byte, fields []field, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("want a JSON object: %w", err)
	}
	if obj == nil {
		return fmt.Errorf("want a JSON object, got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON object")
	}
	known := map[string]bool{}
	for _, f := range fields {
		known[f.name] = true
		raw, ok := obj[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("want a %s, got %s", te.Type, te.Value)
			}
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if strict {
		names := make([]string, 0, len(obj))
		for name := range obj {
			if !known[name] {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			return fmt.Errorf("unknown field %q", names[0])
		}
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string ("10s",
// "30m") in JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"10s\" or \"30m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"10s\" or \"30m\": %w", err)
	}
	*d = Duration(v)
	return nil
}
