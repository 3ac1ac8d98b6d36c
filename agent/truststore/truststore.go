// Package truststore puts the tenant's inspection CAs in the machine's
// trust stores, so that browsers and other programs accept the
// certificates the gateway mints when it inspects TLS: the operating
// system's store (Windows' machine root store, the macOS System keychain,
// the Linux CA anchors with update-ca-certificates or its equivalent),
// and the NSS databases of Firefox and Chromium when certutil is present.
// github.com/smallstep/truststore does the OS work.
//
// Install is idempotent and keeps the stores in line with the bundle the
// agent fetched: it adds the CAs that are new and removes the ones it
// installed before that the bundle no longer has (after a rotation). It
// records what it installed in a state file, so that Uninstall removes
// exactly that and nothing an administrator or another program put there.
//
// It changes the machine for every user and needs the privileges of the
// agent's service. Callers must not use it in --user-mode, which promises
// to change nothing on the OS; that check is theirs, not this package's.
// NSS databases are those of the service account's home (on Linux,
// ~/.pki/nssdb and Firefox profiles): per-user databases are not reached.
package truststore

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	sts "github.com/smallstep/truststore"

	"vigie/platform/distrib/artifact"
)

// Options say where Install keeps its record.
type Options struct {
	// StateFile records what Install put in the trust stores (JSON, 0600),
	// for Uninstall and Installed. Required; keep it in the agent's state
	// directory.
	StateFile string
	// Logger receives what is installed and removed. Default: discarded.
	Logger *slog.Logger
}

// Stores a certificate can be installed in.
const (
	StoreSystem = "system"
	StoreNSS    = "nss"
)

// Cert is a CA certificate Install put in the trust stores.
type Cert struct {
	SHA256      string    `json:"sha256"` // hex SHA-256 of the DER certificate
	Subject     string    `json:"subject"`
	Name        string    `json:"name"` // as the stores name it`
	NotAfter    time.Time `json:"not_after"`
	Stores      []string  `json:"stores"` // StoreSystem, and StoreNSS when NSS databases were found
	InstalledAt time.Time `json:"installed_at"`
	PEM         string    `json:"pem"` // Uninstall needs the certificate itself
}

type state struct {
	Certs []Cert `json:"certs"`
}

// mu serialises the package: smallstep/truststore keeps options in
// package variables, and the state file has one writer at a time.
var mu sync.Mutex

// Install makes the trust stores hold exactly the CAs of bundlePEM among
// those this package installed: it installs each CA it has not installed
// yet (first, so that a rotation never leaves a moment without the new
// CA), then removes those it installed before that the bundle no longer
// has. The record is written after every step, so that an error part way
// leaves it true. A bundle that is not PEM CA certificates installs
// nothing.
func Install(bundlePEM []byte, o Options) error {
	if o.StateFile == "" {
		return errors.New("truststore: no state file")
	}
	certs, err := artifact.ParseCABundle(bundlePEM)
	if err != nil {
		return fmt.Errorf("truststore: %w", err)
	}
	log := logger(o)
	mu.Lock()
	defer mu.Unlock()
	st, err := load(o.StateFile)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, c := range certs {
		sum := fingerprint(c)
		want[sum] = true
		if slices.ContainsFunc(st.Certs, func(r Cert) bool { return r.SHA256 == sum }) {
			continue
		}
		stores, err := install(c)
		if err != nil {
			return fmt.Errorf("truststore: installing %s: %w", c.Subject, err)
		}
		st.Certs = append(st.Certs, Cert{SHA256: sum, Subject: c.Subject.String(), Name: prefix(c) + c.SerialNumber.String(), NotAfter: c.NotAfter.UTC(), Stores: stores,
			InstalledAt: time.Now().UTC(), PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))})
		if err := save(o.StateFile, st); err != nil {
			return err
		}
		log.Info("truststore: CA installed", "subject", c.Subject.String(), "sha256", sum, "stores", stores)
	}
	for _, r := range slices.Clone(st.Certs) {
		if want[r.SHA256] {
			continue
		}
		if err := remove(o.StateFile, st, r); err != nil {
			return err
		}
		log.Info("truststore: CA removed (no longer in the bundle)", "subject", r.Subject, "sha256", r.SHA256)
	}
	return nil
}

// Uninstall removes every CA Install installed, and then the state file.
func Uninstall(o Options) error {
	if o.StateFile == "" {
		return errors.New("truststore: no state file")
	}
	mu.Lock()
	defer mu.Unlock()
	st, err := load(o.StateFile)
	if err != nil {
		return err
	}
	for _, r := range slices.Clone(st.Certs) {
		if err := remove(o.StateFile, st, r); err != nil {
			return err
		}
		logger(o).Info("truststore: CA removed", "subject", r.Subject, "sha256", r.SHA256)
	}
	if err := os.Remove(o.StateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("truststore: %w", err)
	}
	return nil
}

// Installed returns what Install installed and has not removed, in the
// order it installed them.
func Installed(o Options) ([]Cert, error) {
	mu.Lock()
	defer mu.Unlock()
	st, err := load(o.StateFile)
	if err != nil {
		return nil, err
	}
	return st.Certs, nil
}

// remove uninstalls r from the stores it was installed in and drops it
// from the record.
func remove(path string, st *state, r Cert) error {
	block, _ := pem.Decode([]byte(r.PEM))
	if block == nil {
		return fmt.Errorf("truststore: the state file %s is damaged (certificate %s): remove the CA by hand, then the file", path, r.Subject)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("truststore: the state file %s is damaged (certificate %s): %w", path, r.Subject, err)
	}
	if err := uninstall(c, r.Stores); err != nil {
		return fmt.Errorf("truststore: removing %s: %w", r.Subject, err)
	}
	st.Certs = slices.DeleteFunc(st.Certs, func(x Cert) bool { return x.SHA256 == r.SHA256 })
	return save(path, st)
}

// tenantPattern is what a tenant CA's organizational unit (its tenant)
// looks like, and so may go into a name in the stores.
var tenantPattern = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// prefix is how the stores name c, before its serial number: "Vigie
// <tenant> " for a tenant CA. smallstep/truststore names certificates by
// their common name otherwise, and NSS reads a colon in a name (our CAs'
// names have a time in them) as the end of a token name, so the name it
// installs under is not the one it then looks up.
func prefix(c *x509.Certificate) string {
	if ou := c.Subject.OrganizationalUnit; len(ou) == 1 && tenantPattern.MatchString(ou[0]) {
		return "Vigie " + ou[0] + " "
	}
	return "Vigie CA "
}

// install puts c in the system store, and in the NSS databases when there
// are some and certutil to change them; it returns the stores.
func install(c *x509.Certificate) ([]string, error) {
	stores := []string{StoreSystem}
	opts := []sts.Option{sts.WithPrefix(prefix(c))}
	if nssAvailable() {
		stores = append(stores, StoreNSS)
		opts = append(opts, sts.WithFirefox())
	}
	return stores, cmdError(sts.Install(c, opts...))
}

func uninstall(c *x509.Certificate, stores []string) error {
	opts := []sts.Option{sts.WithPrefix(prefix(c))}
	if slices.Contains(stores, StoreNSS) && nssAvailable() {
		opts = append(opts, sts.WithFirefox())
	}
	if !slices.Contains(stores, StoreSystem) {
		opts = append(opts, sts.WithNoSystem())
	}
	return cmdError(sts.Uninstall(c, opts...))
}

// nssAvailable reports whether certutil can change NSS databases and
// there are some: smallstep/truststore fails an install into no database.
func nssAvailable() bool {
	if _, err := exec.LookPath("certutil"); err != nil {
		return false
	}
	t, err := sts.NewNSSTrust()
	return err == nil && t.PreCheck() == nil
}

// cmdError adds a failed command's output to its error: the library's
// message names the command only.
func cmdError(err error) error {
	var ce *sts.CmdError
	if errors.As(err, &ce) && len(ce.Out()) > 0 {
		return fmt.Errorf("%w: %s", err, bytesTrim(ce.Out()))
	}
	return err
}

func bytesTrim(b []byte) string {
	const max = 500
	s := string(b)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func load(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("truststore: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("truststore: the state file %s is damaged (%v): remove Vigie's CAs by hand, then the file", path, err)
	}
	return &st, nil
}

// save writes the record atomically (temporary file, then rename), 0600.
func save(path string, st *state) error {
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("truststore: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("truststore: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("truststore: writing %s: %w", path, err)
	}
	return nil
}

func logger(o Options) *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}
