package distrib_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/pac"
	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
	"vigie/platform/platformtest"
	"vigie/platform/store/storetest"
)

// env is a running platform and an administrator's client for it.
type env struct {
	t *testing.T
	p *platformtest.Platform
}

func start(t *testing.T, o platformtest.Options) *env {
	return &env{t: t, p: platformtest.Start(t, o)}
}

// admin calls the admin API and returns the status and body.
func (e *env) admin(method, path, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.p.BaseURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.p.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// adminOK calls the admin API and decodes a 2xx answer into out.
func (e *env) adminOK(method, path, body string, out any) {
	e.t.Helper()
	status, data := e.admin(method, path, body)
	if status/100 != 2 {
		e.t.Fatalf("%s %s: %d %s", method, path, status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

func (e *env) distributionKey() ed25519.PublicKey {
	e.t.Helper()
	var out struct {
		PublicKey string `json:"public_key"`
	}
	e.adminOK("GET", "/api/v1/tenants/"+e.p.Tenant+"/distribution-key", "", &out)
	pub, err := base64.StdEncoding.DecodeString(out.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		e.t.Fatalf("distribution key %q", out.PublicKey)
	}
	return pub
}

func (e *env) newSecret(name string) string {
	e.t.Helper()
	var out struct {
		Secret string `json:"secret"`
	}
	e.adminOK("POST", "/api/v1/tenants/"+e.p.Tenant+"/enrollment-secrets", `{"name":"`+name+`"}`, &out)
	if out.Secret == "" {
		e.t.Fatal("no secret in the answer")
	}
	return out.Secret
}

// enrollRaw posts an enrolment request.
func (e *env) enrollRaw(body string) (int, []byte) {
	e.t.Helper()
	resp, err := http.Post(e.p.BaseURL+"/api/v1/enroll", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// device is an enrolled device.
type device struct {
	id   string
	priv ed25519.PrivateKey
}

func enrollBody(tenant, secret string, pub ed25519.PublicKey) string {
	b, _ := json.Marshal(distrib.EnrollRequest{Tenant: tenant, Secret: secret, PublicKey: base64.StdEncoding.EncodeToString(pub), Hostname: "pc-1", OS: "linux"})
	return string(b)
}

func (e *env) enroll(secret string) *device {
	e.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	status, data := e.enrollRaw(enrollBody(e.p.Tenant, secret, pub))
	var out distrib.EnrollResponse
	if status != http.StatusCreated || json.Unmarshal(data, &out) != nil || out.DeviceID == "" {
		e.t.Fatalf("enrol: %d %s", status, data)
	}
	return &device{id: out.DeviceID, priv: priv}
}

// claims are a device token's claims before signing; tests change them.
type claims struct {
	jwt.RegisteredClaims
}

func (e *env) goodClaims(d *device) *claims { return e.claimsFor(e.p.BaseURL, e.p.Tenant, d) }

func (e *env) claimsFor(base, tenant string, d *device) *claims {
	now := time.Now()
	return &claims{jwt.RegisteredClaims{Issuer: d.id, Subject: d.id, Audience: jwt.ClaimStrings{distrib.Audience(base, tenant)},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Minute)), ID: rand.Text()}}
}

func sign(t *testing.T, c *claims, priv ed25519.PrivateKey) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) token(d *device) string { return sign(e.t, e.goodClaims(d), d.priv) }

// fetch gets an artifact with an Authorization header value and an
// If-None-Match (when not empty).
func (e *env) fetch(kind, auth, inm string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.p.URL("/agent/"+kind), nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// open fetches an artifact as device d and verifies it with pub.
func (e *env) open(d *device, pub ed25519.PublicKey, kind string) (*artifact.Envelope, string) {
	e.t.Helper()
	resp, body := e.fetch(kind, distrib.DeviceScheme+" "+e.token(d), "")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("fetch %s: %d %s", kind, resp.StatusCode, body)
	}
	env, err := artifact.Open(body, pub, kind, e.p.Tenant)
	if err != nil {
		e.t.Fatalf("fetch %s: %v", kind, err)
	}
	if etag := resp.Header.Get("ETag"); etag != artifact.ETag(body) {
		e.t.Errorf("fetch %s: ETag %s, want the body's %s", kind, etag, artifact.ETag(body))
	}
	return env, resp.Header.Get("ETag")
}

// noNetwork is what tests give the PAC engine: DNS answers nothing.
var noNetwork = pac.Options{Resolver: pac.StaticResolver{}, CacheTTL: -1}

func TestEnrollAndFetch(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testEnrollAndFetch(t, platformtest.Options{}) })
	t.Run("PostgreSQL", func(t *testing.T) { testEnrollAndFetch(t, platformtest.Options{Store: storetest.Postgres(t)}) })
}

func testEnrollAndFetch(t *testing.T, o platformtest.Options) {
	e := start(t, o)
	pub := e.distributionKey()
	if again := e.distributionKey(); !again.Equal(pub) {
		t.Fatal("the distribution key changed between two reads")
	}
	d := e.enroll(e.newSecret("msi"))

	var devices struct {
		Devices []struct {
			ID, Hostname, OS string
			Secret           string `json:"enrollment_secret"`
		} `json:"devices"`
	}
	e.adminOK("GET", "/api/v1/tenants/demo/devices", "", &devices)
	if len(devices.Devices) != 1 || devices.Devices[0].ID != d.id || devices.Devices[0].Hostname != "pc-1" || devices.Devices[0].Secret != "msi" {
		t.Fatalf("devices: %+v", devices)
	}

	// Configuration: the defaults, and the platform's gateway and URL.
	env, etag := e.open(d, pub, artifact.KindConfig)
	if env.Version != 1 || env.IssuedAt.IsZero() {
		t.Errorf("config version %d issued %v", env.Version, env.IssuedAt)
	}
	c, err := artifact.ParseConfig(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := artifact.DefaultConfig()
	want.Gateway, want.PlatformURL = e.p.GatewayAddr, e.p.BaseURL
	if c != want {
		t.Errorf("config = %+v, want %+v", c, want)
	}

	// If-None-Match: 304 for the current ETag (weak or in a list), the
	// whole envelope for anything else; the same bytes each time.
	for inm, wantStatus := range map[string]int{etag: 304, "W/" + etag: 304, `"x", ` + etag: 304, "*": 304, `"x"`: 200} {
		resp, body := e.fetch(artifact.KindConfig, distrib.DeviceScheme+" "+e.token(d), inm)
		if resp.StatusCode != wantStatus || resp.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, ETag %s", inm, resp.StatusCode, resp.Header.Get("ETag"))
		}
		if wantStatus == 304 && len(body) != 0 {
			t.Errorf("If-None-Match %s: a 304 with a body", inm)
		}
		if wantStatus == 200 && artifact.ETag(body) != etag {
			t.Errorf("the envelope's bytes changed between two fetches")
		}
	}

	// PAC: the default sends the world to the gateway and the local
	// network DIRECT, without DNS.
	env, _ = e.open(d, pub, artifact.KindPAC)
	script, err := pac.New(env.Payload, noNetwork)
	if err != nil {
		t.Fatalf("default PAC: %v", err)
	}
	for url, want := range map[string]string{
		"https://www.example.com/":  "PROXY " + e.p.GatewayAddr,
		"http://93.184.216.34/":     "PROXY " + e.p.GatewayAddr,
		"http://intranet/":          "DIRECT",
		"http://printer.local/":     "DIRECT",
		"http://localhost:8080/":    "DIRECT",
		"http://10.1.2.3/":          "DIRECT",
		"http://172.20.0.1/":        "DIRECT",
		"http://192.168.1.1/":       "DIRECT",
		"http://[fd00::1]/":         "DIRECT",
		"http://[2001:db8::1]:8080": "PROXY " + e.p.GatewayAddr,
	} {
		host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if h, _, ok := strings.Cut(strings.TrimPrefix(host, "["), "]"); ok {
			host = h
		} else {
			host, _, _ = strings.Cut(host, ":")
		}
		res, err := script.Eval(context.Background(), url, host)
		if err != nil || res.Raw != want {
			t.Errorf("default PAC for %s: %q, %v; want %q", url, res.Raw, err, want)
		}
	}

	// CA bundle: what /t/{tenant}/ca.pem publishes.
	env, _ = e.open(d, pub, artifact.KindCA)
	resp, err := http.Get(e.p.URL("/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(env.Payload, caPEM) {
		t.Errorf("CA bundle differs from ca.pem")
	}
	if cas, err := artifact.ParseCABundle(env.Payload); err != nil || len(cas) != 1 {
		t.Errorf("CA bundle: %d certificates, %v", len(cas), err)
	}

	// Release: the empty manifest.
	env, _ = e.open(d, pub, artifact.KindRelease)
	if string(env.Payload) != `{"version":"","platforms":{}}` {
		t.Errorf("release = %s", env.Payload)
	}

	// Unknown kinds.
	if resp, _ := e.fetch("binary", distrib.DeviceScheme+" "+e.token(d), ""); resp.StatusCode != 404 {
		t.Errorf("unknown kind: %d", resp.StatusCode)
	}

	// The enrolment is audited.
	if !e.audited("device.enroll", d.id) {
		t.Error("no device.enroll audit event")
	}
}

// audited reports whether the demo tenant's audit log has action on target.
func (e *env) audited(action, target string) bool {
	e.t.Helper()
	var out struct {
		Events []struct{ Action, Target string } `json:"events"`
	}
	e.adminOK("GET", "/api/v1/tenants/demo/audit?limit=1000", "", &out)
	for _, ev := range out.Events {
		if ev.Action == action && (target == "" || ev.Target == target) {
			return true
		}
	}
	return false
}

func TestDeviceAuthRefusals(t *testing.T) {
	e := start(t, platformtest.Options{})
	secret := e.newSecret("msi")
	d := e.enroll(secret)
	other := e.enroll(secret)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	change := func(f func(c *claims)) string {
		c := e.goodClaims(d)
		f(c)
		return distrib.DeviceScheme + " " + sign(t, c, d.priv)
	}
	hs256, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, e.goodClaims(d)).SignedString([]byte(d.priv.Public().(ed25519.PublicKey)))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, e.goodClaims(d)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	withJWK := jwt.NewWithClaims(jwt.SigningMethodEdDSA, e.goodClaims(d))
	withJWK.Header["jwk"] = map[string]string{"kty": "OKP"}
	jwkTok, _ := withJWK.SignedString(d.priv)

	for name, auth := range map[string]string{
		"no header":     "",
		"bearer scheme": "Bearer " + e.token(d),
		"garbage":       distrib.DeviceScheme + " not-a-jwt",
		"expired": change(func(c *claims) {
			c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now.Add(-10*time.Minute)), jwt.NewNumericDate(now.Add(-7*time.Minute))
		}),
		"future": change(func(c *claims) {
			c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now.Add(10*time.Minute)), jwt.NewNumericDate(now.Add(12*time.Minute))
		}),
		"too long":          change(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(6 * time.Minute)) }),
		"no exp":            change(func(c *claims) { c.ExpiresAt = nil }),
		"no iat":            change(func(c *claims) { c.IssuedAt = nil }),
		"no jti":            change(func(c *claims) { c.ID = "" }),
		"sub not iss":       change(func(c *claims) { c.Subject = other.id }),
		"other tenant aud":  change(func(c *claims) { c.Audience = jwt.ClaimStrings{distrib.Audience(e.p.BaseURL, "acme")} }),
		"gateway aud":       change(func(c *claims) { c.Audience = jwt.ClaimStrings{e.p.URL("/gateway")} }),
		"other platform":    change(func(c *claims) { c.Audience = jwt.ClaimStrings{distrib.Audience("https://vigie.example", e.p.Tenant)} }),
		"no aud":            change(func(c *claims) { c.Audience = nil }),
		"other device's id": change(func(c *claims) { c.Issuer, c.Subject = other.id, other.id }),
		"unknown device":    change(func(c *claims) { c.Issuer, c.Subject = "dnope", "dnope" }),
		"stranger's key":    distrib.DeviceScheme + " " + sign(t, e.goodClaims(d), stranger),
		"HS256 with pubkey": distrib.DeviceScheme + " " + hs256,
		"alg none":          distrib.DeviceScheme + " " + none,
		"jwk header":        distrib.DeviceScheme + " " + jwkTok,
	} {
		resp, body := e.fetch(artifact.KindPAC, auth, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), distrib.DeviceScheme) {
			t.Errorf("%s: %d %s, want 401 with a challenge", name, resp.StatusCode, body)
		}
	}
	// The same token works before revocation, and is refused after.
	good := distrib.DeviceScheme + " " + e.token(d)
	if resp, body := e.fetch(artifact.KindPAC, good, ""); resp.StatusCode != 200 {
		t.Fatalf("good token: %d %s", resp.StatusCode, body)
	}
	e.adminOK("POST", "/api/v1/tenants/demo/devices/"+d.id+"/revoke", "", nil)
	if resp, body := e.fetch(artifact.KindPAC, good, ""); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "revoked") {
		t.Errorf("revoked device: %d %s, want 403", resp.StatusCode, body)
	}
	// A token from a stranger naming the revoked device learns nothing.
	c := e.goodClaims(d)
	if resp, _ := e.fetch(artifact.KindPAC, distrib.DeviceScheme+" "+sign(t, c, stranger), ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stranger's token for a revoked device: %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.fetch(artifact.KindPAC, distrib.DeviceScheme+" "+e.token(other), ""); resp.StatusCode != 200 {
		t.Errorf("revoking one device refused another: %d", resp.StatusCode)
	}
	if !e.audited("device.revoke", d.id) {
		t.Error("no device.revoke audit event")
	}
}

func TestEnrollRefusals(t *testing.T) {
	e := start(t, platformtest.Options{})
	secret := e.newSecret("msi")
	revoked := e.newSecret("old")
	e.adminOK("DELETE", "/api/v1/tenants/demo/enrollment-secrets/old", "", nil)
	if status, _ := e.admin("DELETE", "/api/v1/tenants/demo/enrollment-secrets/old", ""); status != 404 {
		t.Errorf("deleting a deleted secret: %d", status)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.StdEncoding.EncodeToString(pub)

	for name, tc := range map[string]struct {
		body   string
		status int
		msg    string
	}{
		"wrong secret":     {enrollBody("demo", "wrong", pub), 403, "enrolment secret is unknown or revoked"},
		"revoked secret":   {enrollBody("demo", revoked, pub), 403, "enrolment secret is unknown or revoked"},
		"unknown tenant":   {enrollBody("acme", secret, pub), 403, "enrolment secret is unknown or revoked"},
		"bad tenant":       {enrollBody("Bad Tenant", secret, pub), 400, "tenant:"},
		"no secret":        {enrollBody("demo", "", pub), 400, "secret:"},
		"short key":        {enrollBody("demo", secret, pub[:31]), 400, "public_key:"},
		"zero key":         {enrollBody("demo", secret, make([]byte, 32)), 400, "public_key:"},
		"url base64":       {`{"tenant":"demo","secret":"` + secret + `","public_key":"` + base64.RawURLEncoding.EncodeToString(pub) + `","hostname":"h","os":"linux"}`, 400, "public_key:"},
		"no hostname":      {`{"tenant":"demo","secret":"` + secret + `","public_key":"` + b64 + `","os":"linux"}`, 400, "hostname:"},
		"control in os":    {`{"tenant":"demo","secret":"` + secret + `","public_key":"` + b64 + `","hostname":"h","os":"lin\u0000ux"}`, 400, "os:"},
		"unknown field":    {`{"tenant":"demo","secret":"` + secret + `","public_key":"` + b64 + `","hostname":"h","os":"linux","admin":true}`, 400, "unknown field"},
		"not json":         {`tenant=demo`, 400, "body:"},
		"enrolled already": {"", 400, "enrolled already"},
	} {
		body := tc.body
		if name == "enrolled already" {
			if status, data := e.enrollRaw(enrollBody("demo", secret, pub)); status != 201 {
				t.Fatalf("first enrolment: %d %s", status, data)
			}
			body = enrollBody("demo", secret, pub)
		}
		status, data := e.enrollRaw(body)
		if status != tc.status || !strings.Contains(string(data), tc.msg) {
			t.Errorf("%s: %d %s, want %d mentioning %q", name, status, data, tc.status, tc.msg)
		}
	}
	if !e.audited("device.enroll_refused", "") {
		t.Error("refused enrolments are not audited")
	}

	// Rate limit per remote address: a burst, then 429 with Retry-After.
	limited := false
	for range 100 {
		resp, err := http.Post(e.p.BaseURL+"/api/v1/enroll", "application/json", strings.NewReader(enrollBody("demo", "wrong", pub)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp.Header.Get("Retry-After") != ""
			break
		}
	}
	if !limited {
		t.Error("100 enrolments in a row from one address were not rate limited")
	}
}

// adminView is the admin API's answer to a change of an artifact.
type adminView struct {
	Version int64  `json:"version"`
	Author  string `json:"author"`
	Changed bool   `json:"changed"`
}

func TestAdminPAC(t *testing.T) {
	e := start(t, platformtest.Options{})
	pub := e.distributionKey()
	d := e.enroll(e.newSecret("msi"))
	def, etag := e.open(d, pub, artifact.KindPAC)

	// A syntax error is refused with the engine's message: line and column.
	bad := "function FindProxyForURL(url, host) {\n  if (host == \"a\") {\n    return \"DIRECT\"\n  \n"
	status, body := e.admin("PUT", "/api/v1/tenants/demo/pac", bad)
	if status != 400 || !strings.Contains(string(body), "proxy.pac:5:") {
		t.Errorf("PUT a broken PAC: %d %s, want 400 naming line 5", status, body)
	}
	status, body = e.admin("PUT", "/api/v1/tenants/demo/pac", "var x = 1;")
	if status != 400 || !strings.Contains(string(body), "FindProxyForURL") {
		t.Errorf("PUT a PAC without FindProxyForURL: %d %s", status, body)
	}
	// A script that looks names up while loading does not make the
	// platform resolve them (the check runs with no DNS).
	status, body = e.admin("PUT", "/api/v1/tenants/demo/pac", `var ip = dnsResolve("example.com"); function FindProxyForURL(u, h) { return ip ? "DIRECT" : "PROXY x:1"; }`)
	if status != 200 {
		t.Errorf("PUT a PAC that resolves while loading: %d %s", status, body)
	}

	src := "function FindProxyForURL(url, host) { return \"PROXY gw.example:3128; DIRECT\"; }\n"
	var v adminView
	e.adminOK("PUT", "/api/v1/tenants/demo/pac", src, &v)
	if !v.Changed || v.Version != def.Version+2 || v.Author != "admin" {
		t.Errorf("PUT PAC: %+v", v)
	}
	e.adminOK("PUT", "/api/v1/tenants/demo/pac", src, &v)
	if v.Changed || v.Version != def.Version+2 {
		t.Errorf("PUT the same PAC again: %+v, want no new version", v)
	}
	status, body = e.admin("GET", "/api/v1/tenants/demo/pac", "")
	if status != 200 || string(body) != src {
		t.Errorf("GET PAC: %d %q", status, body)
	}

	resp, _ := e.fetch(artifact.KindPAC, distrib.DeviceScheme+" "+e.token(d), etag)
	if resp.StatusCode != 200 {
		t.Fatalf("fetch with the old ETag after a change: %d", resp.StatusCode)
	}
	got, _ := e.open(d, pub, artifact.KindPAC)
	if got.Version != v.Version || string(got.Payload) != src {
		t.Errorf("agents get version %d %q", got.Version, got.Payload)
	}
	if !e.audited("pac.update", fmt.Sprint(v.Version)) {
		t.Error("no pac.update audit event")
	}
}

func TestAdminAgentConfig(t *testing.T) {
	e := start(t, platformtest.Options{})
	pub := e.distributionKey()
	d := e.enroll(e.newSecret("msi"))
	for body, want := range map[string]string{
		`{"continuity":"maybe"}`:                    "continuity: want",
		`{"gateway":"gw.example:3128"}`:             "gateway: set by the platform",
		`{"platform_url":"https://x.example"}`:      "platform_url: set by the platform",
		`{"probe_interval":"0s"}`:                   "probe_interval: 0s is outside",
		`{"probe_interval":"soon"}`:                 "probe_interval: want a duration",
		`{"sync_interval":5}`:                       "sync_interval: want a duration",
		`{"sync_interval":"48h"}`:                   "sync_interval: 48h0m0s is outside",
		`{"portal_check_url":"ftp://x.example/"}`:   "portal_check_url: want an absolute http",
		`{"continuity":"fail-open","colour":"red"}`: `unknown field \"colour\"`,
		`["fail-open"]`:                             "want a JSON object",
		`{"continuity":"fail-open"} {}`:             "data after",
	} {
		status, data := e.admin("PUT", "/api/v1/tenants/demo/agent-config", body)
		if status != 400 || !strings.Contains(string(data), want) {
			t.Errorf("PUT %s: %d %s, want 400 mentioning %q", body, status, data, want)
		}
	}
	var v adminView
	e.adminOK("PUT", "/api/v1/tenants/demo/agent-config", `{"continuity":"fail-closed","probe_interval":"5s","sync_interval":"15m"}`, &v)
	env, _ := e.open(d, pub, artifact.KindConfig)
	c, err := artifact.ParseConfig(env.Payload)
	if err != nil || env.Version != v.Version || c.Continuity != artifact.FailClosed || c.ProbeInterval.D() != 5*time.Second ||
		c.SyncInterval.D() != 15*time.Minute || c.PortalCheckURL != artifact.DefaultPortalCheckURL || c.Gateway != e.p.GatewayAddr {
		t.Errorf("config after PUT: version %d (want %d) %+v %v", env.Version, v.Version, c, err)
	}
	if !e.audited("agent_config.update", "") {
		t.Error("no agent_config.update audit event")
	}
}

func TestAdminRelease(t *testing.T) {
	e := start(t, platformtest.Options{})
	pub := e.distributionKey()
	d := e.enroll(e.newSecret("msi"))
	sum := strings.Repeat("ab", 32)
	for body, want := range map[string]string{
		`{"version":"1.2.0","platforms":{"linux-amd64":{"url":"https://dl.example/vigie","sha256":"abc"}}}`:        "platforms.linux-amd64.sha256",
		`{"version":"1.2.0","platforms":{"plan9-mips":{"url":"https://dl.example/vigie","sha256":"` + sum + `"}}}`: `unknown platform \"plan9-mips\"`,
		`{"version":"1.2.0","platforms":{"linux-amd64":{"url":"/vigie","sha256":"` + sum + `"}}}`:                  "platforms.linux-amd64.url",
		`{"version":"1.2.0","platforms":{"linux-amd64":{"url":"https://x/v","sha256":"` + sum + `","size":1}}}`:    `platforms.linux-amd64: unknown field \"size\"`,
		`{"version":"1.2.0"}`:              "names no platform",
		`{"version":"1 2","platforms":{}}`: "version: want",
		`{"channel":"beta"}`:               `unknown field \"channel\"`,
	} {
		status, data := e.admin("PUT", "/api/v1/tenants/demo/release", body)
		if status != 400 || !strings.Contains(string(data), want) {
			t.Errorf("PUT %s: %d %s, want 400 mentioning %q", body, status, data, want)
		}
	}
	manifest := `{"version":"1.2.0","platforms":{"windows-amd64":{"url":"https://dl.example/vigie.exe","sha256":"` + sum + `"},"linux-amd64":{"url":"https://dl.example/vigie","sha256":"` + sum + `"}}}`
	e.adminOK("PUT", "/api/v1/tenants/demo/release", manifest, nil)
	env, _ := e.open(d, pub, artifact.KindRelease)
	r, err := artifact.ParseRelease(env.Payload, true)
	if err != nil || r.Version != "1.2.0" || len(r.Platforms) != 2 || r.Platforms["linux-amd64"].SHA256 != sum {
		t.Errorf("release after PUT: %+v %v", r, err)
	}
	if !e.audited("release.update", "") {
		t.Error("no release.update audit event")
	}
}

// TestCABundleFollowsRotation: a CA rotation changes the bundle, which is
// a new version without anyone setting it.
func TestCABundleFollowsRotation(t *testing.T) {
	e := start(t, platformtest.Options{})
	pub := e.distributionKey()
	d := e.enroll(e.newSecret("msi"))
	before, etag := e.open(d, pub, artifact.KindCA)
	e.adminOK("POST", "/api/v1/tenants/demo/ca/rotate", "", nil)
	if resp, _ := e.fetch(artifact.KindCA, distrib.DeviceScheme+" "+e.token(d), etag); resp.StatusCode != 200 {
		t.Fatalf("after a rotation, the old ETag: %d", resp.StatusCode)
	}
	after, _ := e.open(d, pub, artifact.KindCA)
	cas, err := artifact.ParseCABundle(after.Payload)
	if err != nil || len(cas) != 2 || after.Version != before.Version+1 {
		t.Errorf("after a rotation: version %d→%d, %d CAs, %v", before.Version, after.Version, len(cas), err)
	}
}

// TestNewTenantHasKey: creating a tenant makes its distribution key, and
// its envelopes verify with it and not with another tenant's.
func TestNewTenantHasKey(t *testing.T) {
	e := start(t, platformtest.Options{})
	e.adminOK("POST", "/api/v1/tenants", `{"id":"acme"}`, nil)
	k, err := e.p.Server.Store.DistributionKey(context.Background(), "acme")
	if err != nil {
		t.Fatalf("no distribution key after creating a tenant: %v", err)
	}
	var out struct {
		PublicKey string `json:"public_key"`
	}
	e.adminOK("GET", "/api/v1/tenants/acme/distribution-key", "", &out)
	if out.PublicKey != base64.StdEncoding.EncodeToString(k.Public) {
		t.Fatal("the admin API shows another key than the stored one")
	}
	if bytes.Equal(k.Public, e.distributionKey()) {
		t.Fatal("two tenants share a distribution key")
	}
	if status, _ := e.admin("GET", "/api/v1/tenants/nope/distribution-key", ""); status != 404 {
		t.Errorf("unknown tenant's key: %d", status)
	}
}
