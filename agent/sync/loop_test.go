package sync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"path"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"vigie/certs"
	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
)

// fakePlatform answers the agent in memory, inside the synctest bubble: it
// serves envelopes it signs itself, with ETags, and records when each kind
// was asked for. The protocol against the real platform is tested
// elsewhere; this is for the schedule.
type fakePlatform struct {
	key ed25519.PrivateKey

	mu   gosync.Mutex
	envs map[string][]byte
	hits map[string][]time.Time
	down bool
}

func newFakePlatform(t *testing.T) *fakePlatform {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	f := &fakePlatform{key: priv, envs: map[string][]byte{}, hits: map[string][]time.Time{}}
	caPEM, _, err := certs.NewCA("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := artifact.DefaultConfig()
	cfg.Gateway, cfg.PlatformURL, cfg.SyncInterval = "gw.example:3128", "https://vigie.example", artifact.Duration(10*time.Minute)
	f.publish(artifact.KindConfig, 1, cfg.Marshal())
	f.publish(artifact.KindPAC, 1, distrib.DefaultPAC("gw.example:3128"))
	f.publish(artifact.KindCA, 1, caPEM)
	f.publish(artifact.KindRelease, 1, artifact.Release{}.Marshal())
	return f
}

func (f *fakePlatform) publish(kind string, version int64, payload []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs[kind] = distrib.Sign(f.key, kind, "demo", version, payload).Marshal()
}

func (f *fakePlatform) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// times returns when kind was asked for.
func (f *fakePlatform) times(kind string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.hits[kind]...)
}

func (f *fakePlatform) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := path.Base(req.URL.Path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits[kind] = append(f.hits[kind], time.Now())
	resp := &http.Response{Request: req, Header: http.Header{}, Body: http.NoBody, ProtoMajor: 1, ProtoMinor: 1}
	body, ok := f.envs[kind]
	switch {
	case f.down:
		resp.StatusCode = http.StatusServiceUnavailable
	case !ok:
		resp.StatusCode = http.StatusNotFound
	case req.Header.Get("If-None-Match") == artifact.ETag(body):
		resp.StatusCode = http.StatusNotModified
		resp.Header.Set("ETag", artifact.ETag(body))
	default:
		resp.StatusCode = http.StatusOK
		resp.Header.Set("ETag", artifact.ETag(body))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
	}
	resp.Status = http.StatusText(resp.StatusCode)
	return resp, nil
}

// TestRunSchedule runs the loop on the bubble's clock: everything at
// start, then every sync_interval of the configuration (10m) within its
// ±10% jitter; a change on the platform is applied at the next round;
// while the platform fails, retries come sooner (30s, doubling, capped at
// the interval) and the schedule returns to normal once it answers.
func TestRunSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform(t)
		_, devKey, _ := ed25519.GenerateKey(rand.Reader)
		s := newSyncer(t, Options{PlatformURL: "https://vigie.example", Tenant: "demo", DistributionKey: f.key.Public().(ed25519.PublicKey),
			Device: &Device{ID: "d1", Key: devKey}, CacheDir: t.TempDir(), HTTPClient: &http.Client{Transport: f}, PACOptions: noNetwork})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- s.Run(ctx) }()

		synctest.Wait()
		for _, kind := range artifact.Kinds {
			if got := f.times(kind); len(got) != 1 || !got[0].Equal(start) {
				t.Fatalf("%s fetched at %v, want once at start", kind, got)
			}
		}
		if !changed(s) || s.Current().Config.SyncInterval.D() != 10*time.Minute {
			t.Fatal("the first round applied nothing")
		}

		// Regular rounds: 10m ± 1m apart.
		time.Sleep(45 * time.Minute)
		synctest.Wait()
		checkGaps(t, f.times(artifact.KindPAC), 9*time.Minute, 11*time.Minute)
		if n := len(f.times(artifact.KindPAC)); n < 5 || n > 6 {
			t.Errorf("%d rounds in 45 minutes at 10m ± 1m", n)
		}
		if changed(s) {
			t.Error("rounds that changed nothing notified a change")
		}

		// A change is applied at the next round, without a restart.
		f.publish(artifact.KindPAC, 2, []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`))
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		if !changed(s) || s.Current().Version(artifact.KindPAC) != 2 {
			t.Fatalf("the new PAC was not applied within a round: %v", s.Current().Status[artifact.KindPAC])
		}

		// The platform fails: retries at 30s, 1m, 2m, … (±10%), then 10m.
		f.setDown(true)
		from := len(f.times(artifact.KindPAC))
		time.Sleep(40 * time.Minute)
		synctest.Wait()
		hits := f.times(artifact.KindPAC)[from:]
		if len(hits) < 6 {
			t.Fatalf("%d attempts in 40 minutes of failures", len(hits))
		}
		for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute} {
			if i+1 >= len(hits) {
				break
			}
			if gap := hits[i+1].Sub(hits[i]); gap < want*9/10 || gap > want*11/10 {
				t.Errorf("retry %d after %v, want %v ± 10%%", i+1, gap, want)
			}
		}
		if st := s.Current().Status[artifact.KindPAC]; st.LastError == nil || st.Version != 2 {
			t.Errorf("while failing: %v", st)
		}

		// It answers again: the next attempt succeeds, then rounds are 10m
		// apart again.
		f.setDown(false)
		from = len(f.times(artifact.KindPAC))
		time.Sleep(35 * time.Minute)
		synctest.Wait()
		hits = f.times(artifact.KindPAC)[from:]
		if len(hits) < 3 {
			t.Fatalf("%d attempts in 35 minutes after recovery", len(hits))
		}
		checkGaps(t, hits, 9*time.Minute, 11*time.Minute)
		if st := s.Current().Status[artifact.KindPAC]; st.LastError != nil {
			t.Errorf("after recovery: %v", st)
		}

		cancel()
		synctest.Wait()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after its context ended", err)
		}
	})
}

// checkGaps fails unless consecutive times are between lo and hi apart.
func checkGaps(t *testing.T, times []time.Time, lo, hi time.Duration) {
	t.Helper()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < lo || gap > hi {
			t.Errorf("rounds %d and %d are %v apart, want %v to %v", i-1, i, gap, lo, hi)
		}
	}
}

// TestRunInterval: Options.Interval wins over the configuration's.
func TestRunInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform(t)
		_, devKey, _ := ed25519.GenerateKey(rand.Reader)
		s := newSyncer(t, Options{PlatformURL: "https://vigie.example/", Tenant: "demo", DistributionKey: f.key.Public().(ed25519.PublicKey),
			Device: &Device{ID: "d1", Key: devKey}, CacheDir: t.TempDir(), HTTPClient: &http.Client{Transport: f},
			Interval: time.Hour, Jitter: -1, PACOptions: noNetwork})
		ctx, cancel := context.WithCancel(t.Context())
		go s.Run(ctx)
		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		checkGaps(t, f.times(artifact.KindConfig), time.Hour, time.Hour)
		if n := len(f.times(artifact.KindConfig)); n != 4 {
			t.Errorf("%d rounds in 3 hours at 1h", n)
		}
		cancel()
		synctest.Wait()
	})
}
