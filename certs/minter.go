package certs

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// DefaultCacheSize is how many leaves a Minter keeps: 10,000. A cached
	// leaf (DER, parsed certificate, key; the CA's DER is shared) holds
	// about 4 KiB of heap, so a full cache is about 40 MiB; a miss costs
	// one mint, 0.1 to 0.2 ms of CPU (BenchmarkLeaf/cold).
	DefaultCacheSize = 10_000

	// DefaultLeafLifetime is how long a leaf is valid after it is minted:
	// 7 days. It only bounds the damage of a leaf key taken from a gateway's
	// memory; the cache re-mints well before, and a longer life saves
	// nothing once the cache is warm.
	DefaultLeafLifetime = 7 * 24 * time.Hour

	// MaxLeafLifetime is the longest leaf lifetime NewMinter accepts: 825
	// days, Apple's limit for any TLS server certificate, even one from a
	// CA the user installed; macOS and iOS refuse longer ones.
	MaxLeafLifetime = 825 * 24 * time.Hour

	// RenewBefore is how long before its NotAfter a cached leaf is minted
	// again: 1 hour, the mirror of Backdate, so that a client whose clock is
	// up to an hour ahead is never handed a leaf it deems expired.
	RenewBefore = time.Hour
)

// ErrNoSNI is returned by [Minter.GetCertificate] for a client that sent no
// server name: the caller knows the host from the CONNECT request and
// should use [Minter.ForHost].
var ErrNoSNI = errors.New("certs: client sent no server name (SNI); use ForHost with the CONNECT host")

// MinterOptions configures a [Minter]. The zero value gives the defaults.
type MinterOptions struct {
	// CacheSize is how many leaves are kept, least recently used out
	// first. Default DefaultCacheSize; negative is an error.
	CacheSize int
	// LeafLifetime is how long a leaf is valid after it is minted, never
	// beyond the CA's NotAfter. Default DefaultLeafLifetime; it must be more
	// than RenewBefore and at most MaxLeafLifetime.
	LeafLifetime time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Minter mints and caches the leaf certificates the gateway presents when
// it inspects TLS: one per host, signed by one CA, with its own ECDSA P-256
// key. It is safe for concurrent use. It signs with one CA for its whole
// life: when the signing CA changes, build a new Minter.
type Minter struct {
	ca       *CA
	size     int
	lifetime time.Duration
	now      func() time.Time

	mu       sync.Mutex
	lru      *list.List               // of *entry, most recently used first
	entries  map[string]*list.Element // host → element of lru
	inflight map[string]*call         // host → mint under way

	mints    int64             // mints started, under mu; tests read it
	mintHook func(host string) // tests only: runs as a mint starts
}

type entry struct {
	host    string
	cert    *tls.Certificate
	renewAt time.Time // NotAfter - RenewBefore: a hit after this mints again
}

// call is a mint under way; callers that want the same host wait on done
// instead of minting too.
type call struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewMinter returns a Minter that signs with ca.
func NewMinter(ca *CA, opts MinterOptions) (*Minter, error) {
	if ca == nil {
		return nil, errors.New("certs: minter needs a CA")
	}
	m := &Minter{ca: ca, size: opts.CacheSize, lifetime: opts.LeafLifetime, now: opts.Now,
		lru: list.New(), entries: map[string]*list.Element{}, inflight: map[string]*call{}}
	switch {
	case m.size < 0:
		return nil, fmt.Errorf("certs: cache size %d is negative", m.size)
	case m.size == 0:
		m.size = DefaultCacheSize
	}
	switch {
	case m.lifetime == 0:
		m.lifetime = DefaultLeafLifetime
	case m.lifetime <= RenewBefore:
		// Every leaf would be due for renewal as soon as it is minted.
		return nil, fmt.Errorf("certs: leaf lifetime %v is not more than RenewBefore (%v)", m.lifetime, RenewBefore)
	case m.lifetime > MaxLeafLifetime:
		return nil, fmt.Errorf("certs: leaf lifetime %v is more than %v, which Apple platforms refuse", m.lifetime, MaxLeafLifetime)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// Len returns how many leaves the cache holds, for metrics.
func (m *Minter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Leaf returns a certificate for host, a DNS name (ASCII, as in SNI) or an
// IP address literal, from the cache or minted now. Concurrent calls for
// the same host mint once. The certificate is valid from now-Backdate to
// now+LeafLifetime, within the CA's validity; it names host in its subject
// alternative names (browsers ignore the common name), is for server
// authentication only, and its chain is the leaf then the CA, with Leaf
// parsed. The caller must not modify it.
//
// A malformed host gets an error wrapping [ErrBadHost].
func (m *Minter) Leaf(host string) (*tls.Certificate, error) {
	name, isIP, err := canonicalHost(host)
	if err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	if el, ok := m.entries[name]; ok {
		e := el.Value.(*entry)
		if now.Before(e.renewAt) {
			m.lru.MoveToFront(el)
			m.mu.Unlock()
			return e.cert, nil
		}
	}
	if c, ok := m.inflight[name]; ok {
		m.mu.Unlock()
		<-c.done
		return c.cert, c.err
	}
	c := &call{done: make(chan struct{})}
	m.inflight[name] = c
	m.mints++
	m.mu.Unlock()

	m.mintFor(c, name, isIP, now)
	return c.cert, c.err
}

// errMintPanicked is what callers waiting on a mint get when it panicked,
// rather than waiting forever; the panic goes on up the minting goroutine.
var errMintPanicked = errors.New("certs: minting the leaf panicked")

// mintFor runs the mint of call c, then hands the result to the cache and
// to the callers waiting on c, even if the mint panics.
func (m *Minter) mintFor(c *call, host string, isIP bool, now time.Time) {
	defer func() {
		if c.cert == nil && c.err == nil {
			c.err = errMintPanicked
		}
		m.mu.Lock()
		delete(m.inflight, host)
		if c.err == nil {
			m.store(host, c.cert)
		}
		m.mu.Unlock()
		close(c.done)
	}()
	if m.mintHook != nil {
		m.mintHook(host)
	}
	c.cert, c.err = m.mint(host, isIP, now)
}

// store puts a fresh leaf in the cache, replacing a stale one for the same
// host, and evicts the least recently used leaves beyond the size. m.mu is
// held.
func (m *Minter) store(host string, cert *tls.Certificate) {
	e := &entry{host: host, cert: cert, renewAt: cert.Leaf.NotAfter.Add(-RenewBefore)}
	if el, ok := m.entries[host]; ok {
		el.Value = e
		m.lru.MoveToFront(el)
		return
	}
	m.entries[host] = m.lru.PushFront(e)
	for m.lru.Len() > m.size {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.entries, old.Value.(*entry).host)
	}
}

// mint makes a leaf for a canonical host at now.
func (m *Minter) mint(host string, isIP bool, now time.Time) (*tls.Certificate, error) {
	caCert := m.ca.cert
	if !now.Before(caCert.NotAfter) {
		return nil, fmt.Errorf("certs: CA %q expired at %s; rotate it", caCert.Subject.CommonName, caCert.NotAfter.Format(time.RFC3339))
	}
	notBefore := now.Add(-Backdate)
	if notBefore.Before(caCert.NotBefore) {
		notBefore = caCert.NotBefore
	}
	notAfter := now.Add(m.lifetime)
	if notAfter.After(caCert.NotAfter) {
		// A leaf that outlives its CA would fail anyway; saying so in the
		// leaf keeps the cache from serving it past the CA.
		notAfter = caCert.NotAfter
	}
	if !notBefore.Before(notAfter) {
		return nil, fmt.Errorf("certs: CA %q is not valid until %s", caCert.Subject.CommonName, caCert.NotBefore.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf key for %s: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // an explicit CA:FALSE
	}
	if isIP {
		tmpl.IPAddresses = []net.IP{net.ParseIP(host)}
	} else {
		tmpl.DNSNames = []string{host}
	}
	if len(host) <= maxCommonNameLen {
		// For people reading the certificate; verifiers use the SAN only.
		tmpl.Subject = pkix.Name{CommonName: host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, m.ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf for %s: %w", host, err)
	}
	return &tls.Certificate{
		// The CA goes in the chain too: clients that trust it ignore it,
		// and a CA opened by ParseCA may be an intermediate, which clients
		// need to be sent.
		Certificate: [][]byte{der, caCert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// GetCertificate returns the leaf for the server name the client sent (SNI),
// for tls.Config.GetCertificate. A client that sent none gets [ErrNoSNI]:
// use [Minter.ForHost] when the host is known from elsewhere.
func (m *Minter) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, ErrNoSNI
	}
	return m.Leaf(hello.ServerName)
}

// ForHost returns a tls.Config.GetCertificate for a connection to host, the
// target of the CONNECT request, with or without its port. It mints for the
// server name the client sent when there is one, and for host otherwise:
// clients send no SNI when they connect to an IP address.
//
// The two names may differ (domain fronting): the gateway, not this
// function, decides whether a connection whose SNI is not its CONNECT host
// is inspected, refused or allowed, and which name policy applies to.
func (m *Minter) ForHost(host string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName != "" {
			return m.Leaf(hello.ServerName)
		}
		return m.Leaf(host)
	}
}
