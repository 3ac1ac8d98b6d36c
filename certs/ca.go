package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// CALifetime is how long a tenant CA is valid: 10 years of 365 days,
	// counted from its NotBefore. Rotation is routine (see [Schedule]), so
	// expiry is a backstop, not the way CAs leave: a short CA life would
	// force rotations on a calendar nobody watches.
	CALifetime = 10 * 365 * 24 * time.Hour

	// Backdate is how far before now a certificate's NotBefore is set,
	// for a CA and for a leaf alike, so that a workstation whose clock is
	// up to an hour behind the platform's still accepts it.
	Backdate = time.Hour

	// maxTenantLen is the longest tenant string NewCA takes: the tenant
	// goes in full into the organizational unit, whose upper bound is 64
	// characters (RFC 5280, appendix A.1); strict verifiers refuse longer.
	maxTenantLen = 64

	// maxCommonNameLen is the same upper bound for the common name.
	maxCommonNameLen = 64
)

// CA is a certificate authority opened for signing leaves. It is read-only
// and safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Certificate returns the CA's certificate. The caller must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// NewCA creates a tenant's CA at now: a self-signed ECDSA P-256 certificate
// with CA:TRUE and path length 0 (it signs leaves, never another CA),
// key usage CertSign, CRLSign and DigitalSignature, a random 128-bit serial,
// and validity from now-[Backdate] for [CALifetime]. It has no name
// constraints: the gateway inspects whatever host a user visits.
//
// The subject names Vigie and the tenant, and the common name carries the
// creation minute, because during a rotation a workstation trusts two CAs
// of the same tenant and a person reading the trust store must tell them
// apart.
//
// It returns the certificate as PEM and the private key as PKCS #8 DER,
// which the caller seals before storing.
func NewCA(tenant string, now time.Time) (certPEM []byte, keyPKCS8 []byte, err error) {
	if err := checkTenant(tenant); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notBefore := now.Add(-Backdate)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"Vigie"},
			OrganizationalUnit: []string{tenant},
			CommonName:         commonName(tenant, now),
		},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // without it, MaxPathLen 0 means "no limit"
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyDER, nil
}

func checkTenant(tenant string) error {
	switch {
	case tenant == "":
		return errors.New("certs: tenant is empty")
	case len(tenant) > maxTenantLen:
		return fmt.Errorf("certs: tenant %.20q… is longer than %d bytes", tenant, maxTenantLen)
	case !utf8.ValidString(tenant):
		return fmt.Errorf("certs: tenant %q is not valid UTF-8", tenant)
	}
	for _, r := range tenant {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("certs: tenant %q has a non-printable character", tenant)
		}
	}
	return nil
}

// commonName is "Vigie <tenant> CA <creation minute, UTC>", with the tenant
// cut (on a character boundary) when the whole would pass 64 bytes; the
// organizational unit keeps it whole.
func commonName(tenant string, now time.Time) string {
	const prefix, infix = "Vigie ", " CA "
	stamp := now.UTC().Format("2006-01-02T15:04Z")
	room := maxCommonNameLen - len(prefix) - len(infix) - len(stamp)
	if len(tenant) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(tenant[cut]) {
			cut--
		}
		tenant = tenant[:cut]
	}
	return prefix + tenant + infix + stamp
}

// serialLimit is 2^128: serials are 128 random bits, more than the 64 that
// the CA/Browser Forum asks for, so that two certificates never share an
// issuer and serial even across a tenant's CAs.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("certs: serial number: %w", err)
		}
		if n.Sign() > 0 { // RFC 5280 wants a positive serial; 0 comes once in 2^128
			return n, nil
		}
	}
}

// ParseCA opens a CA for signing from its PEM certificate and PKCS #8 DER
// private key, as [NewCA] returned them. It refuses a certificate that is
// not a CA (basic constraints CA:TRUE, and CertSign when key usage is set),
// a key that is not the certificate's, and keys not every client verifies
// a chain with (only ECDSA P-256 or P-384, and RSA of 2048 bits or more). It
// does not check validity dates: [Minter.Leaf] does, at the time it signs.
func ParseCA(certPEM, keyPKCS8 []byte) (*CA, error) {
	block, rest := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("certs: CA certificate: no PEM block found")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certs: CA certificate: PEM block is %q, want \"CERTIFICATE\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		// A second certificate would be silently ignored; better to say so.
		return nil, errors.New("certs: CA certificate: more than one PEM block; pass the CA certificate alone")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("certs: certificate %q is not a CA (no basic constraints CA:TRUE)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certs: CA %q may not sign certificates (key usage lacks CertSign)", cert.Subject.CommonName)
	}
	if len(keyPKCS8) == 0 {
		return nil, errors.New("certs: CA key is empty")
	}
	if bytes.HasPrefix(bytes.TrimSpace(keyPKCS8), []byte("-----BEGIN")) {
		return nil, errors.New("certs: CA key is PEM; pass the PKCS #8 DER bytes inside it")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyPKCS8)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key is not a PKCS #8 DER private key: %w", err)
	}
	var key crypto.Signer
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			// The curves every TLS stack verifies: Chromium has no P-224,
			// and not every stack has P-521.
			return nil, fmt.Errorf("certs: CA key is ECDSA on %s; want P-256 or P-384", k.Curve.Params().Name)
		}
		key = k
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			// Apple platforms refuse TLS chains with smaller RSA keys.
			return nil, fmt.Errorf("certs: CA key is RSA-%d; want at least 2048 bits", k.N.BitLen())
		}
		key = k
	default:
		// Ed25519 parses, but no browser verifies an Ed25519 certificate.
		return nil, fmt.Errorf("certs: CA key is %T; want ECDSA or RSA, which browsers verify", parsed)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("certs: CA key does not match certificate %q", cert.Subject.CommonName)
	}
	return &CA{cert: cert, key: key}, nil
}
