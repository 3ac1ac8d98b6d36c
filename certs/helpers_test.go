package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests that do not need the real clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newCA creates and opens a CA for tenant at now.
func newCA(tb testing.TB, tenant string, now time.Time) (*CA, []byte) {
	tb.Helper()
	certPEM, key, err := NewCA(tenant, now)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := ParseCA(certPEM, key)
	if err != nil {
		tb.Fatal(err)
	}
	return ca, certPEM
}

func newMinter(tb testing.TB, ca *CA, opts MinterOptions) *Minter {
	tb.Helper()
	m, err := NewMinter(ca, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// poolOf is a pool holding only the given PEM certificates.
func poolOf(tb testing.TB, pems ...[]byte) *x509.CertPool {
	tb.Helper()
	p := x509.NewCertPool()
	for _, b := range pems {
		if !p.AppendCertsFromPEM(b) {
			tb.Fatalf("no certificate in %q", b)
		}
	}
	return p
}

// clock is a settable clock for Minter.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// serveTLS starts a TLS server on loopback whose certificates come from
// getCert. Each connection completes its handshake, gets one byte, and is
// closed; handshake errors go to the returned channel (it never blocks the
// server: errors beyond its buffer are dropped).
func serveTLS(tb testing.TB, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (string, <-chan error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &tls.Config{
		GetCertificate: getCert,
		// Every handshake a full one: resumption would skip the
		// certificate, and the benchmarks measure it.
		SessionTicketsDisabled: true,
	}
	tl := tls.NewListener(ln, cfg)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return // listener closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				c.Write([]byte{1})
			}()
		}
	}()
	tb.Cleanup(func() {
		tl.Close()
		wg.Wait()
	})
	return ln.Addr().String(), errs
}

// dialTLS makes one full handshake to addr as a client trusting roots
// only, and reads the server's byte.
func dialTLS(addr, serverName string, roots *x509.CertPool) (tls.ConnectionState, error) {
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: serverName}}
	d.NetDialer = &net.Dialer{Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.(*tls.Conn).ConnectionState(), nil
}

// verifyError digs the x509 reason out of a handshake error.
func verifyError[E error](err error) (E, bool) {
	var e E
	ok := errors.As(err, &e)
	return e, ok
}
