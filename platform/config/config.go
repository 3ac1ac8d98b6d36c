// Package config reads and validates the platform's configuration file
// (`platform serve --config FILE`). Every error names the field at fault and
// what is expected; nothing starts on a configuration that does not validate.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the platform's configuration.
type Config struct {
	// Listen is the address of the HTTP(S) listener. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// BaseURL is the public URL clients reach the platform at, without a
	// trailing slash; issuer and SAML URLs derive from it. Required.
	BaseURL string `yaml:"base_url"`
	// TLS serves HTTPS. Required unless Listen is a loopback address (a
	// reverse proxy in front, or the demo).
	TLS *TLS `yaml:"tls"`
	// Database is where the platform keeps its data.
	Database Database `yaml:"database"`
	// MasterKeyFile holds the 32-byte key that seals signing keys at rest;
	// created (mode 0600) if missing. Required.
	MasterKeyFile string `yaml:"master_key_file"`
	// AdminTokenSHA256 is the hex SHA-256 of the admin API's bearer token
	// (the token itself is not kept in the file). Required.
	AdminTokenSHA256 string `yaml:"admin_token_sha256"`
	// FeedTokenSHA256 is the hex SHA-256 of the bearer token gateways use
	// for the revocation feed. Required.
	FeedTokenSHA256 string `yaml:"feed_token_sha256"`
	// Gateway runs the filtering proxy on this node when set.
	Gateway *Gateway `yaml:"gateway"`
}

// Gateway configures the node's filtering forward proxy, and tells agents
// where the gateway is.
type Gateway struct {
	// Listen is the proxy's address, for example 0.0.0.0:3128. When empty
	// this node runs no gateway (gateway nodes run elsewhere) and the
	// section only gives PublicAddr.
	Listen string `yaml:"listen"`
	// PublicAddr is the host:port agents reach the gateway at (a load
	// balancer in front of the nodes, for example), which the distributed
	// agent configuration and default PAC name. Default: Listen, when
	// agents can dial it (a name or a specific address, and a port other
	// than 0). Without either, agents get no configuration (see
	// PublicAddress).
	PublicAddr string `yaml:"public_addr"`
}

// PublicAddress returns where agents reach the gateway: PublicAddr, or
// Listen when agents can dial it, or "" when neither says: then the
// platform serves agents no configuration and no default PAC file, and
// says why, rather than tell them to dial 0.0.0.0.
func (g *Gateway) PublicAddress() string {
	switch {
	case g == nil:
		return ""
	case g.PublicAddr != "":
		return g.PublicAddr
	case validPublicAddr(g.Listen) == nil:
		return g.Listen
	}
	return ""
}

// TLS names the certificate and key files of the HTTPS listener.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Database selects the store.
type Database struct {
	Driver string `yaml:"driver"` // "sqlite" or "postgres"
	DSN    string `yaml:"dsn"`    // a file path for sqlite, a URL for postgres
}

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates YAML. Unknown fields are errors: a typo must
// not silently leave a default in place.
func Parse(data []byte) (*Config, error) {
	c := &Config{Listen: "127.0.0.1:8080"}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, c.Validate()
}

// validPublicAddr checks an address agents dial: host:port with a host
// that names one machine (not 0.0.0.0 or ::) and a port from 1 to 65535.
func validPublicAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("want host:port, such as gateway.example.com:3128, got %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port of %q: want a number from 1 to 65535", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q listens on every address; agents need one they can dial", addr)
	}
	return nil
}

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" {
		bad("listen", "want host:port, such as 127.0.0.1:8080, got %q", c.Listen)
	}
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("base_url", "want the public http(s) URL of the platform, such as https://vigie.example.com, got %q", c.BaseURL)
	} else if strings.HasSuffix(c.BaseURL, "/") {
		bad("base_url", "remove the trailing slash from %q", c.BaseURL)
	}
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	if c.TLS == nil && !loopback && err == nil {
		bad("tls", "required when listen (%s) is not a loopback address: tokens must not cross a network in clear", c.Listen)
	}
	if c.TLS != nil {
		if c.TLS.Cert == "" || c.TLS.Key == "" {
			bad("tls", "cert and key files are both required")
		}
	}
	if c.Gateway != nil {
		if c.Gateway.Listen != "" {
			if _, gport, err := net.SplitHostPort(c.Gateway.Listen); err != nil || gport == "" {
				bad("gateway.listen", "want host:port, such as 0.0.0.0:3128, got %q", c.Gateway.Listen)
			}
		}
		switch {
		case c.Gateway.PublicAddr != "":
			if err := validPublicAddr(c.Gateway.PublicAddr); err != nil {
				bad("gateway.public_addr", "%v", err)
			}
		case c.Gateway.Listen == "":
			bad("gateway", "give listen (to run a gateway on this node), public_addr (where agents reach the gateway nodes), or both")
		}
	}
	switch c.Database.Driver {
	case "sqlite", "postgres":
		if c.Database.DSN == "" {
			bad("database.dsn", "required (a file path for sqlite, a postgres:// URL for postgres)")
		}
	default:
		bad("database.driver", "want sqlite or postgres, got %q", c.Database.Driver)
	}
	if c.MasterKeyFile == "" {
		bad("master_key_file", "required (created with a random key if missing)")
	}
	for field, v := range map[string]string{"admin_token_sha256": c.AdminTokenSHA256, "feed_token_sha256": c.FeedTokenSHA256} {
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			bad(field, "want the 64-hex-digit SHA-256 of the token (printf %%s TOKEN | sha256sum)")
		}
	}
	return errors.Join(errs...)
}
