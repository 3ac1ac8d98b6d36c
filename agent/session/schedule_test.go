package session

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestNextRefresh(t *testing.T) {
	for _, tc := range []struct {
		name            string
		issued, expires time.Time
		jitter          float64
		want            time.Time
	}{
		{"15 min, no jitter: at 2/3", t0, t0.Add(15 * time.Minute), 0.5, t0.Add(10 * time.Minute)},
		{"15 min, earliest", t0, t0.Add(15 * time.Minute), 0, t0.Add(8*time.Minute + 30*time.Second)},
		{"15 min, latest", t0, t0.Add(15 * time.Minute), 0.999999999, t0.Add(11*time.Minute + 30*time.Second)},
		{"15 min, quarter", t0, t0.Add(15 * time.Minute), 0.25, t0.Add(9*time.Minute + 15*time.Second)},
		{"1 h", t0, t0.Add(time.Hour), 0.5, t0.Add(40 * time.Minute)},
		{"5 min, cut short by the session", t0, t0.Add(5 * time.Minute), 0.5, t0.Add(200 * time.Second)},
		{"across a year", time.Date(2026, 12, 31, 23, 55, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC), 0.5,
			time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC)},
		{"jitter below range", t0, t0.Add(15 * time.Minute), -3, t0.Add(8*time.Minute + 30*time.Second)},
		{"jitter above range", t0, t0.Add(15 * time.Minute), 7, t0.Add(11*time.Minute + 30*time.Second)},
		{"jitter NaN", t0, t0.Add(15 * time.Minute), math.NaN(), t0.Add(8*time.Minute + 30*time.Second)},
		{"expired at issue", t0, t0, 0.5, t0},
		{"expires before issue", t0, t0.Add(-time.Minute), 0.5, t0},
	} {
		if got := nextRefresh(tc.issued, tc.expires, tc.jitter); !got.Equal(tc.want) {
			t.Errorf("%s: nextRefresh = %s, want %s", tc.name, got.Format(time.TimeOnly), tc.want.Format(time.TimeOnly))
		}
	}
}

func TestRefreshAt(t *testing.T) {
	tok := func(access, session time.Duration) *tokens {
		return &tokens{issued: t0, accessExp: t0.Add(access), sessionExp: t0.Add(session)}
	}
	for _, tc := range []struct {
		name string
		t    *tokens
		want time.Time
	}{
		{"start of a 7-day session", tok(15*time.Minute, 7*24*time.Hour), t0.Add(10 * time.Minute)},
		{"access ends 14 min before the session", tok(15*time.Minute, 29*time.Minute), t0.Add(10 * time.Minute)},
		{"access ends with the session: nothing to refresh", tok(6*time.Minute, 6*time.Minute), t0.Add(6 * time.Minute)},
		{"access ends 30 s before the session: not worth it", tok(15*time.Minute, 15*time.Minute+30*time.Second), t0.Add(15*time.Minute + 30*time.Second)},
		{"access ends 1 min before the session: refresh", tok(15*time.Minute, 16*time.Minute), t0.Add(10 * time.Minute)},
	} {
		if got := refreshAt(tc.t, 0.5); !got.Equal(tc.want) {
			t.Errorf("%s: refreshAt = %s, want %s", tc.name, got.Sub(t0), tc.want.Sub(t0))
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		n := i + 1
		if got := backoff(n, 0.5); got != w {
			t.Errorf("backoff(%d, 0.5) = %s, want %s", n, got, w)
		}
		if got, lo := backoff(n, 0), w*8/10; got != lo {
			t.Errorf("backoff(%d, 0) = %s, want %s", n, got, lo)
		}
		if got, hi := backoff(n, 1), w*12/10; got != hi {
			t.Errorf("backoff(%d, 1) = %s, want %s", n, got, hi)
		}
	}
	if got := backoff(1000, 0.5); got != maxBackoff {
		t.Errorf("backoff(1000) = %s", got)
	}
}

func TestRetryAt(t *testing.T) {
	// A 15-minute token issued at t0 in a 7-day session; its last usable
	// moment is t0+14m30s.
	tok := &tokens{issued: t0, accessExp: t0.Add(15 * time.Minute), sessionExp: t0.Add(7 * 24 * time.Hour)}
	end := &tokens{issued: t0, accessExp: t0.Add(15 * time.Minute), sessionExp: t0.Add(15*time.Minute + 2*time.Minute)}
	for _, tc := range []struct {
		name       string
		now        time.Time
		t          *tokens
		n          int
		retryAfter time.Duration
		want       time.Duration // after now
	}{
		{"first failure, plenty of time", t0.Add(10 * time.Minute), tok, 1, 0, 5 * time.Second},
		{"fourth failure, plenty of time", t0.Add(10 * time.Minute), tok, 4, 0, 40 * time.Second},
		{"backoff would outlast the token: halfway to its last moment", t0.Add(13 * time.Minute), tok, 5, 0, 45 * time.Second},
		{"close to the last moment: not sooner than minRetry", t0.Add(14*time.Minute + 28*time.Second), tok, 7, 0, minRetry},
		{"token expired: plain backoff", t0.Add(20 * time.Minute), tok, 7, 0, 5 * time.Minute},
		{"Retry-After longer than the backoff", t0.Add(10 * time.Minute), tok, 1, 30 * time.Second, 30 * time.Second},
		{"Retry-After is capped", t0.Add(20 * time.Minute), tok, 1, time.Hour, maxBackoff},
		{"not after the session's end", t0.Add(16 * time.Minute), end, 8, 0, time.Minute},
	} {
		if got := retryAt(tc.now, tc.t, tc.n, 0.5, tc.retryAfter).Sub(tc.now); got != tc.want {
			t.Errorf("%s: retry in %s, want %s", tc.name, got, tc.want)
		}
	}
}
