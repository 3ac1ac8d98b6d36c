package service

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"gopkg.in/yaml.v3"
)

// Config is the agent's configuration, written by the installer (or the
// demo). Only an administrator may change it.
type Config struct {
	// PlatformURL is the platform's base URL. Required.
	PlatformURL string `yaml:"platform_url"`
	// Tenant is the organisation's tenant ID. Required.
	Tenant string `yaml:"tenant"`
	// EnrollmentSecret enrols the device at its first start; it may be
	// removed from the file afterwards.
	EnrollmentSecret string `yaml:"enrollment_secret"`
	// DistributionKey is the tenant's Ed25519 public key (base64), pinned at
	// install: configuration, PAC, CA bundle and releases must be signed by
	// it. Required.
	DistributionKey string `yaml:"distribution_key"`
	// Port is the local proxy's port on 127.0.0.1 and ::1. Default 3129.
	Port int `yaml:"port"`
	// StateDir holds the device key, tokens, caches and journals.
	// Default /var/lib/vigie-agent, or $XDG_STATE_HOME/vigie-agent in user
	// mode.
	StateDir string `yaml:"state_dir"`
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string, userMode bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	if err := c.validate(userMode); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate(userMode bool) error {
	var errs []error
	if u, err := url.Parse(c.PlatformURL); c.PlatformURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("platform_url: want the platform's URL, such as https://vigie.example.com, got %q", c.PlatformURL))
	}
	if c.Tenant == "" {
		errs = append(errs, errors.New("tenant: required"))
	}
	if k, err := base64.StdEncoding.DecodeString(c.DistributionKey); err != nil || len(k) != ed25519.PublicKeySize {
		errs = append(errs, errors.New("distribution_key: want the tenant's Ed25519 public key in base64 (the admin API's distribution-key)"))
	}
	if c.Port == 0 {
		c.Port = 3129
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a port", c.Port))
	}
	if c.StateDir == "" {
		c.StateDir = defaultStateDir(userMode)
	}
	return errors.Join(errs...)
}

func (c *Config) distributionKey() ed25519.PublicKey {
	k, _ := base64.StdEncoding.DecodeString(c.DistributionKey)
	return k
}

func defaultStateDir(userMode bool) string {
	if !userMode {
		switch runtime.GOOS {
		case "windows":
			return filepath.Join(cmp.Or(os.Getenv("ProgramData"), `C:\ProgramData`), "Vigie", "agent")
		case "darwin":
			return "/Library/Application Support/Vigie/agent"
		}
		return "/var/lib/vigie-agent"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "vigie-agent")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "vigie-agent")
}

// DefaultConfigPath is where the installer puts the configuration, or, in
// user mode, the user's configuration folder.
func DefaultConfigPath(userMode bool) string {
	if userMode {
		dir, _ := os.UserConfigDir()
		return filepath.Join(dir, "vigie", "agent.yaml")
	}
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(cmp.Or(os.Getenv("ProgramData"), `C:\ProgramData`), "Vigie", "agent.yaml")
	case "darwin":
		return "/Library/Application Support/Vigie/agent.yaml"
	}
	return "/etc/vigie/agent.yaml"
}
