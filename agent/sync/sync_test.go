package sync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
)

// counter records the status of each answer, by kind.
type counter struct {
	next http.RoundTripper
	mu   gosync.Mutex
	seen map[string][]int
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		c.mu.Lock()
		if c.seen == nil {
			c.seen = map[string][]int{}
		}
		kind := path.Base(req.URL.Path)
		c.seen[kind] = append(c.seen[kind], resp.StatusCode)
		c.mu.Unlock()
	}
	return resp, err
}

// last returns the status of the last answer for each kind.
func (c *counter) last() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.seen {
		out[k] = v[len(v)-1]
	}
	return out
}

func eval(t *testing.T, s *Snapshot, url, host string) string {
	t.Helper()
	if s.PAC == nil {
		t.Fatal("no PAC")
	}
	res, err := s.PAC.Eval(context.Background(), url, host)
	if err != nil {
		t.Fatal(err)
	}
	return res.Raw
}

func TestSyncAgainstPlatform(t *testing.T) {
	h := newHarness(t)
	c := &counter{next: http.DefaultTransport}
	o := h.options(nil, c, nil)
	s := newSyncer(t, o)
	for _, kind := range artifact.Kinds {
		if v := s.Current().Version(kind); v != 0 {
			t.Fatalf("%s version %d before any fetch", kind, v)
		}
	}
	if s.Current().PAC != nil || s.Current().Config.Continuity != artifact.FailOpen {
		t.Fatal("the empty snapshot is not the defaults")
	}

	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !changed(s) {
		t.Error("no change notification after the first fetch")
	}
	snap := s.Current()
	for _, kind := range artifact.Kinds {
		st := snap.Status[kind]
		if st.Version < 1 || st.ETag == "" || st.LastError != nil || st.LastSuccess.IsZero() || st.LastAttempt.IsZero() || st.IssuedAt.IsZero() {
			t.Errorf("%s: %+v", kind, st)
		}
		// The cache holds the envelope as the platform sent it, 0600.
		fi, err := os.Stat(filepath.Join(o.CacheDir, kind+".json"))
		if err != nil {
			t.Fatalf("%s: not cached: %v", kind, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: cache file mode %v", kind, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(filepath.Join(o.CacheDir, kind+".json"))
		if artifact.ETag(data) != st.ETag {
			t.Errorf("%s: the cached envelope is not the one in use", kind)
		}
	}
	if snap.Config.Gateway != h.p.GatewayAddr || snap.Config.PlatformURL != h.p.BaseURL {
		t.Errorf("config = %+v", snap.Config)
	}
	if got := eval(t, snap, "https://www.example.com/", "www.example.com"); got != "PROXY "+h.p.GatewayAddr {
		t.Errorf("PAC: %q", got)
	}
	if cas, err := artifact.ParseCABundle(snap.CABundle); err != nil || len(cas) != 1 {
		t.Errorf("CA bundle: %d, %v", len(cas), err)
	}
	if snap.Release.Version != "" || len(snap.Release.Platforms) != 0 {
		t.Errorf("release = %+v", snap.Release)
	}

	// Nothing changed: every kind answers 304, and nothing is applied.
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for kind, status := range c.last() {
		if status != http.StatusNotModified {
			t.Errorf("second fetch of %s: %d, want 304", kind, status)
		}
	}
	if changed(s) || s.Current().PAC != snap.PAC {
		t.Error("an unchanged platform changed the snapshot's content")
	}

	// A change made by an administrator applies at the next fetch, live.
	h.adminOK("PUT", "/api/v1/tenants/demo/pac", `function FindProxyForURL(url, host) { return "DIRECT"; }`, nil)
	h.adminOK("PUT", "/api/v1/tenants/demo/agent-config", `{"continuity":"fail-closed"}`, nil)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !changed(s) {
		t.Error("no change notification")
	}
	now := s.Current()
	if now.Version(artifact.KindPAC) != snap.Version(artifact.KindPAC)+1 || eval(t, now, "https://www.example.com/", "www.example.com") != "DIRECT" {
		t.Errorf("PAC not applied: %v", now.Status[artifact.KindPAC])
	}
	if now.Config.Continuity != artifact.FailClosed || now.Version(artifact.KindConfig) != snap.Version(artifact.KindConfig)+1 {
		t.Errorf("config not applied: %+v", now.Config)
	}
	if now.Version(artifact.KindCA) != snap.Version(artifact.KindCA) {
		t.Error("the CA bundle's version moved without a change")
	}
	// The snapshot read before is untouched: readers hold immutable copies.
	if eval(t, snap, "https://www.example.com/", "www.example.com") == "DIRECT" || snap.Config.Continuity != artifact.FailOpen {
		t.Error("an old snapshot changed")
	}
}

// TestRefusedKeepsLastGood makes the platform's answers wrong in every way
// the agent checks, through a party that signs with the key the agent
// pins: each is refused, the last good copy stays in use and in the cache,
// the failure is counted, and logged once until it stops.
func TestRefusedKeepsLastGood(t *testing.T) {
	h := newHarness(t)
	// Versions above 1, so that a lower one is still a valid envelope.
	h.adminOK("PUT", "/api/v1/tenants/demo/pac", `function FindProxyForURL(u, h) { return "PROXY one.example:3128"; }`, nil)
	h.adminOK("PUT", "/api/v1/tenants/demo/pac", `function FindProxyForURL(u, h) { return "PROXY two.example:3128"; }`, nil)
	h.adminOK("PUT", "/api/v1/tenants/demo/agent-config", `{"probe_interval":"20s"}`, nil)

	sg := newSigner(t, h.pub)
	rw := &rewriter{next: http.DefaultTransport}
	honest := func(kind string, body []byte) []byte { return sg.resign(kind, body, nil) }
	rw.set(honest)
	log := &logRecorder{}
	o := h.options(sg.public(), rw, log)
	s := newSyncer(t, o)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	changed(s)
	good := s.Current()
	if eval(t, good, "http://a.example/", "a.example") != "PROXY two.example:3128" || good.Config.ProbeInterval.D() != 20*time.Second {
		t.Fatalf("baseline: %v, %+v", good.Status, good.Config)
	}
	cached := map[string][]byte{}
	for _, kind := range artifact.Kinds {
		cached[kind], _ = os.ReadFile(filepath.Join(o.CacheDir, kind+".json"))
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	edit := func(kind string, f func(e *artifact.Envelope)) func(body []byte) []byte {
		return func(body []byte) []byte { return sg.resign(kind, body, f) }
	}

	for _, tc := range []struct {
		name, kind string
		answer     func(body []byte) []byte
		want       error  // errors.Is, when set
		msg        string // in the error
	}{
		{"signed by another key", artifact.KindPAC, func(body []byte) []byte {
			e, _ := artifact.Parse(sg.resign(artifact.KindPAC, body, nil))
			return distrib.Sign(stranger, e.Kind, e.Tenant, e.Version+1, []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`)).Marshal()
		}, artifact.ErrBadSignature, "not signed by the pinned distribution key"},
		{"payload tampered", artifact.KindPAC, func(body []byte) []byte {
			e, _ := artifact.Parse(sg.resign(artifact.KindPAC, body, nil))
			e.Payload = bytes.Replace(e.Payload, []byte("two"), []byte("evil"), 1)
			return e.Marshal()
		}, artifact.ErrBadSignature, ""},
		{"version tampered", artifact.KindConfig, func(body []byte) []byte {
			e, _ := artifact.Parse(sg.resign(artifact.KindConfig, body, nil))
			e.Version += 10
			return e.Marshal()
		}, artifact.ErrBadSignature, ""},
		{"PAC does not compile", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = []byte("function FindProxyForURL(url, host) {\n  return \"DIRECT\"\n")
		}), ErrInvalid, "SyntaxError"},
		{"PAC throws while loading", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = []byte("null.x; function FindProxyForURL(u, h) { return 'DIRECT'; }")
		}), ErrInvalid, ""},
		{"rollback", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Version--
			e.Payload = []byte(`function FindProxyForURL(u, h) { return "PROXY one.example:3128"; }`)
		}), ErrRollback, "pac version 1 offered, version 2 in use"},
		{"same version, other content", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Payload = []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`)
		}), ErrInvalid, "other content"},
		{"config fails validation", artifact.KindConfig, edit(artifact.KindConfig, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = bytes.Replace(e.Payload, []byte(`"fail-open"`), []byte(`"maybe"`), 1)
		}), ErrInvalid, "continuity"},
		{"config without gateway", artifact.KindConfig, edit(artifact.KindConfig, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = []byte(`{"platform_url":"https://vigie.example"}`)
		}), ErrInvalid, "gateway"},
		{"CA bundle is not certificates", artifact.KindCA, edit(artifact.KindCA, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = append([]byte("garbage\n"), e.Payload...)
		}), ErrInvalid, "not PEM"},
		{"release manifest invalid", artifact.KindRelease, edit(artifact.KindRelease, func(e *artifact.Envelope) {
			e.Version++
			e.Payload = []byte(`{"version":"2.0.0","platforms":{"linux-amd64":{"url":"https://dl.example/a","sha256":"nope"}}}`)
		}), ErrInvalid, "sha256"},
		{"another kind's envelope", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Kind = artifact.KindRelease
		}), nil, "got release of tenant \"demo\" where pac"},
		{"another tenant's envelope", artifact.KindPAC, edit(artifact.KindPAC, func(e *artifact.Envelope) {
			e.Version++
			e.Tenant = "acme"
		}), nil, "of tenant \"acme\" where pac of tenant \"demo\""},
		{"not an envelope", artifact.KindRelease, func([]byte) []byte { return []byte("<html>maintenance</html>") }, artifact.ErrMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Current().Status[tc.kind]
			rw.set(func(kind string, body []byte) []byte {
				if kind == tc.kind {
					return tc.answer(body)
				}
				return honest(kind, body)
			})
			for round := range 2 {
				err := s.Sync(t.Context())
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("round %d: Sync = %v, want %v mentioning %q", round, err, tc.want, tc.msg)
				}
			}
			cur := s.Current()
			st := cur.Status[tc.kind]
			if st.LastError == nil || st.Failures != before.Failures+2 || st.Version != good.Version(tc.kind) || st.ETag != good.Status[tc.kind].ETag {
				t.Errorf("status after refusals: %+v", st)
			}
			if cur.PAC != good.PAC || cur.Config != good.Config || !bytes.Equal(cur.CABundle, good.CABundle) || cur.Release.Version != good.Release.Version {
				t.Error("the last good copy was replaced")
			}
			if changed(s) {
				t.Error("a refused envelope notified a change")
			}
			for kind, data := range cached {
				if now, _ := os.ReadFile(filepath.Join(o.CacheDir, kind+".json")); !bytes.Equal(now, data) {
					t.Errorf("the cached %s changed", kind)
				}
			}
			if n := log.count("WARN sync: fetching failed; keeping the last good copy " + tc.kind); n != 1 {
				t.Errorf("two failed rounds logged %d warnings, want 1", n)
			}
			// Back to normal: one message says so, and nothing changes.
			rw.set(honest)
			if err := s.Sync(t.Context()); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
			if n := log.count("INFO sync: fetching works again " + tc.kind); n != 1 {
				t.Errorf("recovery logged %d times, want 1", n)
			}
			if s.Current().Status[tc.kind].LastError != nil || changed(s) {
				t.Error("recovery left an error, or notified a change")
			}
			log.mu.Lock()
			log.msgs = nil
			log.mu.Unlock()
		})
	}
}

// failing is a network that is down.
type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network is unreachable")
}

func TestOfflineStartFromCache(t *testing.T) {
	h := newHarness(t)
	h.adminOK("PUT", "/api/v1/tenants/demo/pac", `function FindProxyForURL(u, h) { return "PROXY cached.example:3128"; }`, nil)
	o := h.options(nil, nil, nil)
	first := newSyncer(t, o)
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := first.Current()

	// Restart without a network: everything is there before any fetch.
	offline := o
	offline.HTTPClient = &http.Client{Transport: failing{}}
	s := newSyncer(t, offline)
	cur := s.Current()
	for _, kind := range artifact.Kinds {
		if cur.Status[kind].Version != want.Status[kind].Version || cur.Status[kind].ETag != want.Status[kind].ETag {
			t.Errorf("%s from the cache: %+v, want %+v", kind, cur.Status[kind], want.Status[kind])
		}
	}
	if eval(t, cur, "http://a.example/", "a.example") != "PROXY cached.example:3128" || cur.Config != want.Config ||
		!bytes.Equal(cur.CABundle, want.CABundle) {
		t.Error("the cached copies were not loaded")
	}
	if err := s.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("offline Sync = %v", err)
	}
	if s.Current().PAC != cur.PAC || s.Current().Status[artifact.KindPAC].LastError == nil {
		t.Error("an offline fetch changed the snapshot's content, or did not record its error")
	}

	// A cache file changed on disk is refused like a bad answer; the other
	// kinds still load.
	pacFile := filepath.Join(o.CacheDir, artifact.KindPAC+".json")
	data, _ := os.ReadFile(pacFile)
	e, _ := artifact.Parse(data)
	e.Payload = []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`)
	os.WriteFile(pacFile, e.Marshal(), 0o600)
	log := &logRecorder{}
	offline.Logger = slog.New(log)
	s = newSyncer(t, offline)
	if s.Current().PAC != nil || s.Current().Version(artifact.KindPAC) != 0 || s.Current().Version(artifact.KindConfig) == 0 {
		t.Errorf("after tampering with the cached PAC: %v", s.Current().Status)
	}
	if log.count("cached copy not used") != 1 {
		t.Error("the refused cache file was not logged")
	}

	// Online again: the cached ETags make the untouched kinds 304s.
	c := &counter{next: http.DefaultTransport}
	online := o
	online.HTTPClient = &http.Client{Transport: c}
	s = newSyncer(t, online)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for kind, status := range c.last() {
		want := http.StatusNotModified
		if kind == artifact.KindPAC {
			want = http.StatusOK
		}
		if status != want {
			t.Errorf("%s after a restart: %d, want %d", kind, status, want)
		}
	}
	if eval(t, s.Current(), "http://a.example/", "a.example") != "PROXY cached.example:3128" {
		t.Error("the PAC file was not fetched again")
	}
}

func TestNewChecksOptions(t *testing.T) {
	d := &Device{ID: "d1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	pub := d.Key.Public().(ed25519.PublicKey)
	good := Options{PlatformURL: "https://vigie.example", Tenant: "acme", DistributionKey: pub, Device: d, CacheDir: t.TempDir()}
	for name, f := range map[string]func(o *Options){
		"platform URL": func(o *Options) { o.PlatformURL = "vigie.example" },
		"tenant":       func(o *Options) { o.Tenant = "" },
		"key":          func(o *Options) { o.DistributionKey = pub[:16] },
		"device":       func(o *Options) { o.Device = nil },
		"cache":        func(o *Options) { o.CacheDir = "" },
	} {
		o := good
		f(&o)
		if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), "sync: ") {
			t.Errorf("%s: New = %v", name, err)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}

func TestNextDelay(t *testing.T) {
	const m = time.Minute
	for _, tc := range []struct {
		interval time.Duration
		jitter   float64
		failures int
		r        float64
		want     time.Duration
	}{
		{30 * m, 0, 0, 0.5, 30 * m},
		{30 * m, 0.1, 0, 0.5, 30 * m},
		{30 * m, 0.1, 0, 0, 27 * m},
		{30 * m, 0.1, 0, 1, 33 * m},
		{30 * m, -1, 0, 0, 30 * m},
		{30 * m, 0, 1, 0.5, 30 * time.Second},
		{30 * m, 0, 2, 0.5, m},
		{30 * m, 0, 3, 0.5, 2 * m},
		{30 * m, 0, 6, 0.5, 16 * m},
		{30 * m, 0, 7, 0.5, 30 * m},
		{30 * m, 0, 1000, 0.5, 30 * m}, // no overflow
		{30 * m, 0.1, 1, 0, 27 * time.Second},
		{10 * time.Second, 0, 1, 0.5, 10 * time.Second}, // retries never wait longer than the interval
	} {
		if got := nextDelay(tc.interval, tc.jitter, tc.failures, tc.r); got != tc.want {
			t.Errorf("nextDelay(%v, %v, %d, %v) = %v, want %v", tc.interval, tc.jitter, tc.failures, tc.r, got, tc.want)
		}
	}
}
