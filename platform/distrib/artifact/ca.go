package artifact

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseCABundle reads a CA bundle (kind ca): one or more PEM CERTIFICATE
// blocks, each a CA certificate, and nothing else but white space.
func ParseCABundle(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		// pem.Decode skips text before a block; a bundle has none.
		block, after := pem.Decode(rest)
		if block == nil || !bytes.HasPrefix(rest, []byte("-----BEGIN ")) || len(block.Headers) > 0 {
			return nil, fmt.Errorf("artifact: CA bundle: certificate %d: not PEM", len(certs)+1)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("artifact: CA bundle: certificate %d: a PEM %q block, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("artifact: CA bundle: certificate %d: %w", len(certs)+1, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("artifact: CA bundle: certificate %d (%s) is not a CA certificate", len(certs)+1, c.Subject)
		}
		certs = append(certs, c)
		rest = after
	}
	if len(certs) == 0 {
		return nil, errors.New("artifact: CA bundle: no certificate")
	}
	return certs, nil
}
