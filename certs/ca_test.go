package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	certPEM, keyDER, err := NewCA("acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("certificate PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		t.Errorf("basic constraints: valid %v CA %v pathlen %d zero %v, want CA:TRUE pathlen 0",
			cert.BasicConstraintsValid, cert.IsCA, cert.MaxPathLen, cert.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; cert.KeyUsage != want {
		t.Errorf("key usage %b, want %b", cert.KeyUsage, want)
	}
	if len(cert.ExtKeyUsage) != 0 {
		t.Errorf("ext key usage %v, want none (a CA with EKUs constrains its leaves)", cert.ExtKeyUsage)
	}
	if cert.PermittedDNSDomains != nil || cert.ExcludedDNSDomains != nil || cert.PermittedIPRanges != nil {
		t.Error("name constraints present, want none")
	}
	if got := cert.Subject; len(got.Organization) != 1 || got.Organization[0] != "Vigie" ||
		len(got.OrganizationalUnit) != 1 || got.OrganizationalUnit[0] != "acme" ||
		got.CommonName != "Vigie acme CA 2026-03-01T12:00Z" {
		t.Errorf("subject %v", got)
	}
	if !bytes.Equal(cert.RawSubject, cert.RawIssuer) {
		t.Error("not self-issued")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if len(cert.SubjectKeyId) == 0 {
		t.Error("no subject key ID: leaves would have no authority key ID to find their CA by")
	}
	if !cert.NotBefore.Equal(t0.Add(-time.Hour)) || !cert.NotAfter.Equal(t0.Add(-time.Hour).Add(CALifetime)) {
		t.Errorf("validity %v to %v", cert.NotBefore, cert.NotAfter)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v, want positive, at most 128 bits", cert.SerialNumber)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
	}
	if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithm %v", cert.SignatureAlgorithm)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		t.Fatalf("key is not PKCS #8 DER: %v", err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Error("key does not match certificate")
	}

	// A second CA of the same tenant, a minute later, is told apart.
	certPEM2, _, err := NewCA("acme", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := pem.Decode(certPEM2)
	cert2, _ := x509.ParseCertificate(b2.Bytes)
	if cert2.Subject.CommonName == cert.Subject.CommonName || cert2.SerialNumber.Cmp(cert.SerialNumber) == 0 ||
		bytes.Equal(cert2.SubjectKeyId, cert.SubjectKeyId) {
		t.Errorf("two CAs of a tenant share a name, serial or key ID: %q", cert2.Subject.CommonName)
	}
}

func TestNewCATenant(t *testing.T) {
	long := strings.Repeat("t", 64)
	certPEM, _, err := NewCA(long, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(b.Bytes)
	if cn := cert.Subject.CommonName; len(cn) > 64 || !strings.HasPrefix(cn, "Vigie tttt") || !strings.HasSuffix(cn, " CA 2026-03-01T12:00Z") {
		t.Errorf("common name %q (%d bytes)", cn, len(cn))
	}
	if cert.Subject.OrganizationalUnit[0] != long {
		t.Errorf("organizational unit %q, want the whole tenant", cert.Subject.OrganizationalUnit[0])
	}
	// A multi-byte character is not cut in half.
	if cn := commonName(strings.Repeat("é", 30), t0); len(cn) > 64 || !strings.HasSuffix(cn, "é CA 2026-03-01T12:00Z") {
		t.Errorf("common name %q", cn)
	}

	for _, bad := range []string{"", strings.Repeat("t", 65), "a\x00b", "line\nbreak", "\xff"} {
		if _, _, err := NewCA(bad, t0); err == nil || !strings.HasPrefix(err.Error(), "certs: tenant") {
			t.Errorf("NewCA(%q): %v, want a tenant error", bad, err)
		}
	}
}

// selfSigned makes a self-signed certificate from tmpl for key, in PEM, and
// the key in PKCS #8 DER.
func selfSigned(t *testing.T, tmpl *x509.Certificate, key crypto.Signer) ([]byte, []byte) {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(7)
	tmpl.NotBefore, tmpl.NotAfter = t0, t0.AddDate(1, 0, 0)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k
}

func TestParseCARefuses(t *testing.T) {
	caPEM, caKey, err := NewCA("acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := NewCA("acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	// A leaf, with its own key: a real certificate, but not a CA.
	ca, err := ParseCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := newMinter(t, ca, MinterOptions{Now: func() time.Time { return t0 }}).Leaf("leaf.example")
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	leafKey, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	// A CA certificate whose key usage forbids signing certificates.
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noSignPEM, noSignKey := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "no sign"},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature}, ecKey)
	// A CA no browser verifies leaves of.
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edPEM, edKeyDER := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ed25519"},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}, edKey)
	// A CA on a curve Chromium does not verify.
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p521PEM, p521Key := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "p521"},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}, p521)
	// A CA with no basic constraints at all (a v1-style certificate).
	noBCPEM, noBCKey := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "no bc"}}, ecKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey})

	for _, c := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"leaf certificate", leafPEM, leafKey, "is not a CA"},
		{"no basic constraints", noBCPEM, noBCKey, "is not a CA"},
		{"no CertSign", noSignPEM, noSignKey, "lacks CertSign"},
		{"mismatched key", caPEM, otherKey, "does not match"},
		{"Ed25519", edPEM, edKeyDER, "want ECDSA or RSA"},
		{"P-521", p521PEM, p521Key, "want P-256 or P-384"},
		{"empty certificate", nil, caKey, "no PEM block"},
		{"garbage certificate", []byte("not a certificate"), caKey, "no PEM block"},
		{"key where the certificate goes", keyPEM, caKey, `PEM block is "PRIVATE KEY"`},
		{"garbage in the PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}), caKey, "certs: CA certificate: x509"},
		{"a bundle", append(append([]byte{}, caPEM...), caPEM...), caKey, "more than one PEM block"},
		{"empty key", caPEM, nil, "key is empty"},
		{"garbage key", caPEM, []byte("garbage"), "not a PKCS #8 DER private key"},
		{"PEM key", caPEM, keyPEM, "key is PEM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca, err := ParseCA(c.cert, c.key)
			if err == nil || ca != nil {
				t.Fatalf("ParseCA accepted it")
			}
			if !strings.HasPrefix(err.Error(), "certs: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParseCAAcceptsRSA(t *testing.T) {
	// An organisation may bring its own CA; RSA is what most have.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyDER := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "corp root"},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}, rsaKey)
	ca, err := ParseCA(certPEM, keyDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := newMinter(t, ca, MinterOptions{Now: func() time.Time { return t0.Add(time.Hour) }}).Leaf("rsa.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: poolOf(t, certPEM), DNSName: "rsa.example", CurrentTime: t0.Add(time.Hour)}); err != nil {
		t.Error(err)
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyDER = selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "small root"},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}, small)
	if _, err := ParseCA(certPEM, keyDER); err == nil || !strings.Contains(err.Error(), "RSA-1024") {
		t.Errorf("RSA-1024 CA: %v, want a refusal", err)
	}
}

// FuzzParseCA checks that ParseCA never panics, and that whatever it
// accepts is a CA whose key is its own.
func FuzzParseCA(f *testing.F) {
	certPEM, key, err := NewCA("fuzz", t0)
	if err != nil {
		f.Fatal(err)
	}
	_, otherKey, _ := NewCA("fuzz", t0)
	f.Add(certPEM, key)
	f.Add(certPEM, otherKey)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), key)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, key []byte) {
		ca, err := ParseCA(certPEM, key)
		if err != nil {
			if ca != nil || !strings.HasPrefix(err.Error(), "certs: ") {
				t.Fatalf("ParseCA: %v, %v", ca, err)
			}
			return
		}
		if !ca.cert.IsCA || !ca.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.cert.PublicKey) {
			t.Fatal("accepted a certificate that is not a CA, or a key that is not its own")
		}
	})
}
