package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestHandshake is the point of the package: a client that trusts the
// tenant CA, and nothing else, completes a real TLS handshake with a server
// presenting the Minter's leaves, and verifies the host name, for a DNS
// name (sent as SNI) and for an IP literal (no SNI: the host comes from
// CONNECT).
func TestHandshake(t *testing.T) {
	ca, caPEM := newCA(t, "acme", time.Now())
	m := newMinter(t, ca, MinterOptions{})
	roots := poolOf(t, caPEM)

	t.Run("DNS name", func(t *testing.T) {
		addr, _ := serveTLS(t, m.ForHost("inspect.example.com:443"))
		st, err := dialTLS(addr, "inspect.example.com", roots)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "inspect.example.com" {
			t.Errorf("leaf names %v", got)
		}
		if n := len(st.VerifiedChains); n != 1 || len(st.VerifiedChains[0]) != 2 || !st.VerifiedChains[0][1].Equal(ca.Certificate()) {
			t.Errorf("verified chains %v, want leaf → tenant CA", st.VerifiedChains)
		}
	})
	t.Run("IP literal", func(t *testing.T) {
		var addr string
		addr, _ = serveTLS(t, func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if h.ServerName != "" {
				return nil, fmt.Errorf("client sent SNI %q for an IP", h.ServerName)
			}
			return m.ForHost(addr)(h) // the CONNECT target: 127.0.0.1:port
		})
		st, err := dialTLS(addr, "", roots) // verifies against the dialled IP
		if err != nil {
			t.Fatal(err)
		}
		if got := st.PeerCertificates[0]; len(got.DNSNames) != 0 || len(got.IPAddresses) != 1 || !got.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("leaf names %v %v, want IP 127.0.0.1 only", got.DNSNames, got.IPAddresses)
		}
	})
	t.Run("client not trusting the CA", func(t *testing.T) {
		addr, _ := serveTLS(t, m.GetCertificate)
		_, otherPEM := newCA(t, "other-tenant", time.Now())
		for name, pool := range map[string]*x509.CertPool{"empty pool": x509.NewCertPool(), "another tenant's CA": poolOf(t, otherPEM)} {
			_, err := dialTLS(addr, "inspect.example.com", pool)
			if _, ok := verifyError[x509.UnknownAuthorityError](err); !ok {
				t.Errorf("%s: %v, want an unknown authority error", name, err)
			}
		}
	})
	t.Run("client checks the host name", func(t *testing.T) {
		addr, _ := serveTLS(t, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return m.Leaf("other.example.com") })
		_, err := dialTLS(addr, "inspect.example.com", roots)
		if _, ok := verifyError[x509.HostnameError](err); !ok {
			t.Errorf("%v, want a host name error", err)
		}
	})
	t.Run("no SNI and no CONNECT host", func(t *testing.T) {
		addr, serverErrs := serveTLS(t, m.GetCertificate)
		if _, err := dialTLS(addr, "", roots); err == nil {
			t.Fatal("handshake without SNI succeeded")
		}
		if err := <-serverErrs; !errors.Is(err, ErrNoSNI) {
			t.Errorf("server: %v, want ErrNoSNI", err)
		}
	})
}

func TestLeafFields(t *testing.T) {
	ca, caPEM := newCA(t, "acme", t0.Add(-24*time.Hour))
	m := newMinter(t, ca, MinterOptions{Now: func() time.Time { return t0 }})
	roots := poolOf(t, caPEM)
	for _, c := range []struct {
		host     string
		wantDNS  string
		wantIP   net.IP
		verifyAs string
	}{
		{host: "www.example.com", wantDNS: "www.example.com", verifyAs: "www.example.com"},
		{host: "WWW.Example.com.", wantDNS: "www.example.com", verifyAs: "www.example.com"},
		{host: "127.0.0.1", wantIP: net.IPv4(127, 0, 0, 1), verifyAs: "127.0.0.1"},
		{host: "2001:db8::1", wantIP: net.ParseIP("2001:db8::1"), verifyAs: "2001:db8::1"},
		{host: "::ffff:10.0.0.1", wantIP: net.IPv4(10, 0, 0, 1), verifyAs: "10.0.0.1"},
	} {
		t.Run(c.host, func(t *testing.T) {
			cert, err := m.Leaf(c.host)
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			if len(cert.Certificate) != 2 || !leaf.Equal(mustParse(t, cert.Certificate[0])) || !ca.Certificate().Equal(mustParse(t, cert.Certificate[1])) {
				t.Fatal("chain is not [leaf, CA] with Leaf parsed from it")
			}
			if c.wantDNS != "" && (len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != c.wantDNS || len(leaf.IPAddresses) != 0) {
				t.Errorf("SANs %v %v, want DNS %s only", leaf.DNSNames, leaf.IPAddresses, c.wantDNS)
			}
			if c.wantIP != nil && (len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(c.wantIP) || len(leaf.DNSNames) != 0) {
				t.Errorf("SANs %v %v, want IP %v only", leaf.DNSNames, leaf.IPAddresses, c.wantIP)
			}
			if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("ext key usage %v, want ServerAuth only", leaf.ExtKeyUsage)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage %b, want DigitalSignature", leaf.KeyUsage)
			}
			if !leaf.BasicConstraintsValid || leaf.IsCA {
				t.Error("want basic constraints CA:FALSE")
			}
			if !leaf.NotBefore.Equal(t0.Add(-Backdate)) || !leaf.NotAfter.Equal(t0.Add(DefaultLeafLifetime)) {
				t.Errorf("validity %v to %v", leaf.NotBefore, leaf.NotAfter)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", leaf.SerialNumber)
			}
			key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
			if !ok || key.Curve != elliptic.P256() || !key.PublicKey.Equal(leaf.PublicKey) {
				t.Errorf("private key %T does not match the leaf, or is not P-256", cert.PrivateKey)
			}
			if string(leaf.AuthorityKeyId) != string(ca.Certificate().SubjectKeyId) {
				t.Error("authority key ID is not the CA's subject key ID")
			}
			opts := x509.VerifyOptions{Roots: roots, DNSName: c.verifyAs, CurrentTime: t0}
			if _, err := leaf.Verify(opts); err != nil {
				t.Errorf("verify: %v", err)
			}
			opts.DNSName = "elsewhere.example.com"
			if _, err := leaf.Verify(opts); err == nil {
				t.Error("leaf verifies for another host")
			}
		})
	}
	a, _ := m.Leaf("a.example")
	b, _ := m.Leaf("b.example")
	if a.PrivateKey.(*ecdsa.PrivateKey).Equal(b.PrivateKey) {
		t.Error("two hosts share a leaf key")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLeafBoundedByCA(t *testing.T) {
	// A CA that expires 2 days after t0.
	ca, caPEM := newCA(t, "acme", t0.Add(-CALifetime+2*24*time.Hour))
	caEnd := ca.Certificate().NotAfter
	c := &clock{t: t0}
	m := newMinter(t, ca, MinterOptions{Now: c.Now})
	cert, err := m.Leaf("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(caEnd) {
		t.Errorf("leaf NotAfter %v, want the CA's %v", cert.Leaf.NotAfter, caEnd)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: poolOf(t, caPEM), DNSName: "example.com", CurrentTime: t0}); err != nil {
		t.Error(err)
	}
	// The cache does not serve it past the CA either.
	c.Set(caEnd.Add(-RenewBefore))
	if again, _ := m.Leaf("example.com"); again == cert {
		t.Error("cached leaf served within RenewBefore of the CA's expiry")
	}

	c.Set(caEnd)
	if _, err := m.Leaf("example.com"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("leaf from an expired CA: %v", err)
	}
	if _, err := m.Leaf("fresh.example.com"); err == nil {
		t.Error("minted from an expired CA")
	}

	// A CA created after "now", by a node whose clock is behind: the leaf
	// does not start before the CA.
	late, _ := newCA(t, "acme", t0.Add(30*time.Minute))
	cert, err = newMinter(t, late, MinterOptions{Now: func() time.Time { return t0 }}).Leaf("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotBefore.Equal(late.Certificate().NotBefore) {
		t.Errorf("leaf NotBefore %v, want the CA's %v", cert.Leaf.NotBefore, late.Certificate().NotBefore)
	}
	// One so far ahead that no leaf fits.
	future, _ := newCA(t, "acme", t0.Add(30*24*time.Hour))
	if _, err := newMinter(t, future, MinterOptions{Now: func() time.Time { return t0 }}).Leaf("example.com"); err == nil || !strings.Contains(err.Error(), "not valid until") {
		t.Errorf("leaf from a CA not valid for weeks: %v", err)
	}
}

func TestCacheLRU(t *testing.T) {
	ca, _ := newCA(t, "acme", t0)
	m := newMinter(t, ca, MinterOptions{CacheSize: 2, Now: func() time.Time { return t0 }})
	leaf := func(host string) *tls.Certificate {
		t.Helper()
		c, err := m.Leaf(host)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := leaf("a.example")
	b := leaf("b.example")
	if leaf("A.example.") != a { // one host, however spelled, is one entry
		t.Error("a.example missed")
	}
	leaf("c.example") // evicts b, the least recently used
	if m.Len() != 2 {
		t.Errorf("Len = %d, want 2", m.Len())
	}
	if m.mints != 3 {
		t.Errorf("%d mints, want 3", m.mints)
	}
	if leaf("a.example") != a {
		t.Error("a.example was evicted, though used after b")
	}
	if leaf("b.example") == b {
		t.Error("b.example was not evicted")
	}
	if m.mints != 4 || m.Len() != 2 {
		t.Errorf("%d mints, Len %d; want 4, 2", m.mints, m.Len())
	}
}

func TestCacheRenewsNearExpiry(t *testing.T) {
	ca, _ := newCA(t, "acme", t0)
	c := &clock{t: t0}
	m := newMinter(t, ca, MinterOptions{Now: c.Now})
	first, err := m.Leaf("example.com")
	if err != nil {
		t.Fatal(err)
	}
	renewAt := t0.Add(DefaultLeafLifetime - RenewBefore)

	c.Set(renewAt.Add(-time.Second))
	if got, _ := m.Leaf("example.com"); got != first {
		t.Fatal("re-minted more than RenewBefore ahead of expiry")
	}
	c.Set(renewAt)
	second, err := m.Leaf("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if second == first || m.mints != 2 {
		t.Fatalf("not re-minted at NotAfter-RenewBefore (%d mints)", m.mints)
	}
	if !second.Leaf.NotAfter.Equal(renewAt.Add(DefaultLeafLifetime)) {
		t.Errorf("new leaf NotAfter %v", second.Leaf.NotAfter)
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d after a renewal, want 1", m.Len())
	}
	if got, _ := m.Leaf("example.com"); got != second {
		t.Error("renewed leaf not cached")
	}
}

// TestSingleFlight holds the first mint of a host until every other caller
// for that host is waiting, then checks that they all got its leaf: one
// mint. synctest tells when every goroutine is blocked, without sleeping.
func TestSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, _ := newCA(t, "acme", time.Now())
		m := newMinter(t, ca, MinterOptions{})
		release := make(chan struct{})
		m.mintHook = func(host string) {
			if host == "slow.example" {
				<-release
			}
		}
		const n = 50
		got := make([]*tls.Certificate, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var err error
				if got[i], err = m.Leaf("slow.example"); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // one caller in the mint, the others waiting for it
		m.mu.Lock()
		mints, inflight := m.mints, len(m.inflight)
		m.mu.Unlock()
		if mints != 1 || inflight != 1 {
			t.Errorf("%d mints, %d in flight while %d callers wait; want 1, 1", mints, inflight, n)
		}
		// Another host is not held up by the slow one.
		if _, err := m.Leaf("other.example"); err != nil {
			t.Error(err)
		}
		close(release)
		wg.Wait()
		for i := range got {
			if got[i] != got[0] || got[0] == nil {
				t.Fatalf("caller %d got another leaf", i)
			}
		}
		if m.mints != 2 || m.Len() != 2 {
			t.Errorf("%d mints, Len %d; want 2, 2", m.mints, m.Len())
		}
	})
}

// TestSingleFlightError checks that callers waiting on a mint that fails
// get its error, and that the failure is not cached.
func TestSingleFlightError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, _ := newCA(t, "acme", time.Now())
		expired := ca.Certificate().NotAfter
		m := newMinter(t, ca, MinterOptions{Now: func() time.Time { return expired }})
		release := make(chan struct{})
		m.mintHook = func(string) { <-release }
		errs := make(chan error, 3)
		for range 3 {
			go func() { _, err := m.Leaf("example.com"); errs <- err }()
		}
		synctest.Wait()
		close(release)
		for range 3 {
			if err := <-errs; err == nil || !strings.Contains(err.Error(), "expired") {
				t.Errorf("waiter got %v, want the mint's error", err)
			}
		}
		if m.Len() != 0 || len(m.inflight) != 0 {
			t.Errorf("Len %d, %d in flight after a failed mint; want 0, 0", m.Len(), len(m.inflight))
		}
	})
}

func TestMintPanicReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, _ := newCA(t, "acme", time.Now())
		m := newMinter(t, ca, MinterOptions{})
		release := make(chan struct{})
		m.mintHook = func(string) {
			<-release
			panic("boom")
		}
		panicked := make(chan any)
		go func() {
			defer func() { panicked <- recover() }()
			m.Leaf("example.com")
		}()
		synctest.Wait()
		waiter := make(chan error)
		go func() { _, err := m.Leaf("example.com"); waiter <- err }()
		synctest.Wait()
		close(release)
		if p := <-panicked; p != "boom" {
			t.Errorf("panic %v did not reach the minting caller", p)
		}
		if err := <-waiter; !errors.Is(err, errMintPanicked) {
			t.Errorf("waiter got %v, want errMintPanicked", err)
		}
		m.mintHook = nil
		if _, err := m.Leaf("example.com"); err != nil {
			t.Errorf("after a panic: %v", err)
		}
	})
}

// TestConcurrentHosts runs many callers over more hosts than the cache
// holds, for the race detector, and checks each got its own host's leaf.
func TestConcurrentHosts(t *testing.T) {
	ca, _ := newCA(t, "acme", t0)
	m := newMinter(t, ca, MinterOptions{CacheSize: 5, Now: func() time.Time { return t0 }})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				host := fmt.Sprintf("h%d.example", (g+i)%12)
				c, err := m.Leaf(host)
				if err != nil {
					t.Error(err)
					return
				}
				if c.Leaf.DNSNames[0] != host {
					t.Errorf("asked for %s, got a leaf for %s", host, c.Leaf.DNSNames[0])
				}
				m.Len()
			}
		})
	}
	wg.Wait()
	if m.Len() != 5 {
		t.Errorf("Len = %d, want the cache size, 5", m.Len())
	}
}

func TestGetCertificateAndForHost(t *testing.T) {
	ca, _ := newCA(t, "acme", t0)
	m := newMinter(t, ca, MinterOptions{Now: func() time.Time { return t0 }})
	names := func(c *tls.Certificate, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		if len(c.Leaf.IPAddresses) > 0 {
			return "IP " + c.Leaf.IPAddresses[0].String()
		}
		return "DNS " + c.Leaf.DNSNames[0]
	}
	for _, c := range []struct {
		connect, sni, want string
	}{
		{"example.com:443", "", "DNS example.com"},
		{"example.com", "", "DNS example.com"},
		{"Example.COM:8443", "", "DNS example.com"},
		{"example.com:443", "sni.example", "DNS sni.example"},
		{"10.1.2.3:443", "", "IP 10.1.2.3"},
		{"[2001:db8::1]:443", "", "IP 2001:db8::1"},
		{"[2001:db8::1]", "", "IP 2001:db8::1"},
		{"2001:db8::1", "", "IP 2001:db8::1"},
		{"", "", "error: certs: malformed host \"\": empty"},
		{"bad..example:443", "", "error: certs: malformed host \"bad..example\": empty label"},
	} {
		got := names(m.ForHost(c.connect)(&tls.ClientHelloInfo{ServerName: c.sni}))
		if got != c.want {
			t.Errorf("ForHost(%q) with SNI %q: %s, want %s", c.connect, c.sni, got, c.want)
		}
	}
	if got := names(m.GetCertificate(&tls.ClientHelloInfo{ServerName: "Sni.Example"})); got != "DNS sni.example" {
		t.Errorf("GetCertificate: %s", got)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNoSNI) {
		t.Errorf("GetCertificate without SNI: %v, want ErrNoSNI", err)
	}
}

func TestNewMinterOptions(t *testing.T) {
	ca, _ := newCA(t, "acme", t0)
	m := newMinter(t, ca, MinterOptions{})
	if m.size != DefaultCacheSize || m.lifetime != DefaultLeafLifetime || m.now == nil {
		t.Errorf("defaults: size %d, lifetime %v", m.size, m.lifetime)
	}
	for _, c := range []struct {
		name string
		ca   *CA
		opts MinterOptions
		want string
	}{
		{"no CA", nil, MinterOptions{}, "needs a CA"},
		{"negative cache", ca, MinterOptions{CacheSize: -1}, "negative"},
		{"lifetime within RenewBefore", ca, MinterOptions{LeafLifetime: time.Hour}, "not more than RenewBefore"},
		{"negative lifetime", ca, MinterOptions{LeafLifetime: -time.Hour}, "not more than RenewBefore"},
		{"lifetime beyond Apple's limit", ca, MinterOptions{LeafLifetime: 826 * 24 * time.Hour}, "Apple"},
	} {
		if _, err := NewMinter(c.ca, c.opts); err == nil || !strings.HasPrefix(err.Error(), "certs: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
