package artifact

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"vigie/certs"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))

func TestMessage(t *testing.T) {
	got := Message("pac", "acme", 12, []byte("function\n"))
	if want := "vigie-dist-v1\npac\nacme\n12\nfunction\n"; string(got) != want {
		t.Fatalf("Message = %q, want %q", got, want)
	}
}

func TestSignParseVerify(t *testing.T) {
	e := Sign(testKey, KindPAC, "acme", 3, []byte("payload"))
	e.IssuedAt = time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC)
	body := e.Marshal()
	if want := `{"kind":"pac","tenant":"acme","version":3,"issued_at":"2026-05-04T10:30:00Z","payload":"cGF5bG9hZA==","signature":"`; !strings.HasPrefix(string(body), want) {
		t.Fatalf("Marshal = %s", body)
	}
	if !bytes.Equal(body, e.Marshal()) || ETag(body) != ETag(e.Marshal()) {
		t.Fatal("the same envelope marshals to other bytes")
	}
	pub := testKey.Public().(ed25519.PublicKey)
	got, err := Open(body, pub, KindPAC, "acme")
	if err != nil || got.Version != 3 || string(got.Payload) != "payload" || !got.IssuedAt.Equal(e.IssuedAt) {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	// issued_at is not signed; everything else is.
	for name, f := range map[string]func(e *Envelope){
		"kind":    func(e *Envelope) { e.Kind = KindCA },
		"tenant":  func(e *Envelope) { e.Tenant = "beta" },
		"version": func(e *Envelope) { e.Version = 4 },
		"payload": func(e *Envelope) { e.Payload = []byte("Payload") },
	} {
		c := *got
		f(&c)
		if err := c.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v", name, err)
		}
	}
	c := *got
	c.IssuedAt = c.IssuedAt.Add(time.Hour)
	if err := c.Verify(pub); err != nil {
		t.Errorf("issued_at changed: %v", err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey)
	if _, err := Open(body, other, KindPAC, "acme"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key: %v", err)
	}
	if err := got.Verify(pub[:31]); err == nil {
		t.Error("a short key verified")
	}
	if _, err := Open(body, pub, KindCA, "acme"); err == nil || !strings.Contains(err.Error(), "where ca") {
		t.Errorf("asked for another kind: %v", err)
	}
	if _, err := Open(body, pub, KindPAC, "beta"); err == nil {
		t.Error("asked for another tenant: accepted")
	}
}

func TestParseRefuses(t *testing.T) {
	good := Sign(testKey, KindConfig, "acme", 1, []byte("{}")).Marshal()
	var m map[string]any
	json.Unmarshal(good, &m)
	with := func(key string, v any) string {
		c := map[string]any{}
		for k, x := range m {
			c[k] = x
		}
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	for in, want := range map[string]string{
		"":                          "malformed",
		"[]":                        "malformed",
		"null":                      "no kind",
		string(good) + "{}":         "data after",
		with("kind", nil):           "no kind",
		with("kind", "binary"):      `unknown kind "binary"`,
		with("tenant", ""):          "tenant",
		with("version", 0):          "version 0 is not positive",
		with("version", -1):         "not positive",
		with("version", 1.5):        "malformed",
		with("version", "1"):        "malformed",
		with("issued_at", nil):      "no issued_at",
		with("issued_at", "today"):  "malformed",
		with("payload", nil):        "no payload",
		with("payload", "not b64!"): "malformed",
		with("signature", "AAAA"):   "signature is 3 bytes",
		with("signature", nil):      "no signature",
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.60s) = %v, want ErrMalformed mentioning %q", in, err, want)
		}
	}
	if _, err := Parse(bytes.Repeat([]byte(" "), MaxEnvelopeSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized: %v", err)
	}
	// Unknown fields are ignored.
	if _, err := Parse([]byte(with("key_id", "k1"))); err != nil {
		t.Errorf("an extra field: %v", err)
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	c.Gateway, c.PlatformURL = "gw.example:3128", "https://vigie.example"
	got, err := ParseConfig(c.Marshal())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if string(c.Marshal()) != `{"gateway":"gw.example:3128","platform_url":"https://vigie.example","continuity":"fail-open","probe_interval":"10s","portal_check_url":"http://connectivitycheck.gstatic.com/generate_204","sync_interval":"30m0s"}` {
		t.Errorf("Marshal = %s", c.Marshal())
	}
	// Absent fields are defaults; unknown ones ignored (agents read a newer platform's).
	got, err = ParseConfig([]byte(`{"gateway":"[2001:db8::1]:3128","platform_url":"http://127.0.0.1:8080","new_knob":true}`))
	if err != nil || got.Continuity != FailOpen || got.SyncInterval.D() != DefaultSyncInterval {
		t.Errorf("defaults: %+v, %v", got, err)
	}
	for in, want := range map[string]string{
		`{"platform_url":"https://x"}`:                                         "gateway: want host:port",
		`{"gateway":"gw:0","platform_url":"https://x"}`:                        `gateway: port "0"`,
		`{"gateway":"gw:1"}`:                                                   "platform_url: want an absolute",
		`{"gateway":"gw:1","platform_url":"https://x/"}`:                       "platform_url: want a base URL",
		`{"gateway":"gw:1","platform_url":"https://x","continuity":"closed"}`:  "continuity",
		`{"gateway":"gw:1","platform_url":"https://x","probe_interval":"1h"}`:  "probe_interval: 1h0m0s is outside",
		`{"gateway":"gw:1","platform_url":"https://x","sync_interval":"10s"}`:  "sync_interval: 10s is outside",
		`{"gateway":"gw:1","platform_url":"https://x","sync_interval":1800}`:   "sync_interval: want a duration",
		`{"gateway":"gw:1","platform_url":"https://x","portal_check_url":"x"}`: "portal_check_url",
		`{"gateway":1,"platform_url":"https://x"}`:                             "gateway: want a string, got number",
		`{"gateway":"gw:1","platform_url":"https://x"} x`:                      "data after",
		`null`: "want a JSON object",
	} {
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "artifact: config: ") {
			t.Errorf("ParseConfig(%s) = %v, want %q", in, err, want)
		}
	}
}

func TestTenantConfig(t *testing.T) {
	c, err := ParseTenantConfig([]byte(`{"continuity":"fail-closed","probe_interval":"3s"}`))
	if err != nil || c.Continuity != FailClosed || c.ProbeInterval.D() != 3*time.Second || c.SyncInterval.D() != DefaultSyncInterval || c.Gateway != "" {
		t.Fatalf("%+v, %v", c, err)
	}
	for in, want := range map[string]string{
		`{"gateway":"gw:1"}`:               "gateway: set by the platform",
		`{"platform_url":"https://x"}`:     "platform_url: set by the platform",
		`{"continuity":"fail-open","x":1}`: `unknown field "x"`,
	} {
		if _, err := ParseTenantConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTenantConfig(%s) = %v, want %q", in, err, want)
		}
	}
}

func TestRelease(t *testing.T) {
	if string(Release{}.Marshal()) != `{"version":"","platforms":{}}` {
		t.Errorf("empty manifest = %s", Release{}.Marshal())
	}
	if r, err := ParseRelease(Release{}.Marshal(), true); err != nil || r.Version != "" {
		t.Errorf("empty manifest: %+v, %v", r, err)
	}
	sum := strings.Repeat("0f", 32)
	in := `{"version":"1.4.2","platforms":{"windows-amd64":{"url":"https://dl.example/a.exe","sha256":"` + sum + `"},"linux-arm64":{"url":"https://dl.example/a","sha256":"` + sum + `"}}}`
	r, err := ParseRelease([]byte(in), true)
	if err != nil || len(r.Platforms) != 2 {
		t.Fatalf("%+v, %v", r, err)
	}
	again, _ := ParseRelease(r.Marshal(), true)
	if !bytes.Equal(again.Marshal(), r.Marshal()) || !strings.Contains(string(r.Marshal()), `"linux-arm64":{"url"`) {
		t.Errorf("Marshal is not canonical: %s", r.Marshal())
	}
	if _, err := ParseRelease([]byte(`{"version":"1","platforms":{"linux-amd64":{"url":"https://x/a","sha256":"`+sum+`","sig":"x"}},"notes":"x"}`), false); err != nil {
		t.Errorf("lenient reading refused unknown fields: %v", err)
	}
	if _, err := ParseRelease([]byte(`{"version":"1","platforms":{"linux-amd64":{"url":"https://x/a","sha256":"`+strings.ToUpper(sum)+`"}}}`), true); err == nil {
		t.Error("upper-case hex accepted")
	}
}

func TestParseCABundle(t *testing.T) {
	now := time.Now()
	a, _, err := certs.NewCA("acme", now)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := certs.NewCA("acme", now)
	got, err := ParseCABundle(append(append(append([]byte{}, a...), '\n'), b...))
	if err != nil || len(got) != 2 {
		t.Fatalf("two CAs: %d, %v", len(got), err)
	}
	leaf := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	for name, in := range map[string][]byte{
		"empty":           nil,
		"text before":     append([]byte("hello\n"), a...),
		"text after":      append(append([]byte{}, a...), "trailing"...),
		"private key":     []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"bad certificate": leaf,
	} {
		if _, err := ParseCABundle(in); err == nil || !strings.HasPrefix(err.Error(), "artifact: CA bundle: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParse: no input makes Parse panic, take long or accept what it
// should not; an envelope it accepts survives Marshal and Parse again, and
// verifies only if it was signed. The corpus is kept in testdata/fuzz.
func FuzzParse(f *testing.F) {
	pub := testKey.Public().(ed25519.PublicKey)
	for _, kind := range Kinds {
		f.Add(Sign(testKey, kind, "acme", 7, []byte("payload of "+kind)).Marshal())
	}
	f.Add([]byte(`{"kind":"pac","tenant":"a","version":1,"issued_at":"2026-01-01T00:00:00Z","payload":"","signature":""}`))
	f.Add([]byte(`{"kind":"pac","kind":"ca","tenant":"a","version":9007199254740993,"issued_at":"2026-01-01T00:00:00Z","payload":"AA==","signature":"AA=="}`))
	f.Add([]byte(`{"kind":"pac" , "payload":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if !ValidKind(e.Kind) || e.Tenant == "" || e.Version <= 0 || len(e.Signature) != ed25519.SignatureSize {
			t.Fatalf("Parse accepted %+v", e)
		}
		again, err := Parse(e.Marshal())
		if err != nil || again.Kind != e.Kind || again.Tenant != e.Tenant || again.Version != e.Version ||
			!bytes.Equal(again.Payload, e.Payload) || !bytes.Equal(again.Signature, e.Signature) {
			t.Fatalf("round trip: %+v, %v; was %+v", again, err, e)
		}
		if e.Verify(pub) == nil && !ed25519.Verify(pub, Message(e.Kind, e.Tenant, e.Version, e.Payload), e.Signature) {
			t.Fatal("Verify accepted a signature ed25519 does not")
		}
		// Whatever the payload, the content parsers answer without panic.
		ParseConfig(e.Payload)
		ParseRelease(e.Payload, false)
		ParseCABundle(e.Payload)
	})
}
