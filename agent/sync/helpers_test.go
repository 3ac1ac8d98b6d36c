package sync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	gosync "sync"
	"testing"

	"vigie/pac"
	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
	"vigie/platform/platformtest"
)

// harness is a running platform with an enrolment secret, and what an
// installer would give the agent.
type harness struct {
	t      *testing.T
	p      *platformtest.Platform
	pub    ed25519.PublicKey // the tenant's distribution key
	secret string
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, p: platformtest.Start(t, platformtest.Options{})}
	var key struct {
		PublicKey string `json:"public_key"`
	}
	h.adminOK("GET", "/api/v1/tenants/demo/distribution-key", "", &key)
	pub, err := base64.StdEncoding.DecodeString(key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h.pub = pub
	var sec struct {
		Secret string `json:"secret"`
	}
	h.adminOK("POST", "/api/v1/tenants/demo/enrollment-secrets", `{"name":"test"}`, &sec)
	h.secret = sec.Secret
	return h
}

func (h *harness) adminOK(method, p, body string, out any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.p.BaseURL+p, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.p.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		h.t.Fatalf("%s %s: %d %s", method, p, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatal(err)
		}
	}
}

// device enrols a new device, its state in a new directory.
func (h *harness) device() *Device {
	h.t.Helper()
	d, err := LoadOrEnroll(context.Background(), h.t.TempDir(), h.p.BaseURL, h.p.Tenant, h.secret, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// noNetwork keeps PAC files from resolving names in tests.
var noNetwork = pac.Options{Resolver: pac.StaticResolver{}, CacheTTL: -1}

// options returns the options of a syncer for a new device of the
// platform, pinning key (the real distribution key when nil).
func (h *harness) options(key ed25519.PublicKey, rt http.RoundTripper, log *logRecorder) Options {
	if key == nil {
		key = h.pub
	}
	o := Options{PlatformURL: h.p.BaseURL, Tenant: h.p.Tenant, DistributionKey: key, Device: h.device(),
		CacheDir: h.t.TempDir(), PACOptions: noNetwork}
	if rt != nil {
		o.HTTPClient = &http.Client{Transport: rt}
	}
	if log != nil {
		o.Logger = slog.New(log)
	}
	return o
}

func newSyncer(t *testing.T, o Options) *Syncer {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rewriter sits between the agent and the platform and changes the
// platform's envelopes with fn (nil: unchanged), as a network attacker or
// a compromised mirror could.
type rewriter struct {
	next http.RoundTripper
	mu   gosync.Mutex
	fn   func(kind string, body []byte) []byte
}

func (rw *rewriter) set(fn func(kind string, body []byte) []byte) {
	rw.mu.Lock()
	rw.fn = fn
	rw.mu.Unlock()
}

func (rw *rewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	rw.mu.Lock()
	fn := rw.fn
	rw.mu.Unlock()
	if fn != nil {
		// The rewritten bytes have ETags the platform never made: ask for
		// the whole envelope each time.
		req = req.Clone(req.Context())
		req.Header.Del("If-None-Match")
	}
	resp, err := rw.next.RoundTrip(req)
	if err != nil || fn == nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = fn(path.Base(req.URL.Path), body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("ETag", artifact.ETag(body))
	return resp, nil
}

// signer re-signs the platform's envelopes with its own key, which the
// agent under test pins: it can then make any envelope the platform
// would, and those it never would.
type signer struct {
	t    *testing.T
	pub  ed25519.PublicKey // the platform's key: what it re-signs must verify with it
	key  ed25519.PrivateKey
	vers map[string]int64 // the platform's version of each kind, as last seen
}

func newSigner(t *testing.T, platformKey ed25519.PublicKey) *signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &signer{t: t, pub: platformKey, key: priv, vers: map[string]int64{}}
}

func (s *signer) public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// resign returns the platform's envelope of kind signed by s, after edit
// (when not nil) changed it.
func (s *signer) resign(kind string, body []byte, edit func(e *artifact.Envelope)) []byte {
	e, err := artifact.Open(body, s.pub, kind, "demo")
	if err != nil {
		s.t.Errorf("the platform's own envelope: %v", err)
		return body
	}
	s.vers[kind] = e.Version
	if edit != nil {
		edit(e)
	}
	out := distrib.Sign(s.key, e.Kind, e.Tenant, e.Version, e.Payload)
	out.IssuedAt = e.IssuedAt
	return out.Marshal()
}

// logRecorder is a slog.Handler that keeps the records' messages.
type logRecorder struct {
	mu   gosync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var kind string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "kind" {
			kind = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message+" "+kind)
	l.mu.Unlock()
	return nil
}

// count returns how many records contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// changed reports whether Changes has a notification, without waiting.
func changed(s *Syncer) bool {
	select {
	case <-s.Changes():
		return true
	default:
		return false
	}
}
