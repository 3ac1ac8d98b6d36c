// Package auth is the platform's login: a SAML 2.0 service provider per
// tenant (crewjam/saml) bridged to the agent as an OAuth 2.1 native app
// (RFC 8252 loopback redirect, RFC 7636 PKCE): authorize, SAML ACS, token
// (authorization_code and refresh_token grants), revocation (RFC 7009),
// authorization server metadata (RFC 8414) and the JWKS.
//
// It decides who may log in and what tokens say; signing is package token's,
// storage package store's, the directory package directory's.
package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"vigie/platform/ratelimit"
	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/tenant"
	"vigie/platform/token"
)

// ClientID is the one OAuth client: the Vigie agent, a public native app.
const ClientID = "vigie-agent"

// Lifetimes of the login flow's records.
const (
	AuthRequestTTL = 10 * time.Minute // from authorize to the IdP's answer
	CodeTTL        = 60 * time.Second // from the ACS redirect to the code exchange
)

// Options configures a Service.
type Options struct {
	Store  store.Store
	Tokens *token.Issuer
	Sealer *secret.Sealer
	// BaseURL is the platform's public URL, without a trailing slash, for
	// example "https://vigie.example.com"; issuer, SAML entity and endpoint
	// URLs derive from it.
	BaseURL string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives transitions and refusals. Default slog.Default().
	Logger *slog.Logger
	// TokenRate and TokenBurst limit token requests per client (tenant and
	// remote address). Defaults 20 per second, burst 40.
	TokenRate  float64
	TokenBurst int
	// HTTPClient fetches IdP metadata from a URL. Default: 10 s timeout.
	HTTPClient *http.Client
}

// Service serves the login and token endpoints of every tenant.
type Service struct {
	st     store.Store
	tokens *token.Issuer
	seal   *secret.Sealer
	base   string
	now    func() time.Time
	log    *slog.Logger
	limit  *ratelimit.Keyed
	client *http.Client

	mu  sync.Mutex
	sps map[string]*tenantSP // by tenant ID
}

type tenantSP struct {
	version int64
	sp      *saml.ServiceProvider
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TokenRate <= 0 {
		o.TokenRate = 20
	}
	if o.TokenBurst <= 0 {
		o.TokenBurst = 40
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Service{st: o.Store, tokens: o.Tokens, seal: o.Sealer, base: o.BaseURL, now: o.Now, log: o.Logger,
		limit: ratelimit.New(o.TokenRate, o.TokenBurst, o.Now), client: o.HTTPClient, sps: map[string]*tenantSP{}}
}

// SPConfig is a tenant's SAML service provider material, stored in
// store.Tenant.SP. The private key is sealed.
type SPConfig struct {
	Key  []byte `json:"key"`  // sealed PKCS #8 RSA key
	Cert string `json:"cert"` // PEM certificate, self-signed
}

// IdPConfig is a tenant's identity provider, stored in store.Tenant.IdP.
type IdPConfig struct {
	MetadataURL string    `json:"metadata_url,omitempty"` // where the metadata was fetched from, if it was
	MetadataXML string    `json:"metadata_xml"`           // the metadata in use
	EntityID    string    `json:"entity_id"`
	FetchedAt   time.Time `json:"fetched_at"`
}

func spPurpose(tenantID string) string { return "saml-sp-key/" + tenantID }

// NewSPConfig makes a tenant's SAML SP key (RSA 2048, what IdPs expect) and
// a self-signed certificate for ten years; IdPs pin it from the metadata.
func (s *Service) NewSPConfig(tenantID string) (json.RawMessage, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Vigie SAML SP " + tenantID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return json.Marshal(SPConfig{
		Key:  s.seal.Seal(pk, spPurpose(tenantID)),
		Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	})
}

// ParseIdPMetadata checks IdP metadata and returns the configuration to
// store: it must parse, name an entity, offer an SSO endpoint with the
// HTTP-Redirect or HTTP-POST binding, and carry a signing certificate.
func ParseIdPMetadata(xmlData []byte, fromURL string, now time.Time) (json.RawMessage, error) {
	var ed saml.EntityDescriptor
	if err := xmlUnmarshal(xmlData, &ed); err != nil {
		return nil, fmt.Errorf("auth: IdP metadata: %w", err)
	}
	if ed.EntityID == "" {
		return nil, errors.New("auth: IdP metadata: no entityID")
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, errors.New("auth: IdP metadata: no IDPSSODescriptor (is this an IdP's metadata?)")
	}
	sso, certs := false, false
	for _, d := range ed.IDPSSODescriptors {
		for _, e := range d.SingleSignOnServices {
			sso = sso || e.Binding == saml.HTTPRedirectBinding || e.Binding == saml.HTTPPostBinding
		}
		for _, kd := range d.KeyDescriptors {
			certs = certs || (kd.Use == "" || kd.Use == "signing") && len(kd.KeyInfo.X509Data.X509Certificates) > 0
		}
	}
	if !sso {
		return nil, errors.New("auth: IdP metadata: no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding")
	}
	if !certs {
		return nil, errors.New("auth: IdP metadata: no signing certificate")
	}
	return json.Marshal(IdPConfig{MetadataURL: fromURL, MetadataXML: string(xmlData), EntityID: ed.EntityID, FetchedAt: now})
}

// FetchIdPMetadata downloads IdP metadata from a URL and checks it.
func (s *Service) FetchIdPMetadata(ctx context.Context, metadataURL string) (json.RawMessage, error) {
	// The metadata carries the certificate every sign-in is checked
	// against: fetched in clear, it could be swapped on the way. Plain http
	// is for an IdP on this machine only.
	u, err := url.Parse(metadataURL)
	if err != nil || u.Host == "" || u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return nil, fmt.Errorf("auth: IdP metadata URL %q: want an https URL (http only on a loopback address)", metadataURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: fetching IdP metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: fetching IdP metadata from %s: %s", metadataURL, resp.Status)
	}
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("auth: fetching IdP metadata: %w", err)
	}
	return ParseIdPMetadata(body, metadataURL, s.now())
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Tenant URLs.
func (s *Service) tenantURL(tenantID, path string) string {
	return token.IssuerURL(s.base, tenantID) + path
}

// serviceProvider builds (or returns the cached) SAML SP of a tenant.
func (s *Service) serviceProvider(t *store.Tenant) (*saml.ServiceProvider, error) {
	s.mu.Lock()
	c := s.sps[t.ID]
	s.mu.Unlock()
	if c != nil && c.version == t.Version {
		return c.sp, nil
	}
	var spc SPConfig
	if err := json.Unmarshal(t.SP, &spc); err != nil || len(spc.Key) == 0 {
		return nil, fmt.Errorf("auth: tenant %s has no SAML SP key", t.ID)
	}
	der, err := s.seal.Open(spc.Key, spPurpose(t.ID))
	if err != nil {
		return nil, fmt.Errorf("auth: tenant %s SAML SP key: %w", t.ID, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("auth: tenant %s SAML SP key: %w", t.ID, err)
	}
	block, _ := pem.Decode([]byte(spc.Cert))
	if block == nil {
		return nil, fmt.Errorf("auth: tenant %s SAML SP certificate is not PEM", t.ID)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: tenant %s SAML SP certificate: %w", t.ID, err)
	}
	metadataURL, _ := url.Parse(s.tenantURL(t.ID, "/saml/metadata"))
	acsURL, _ := url.Parse(s.tenantURL(t.ID, "/saml/acs"))
	sp := &saml.ServiceProvider{
		HTTPClient:        s.client,
		EntityID:          metadataURL.String(),
		Key:               k.(crypto.Signer),
		Certificate:       cert,
		MetadataURL:       *metadataURL,
		AcsURL:            *acsURL,
		SignatureMethod:   dsig.RSASHA256SignatureMethod,
		AllowIDPInitiated: false,
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat,
	}
	sp.ValidateAudienceRestriction = func(a *saml.Assertion) error { return requireAudience(a, sp.EntityID) }
	var idp IdPConfig
	if len(t.IdP) > 0 && json.Unmarshal(t.IdP, &idp) == nil && idp.MetadataXML != "" {
		var ed saml.EntityDescriptor
		if err := xmlUnmarshal([]byte(idp.MetadataXML), &ed); err != nil {
			return nil, fmt.Errorf("auth: tenant %s IdP metadata: %w", t.ID, err)
		}
		sp.IDPMetadata = &ed
	}
	s.mu.Lock()
	s.sps[t.ID] = &tenantSP{version: t.Version, sp: sp}
	s.mu.Unlock()
	return sp, nil
}

func (s *Service) audit(ctx context.Context, tenantID, actor, action, target string, detail any) {
	var raw json.RawMessage
	if detail != nil {
		raw, _ = json.Marshal(detail)
	}
	if err := s.st.Audit(ctx, &store.AuditEvent{At: s.now(), Tenant: tenantID, Actor: actor, Action: action, Target: target, Detail: raw}); err != nil {
		s.log.Error("auth: audit", "action", action, "err", err)
	}
}

// settings reads a tenant's settings; stored settings were validated when
// written, so an error here means corruption and is reported as such.
func settings(t *store.Tenant) (tenant.Settings, error) {
	st, err := tenant.Parse(t.Settings)
	if err != nil {
		return tenant.Settings{}, fmt.Errorf("auth: tenant %s: %w", t.ID, err)
	}
	return st, nil
}

// requireAudience insists on an AudienceRestriction naming this SP; crewjam
// alone accepts an assertion with none, which the SAML Web SSO profile
// does not allow.
func requireAudience(a *saml.Assertion, entityID string) error {
	if a.Conditions == nil || len(a.Conditions.AudienceRestrictions) == 0 {
		return errors.New("assertion has no AudienceRestriction")
	}
	for _, ar := range a.Conditions.AudienceRestrictions {
		if ar.Audience.Value == entityID {
			return nil
		}
	}
	return fmt.Errorf("assertion AudienceRestriction does not contain %q", entityID)
}
