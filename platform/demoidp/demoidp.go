// Package demoidp is a SAML 2.0 identity provider that runs inside the
// platform process: crewjam/saml's samlidp, with users and service providers
// added from Go. The demo uses it so that a newcomer needs no IdP of their
// own, and tests use it as a real IdP (it signs real assertions) without a
// second process.
//
// It is not for production: passwords live in memory and its admin API is
// never exposed; only metadata, single sign-on and the login form are.
package demoidp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml/logger"
	"github.com/crewjam/saml/samlidp"
)

// IdP is one in-process identity provider.
type IdP struct {
	srv *samlidp.Server
}

// KeyPair is the IdP's signing key and certificate, PEM-encoded so the demo
// can keep them across runs (tenants pin the certificate).
type KeyPair struct {
	KeyPEM  string `json:"key_pem"`
	CertPEM string `json:"cert_pem"`
}

// NewKeyPair makes an RSA 2048 key and a self-signed certificate valid for
// ten years from now.
func NewKeyPair(now time.Time) (*KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "Vigie demo IdP"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}, nil
}

// New starts an IdP whose URLs are under base (for example
// "http://127.0.0.1:8080/idp": metadata at base+"/metadata").
func New(base string, kp *KeyPair) (*IdP, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("demoidp: base URL: %w", err)
	}
	kb, _ := pem.Decode([]byte(kp.KeyPEM))
	cb, _ := pem.Decode([]byte(kp.CertPEM))
	if kb == nil || cb == nil {
		return nil, errors.New("demoidp: key pair is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("demoidp: key: %w", err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("demoidp: certificate: %w", err)
	}
	// samlidp's own login form posts to /login, which signs the user in and
	// answers with JSON, leaving the browser there. Posting the form (with
	// the AuthnRequest it carries) to /sso instead signs in and continues
	// the single sign-on, as a person expects.
	form, err := template.New("login").Parse(strings.ReplaceAll(loginForm, "SSO_URL", template.HTMLEscapeString(base+"/sso")))
	if err != nil {
		return nil, err
	}
	srv, err := samlidp.New(samlidp.Options{URL: *u, Key: key, Certificate: cert, Store: &samlidp.MemoryStore{},
		Logger: logger.DefaultLogger, LoginFormTemplate: form})
	if err != nil {
		return nil, fmt.Errorf("demoidp: %w", err)
	}
	return &IdP{srv: srv}, nil
}

const loginForm = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie demo IdP — sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24em;margin:4em auto}input{display:block;margin:.5em 0;width:100%}</style>
</head><body><h1>Demo identity provider</h1><p>{{.Toast}}</p>
<form method="post" action="SSO_URL">
<input type="text" name="user" placeholder="user (alice or bob)" autofocus>
<input type="password" name="password" placeholder="password">
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<input type="submit" value="Sign in">
</form></body></html>`

// call runs a request on the IdP's full handler, admin routes included,
// without any network.
func (i *IdP) call(method, path string, body []byte) (*httptest.ResponseRecorder, error) {
	rec := httptest.NewRecorder()
	i.srv.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
	if rec.Code >= 300 {
		return rec, fmt.Errorf("demoidp: %s %s: %d %s", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return rec, nil
}

// AddUser adds (or replaces) a user who signs in with name and password; the
// NameID the IdP asserts is email.
func (i *IdP) AddUser(name, email, password string, groups []string) error {
	body, _ := json.Marshal(map[string]any{"name": name, "email": email, "password": password, "groups": groups,
		"common_name": name})
	_, err := i.call(http.MethodPut, "/users/"+url.PathEscape(name), body)
	return err
}

// AddServiceProvider trusts an SP, given its metadata.
func (i *IdP) AddServiceProvider(id string, metadata []byte) error {
	_, err := i.call(http.MethodPut, "/services/"+url.PathEscape(id), metadata)
	return err
}

// Metadata returns the IdP's metadata document.
func (i *IdP) Metadata() ([]byte, error) {
	rec, err := i.call(http.MethodGet, "/metadata", nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(rec.Body)
}

// PublicHandler serves what a browser needs, /metadata, /sso and /login,
// relative to the IdP's base path, and nothing else.
func (i *IdP) PublicHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metadata", "/sso", "/login":
			i.srv.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
