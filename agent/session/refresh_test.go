package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// runManager runs m.Run until the returned stop is called; stop waits for
// Run to return.
func runManager(t *testing.T, m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// checker calls Token the way the proxy does and collects what is wrong.
type checker struct {
	t        *testing.T
	f        *fakePlatform
	m        *Manager
	mu       sync.Mutex
	problems []string
	calls    atomic.Int64
	served   atomic.Int64
}

func (c *checker) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// call asks for osUser's token at now; mustServe says whether it must
// succeed.
func (c *checker) call(osUser, user string, mustServe bool) {
	now := time.Now()
	c.calls.Add(1)
	tok, err := c.m.Token(osUser)
	if err != nil {
		if mustServe {
			c.problem("%s: Token(%s) failed at %s: %v", user, osUser, now.Format(time.DateTime), err)
		} else if !errors.Is(err, ErrNeedsLogin) {
			c.problem("Token(%s): %v is not ErrNeedsLogin", osUser, err)
		}
		return
	}
	c.served.Add(1)
	a, ok := c.f.accessInfo(tok)
	switch {
	case !ok:
		c.problem("Token(%s) returned a token the platform never issued", osUser)
	case a.user != user:
		c.problem("Token(%s) returned %s's token", osUser, a.user)
	case a.exp.Sub(now) < TokenMargin:
		c.problem("Token(%s) at %s returned a token expiring at %s", osUser, now.Format(time.DateTime), a.exp.Format(time.DateTime))
	}
}

func (c *checker) report() {
	for _, p := range c.problems {
		c.t.Error(p)
	}
}

// TestRefresherEightDays runs the refresher for eight simulated days
// against the fake platform: two users, Token called from several
// goroutines every few seconds, refreshes at about 2/3 of each access
// token's lifetime, never two at once for a user, no call ever served an
// expired token or failing before the 7-day session ends, and ErrNeedsLogin
// from then on.
func TestRefresherEightDays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		f.latency = 2 * time.Second // refreshes take long enough to overlap Token calls
		dir := fastDir(t)
		m := newTestManager(t, testOptions(t, f, dir))
		users := map[string]string{"1000": "alice", "1001": "bob"}
		start := time.Now()
		for osUser, user := range users {
			login(t, m, f, osUser, user)
		}
		stop := runManager(t, m)

		const days = 8 * 24 * time.Hour
		c := &checker{t: t, f: f, m: m}
		var wg sync.WaitGroup
		for osUser, user := range users {
			end := f.sessionEnd(user)
			// The last access token ends with the session; the agent
			// counts its lifetime from its request, so it stops serving it
			// a little before TokenMargin ahead of the end.
			lastServed := end.Add(-TokenMargin - f.latency - time.Second)
			for _, every := range []time.Duration{5 * time.Second, 13 * time.Second} {
				wg.Go(func() {
					tick := time.NewTicker(every)
					defer tick.Stop()
					for now := time.Now(); now.Before(start.Add(days)); now = <-tick.C {
						c.call(osUser, user, now.Before(lastServed))
						if !now.Before(end) {
							if _, err := m.Token(osUser); err != ErrNeedsLogin {
								c.problem("Token(%s) after the session's end: %v, want ErrNeedsLogin", osUser, err)
							}
						}
					}
				})
			}
		}
		// A crowd at once, around two refresh boundaries of the first day:
		// single flight must hold.
		for range 20 {
			wg.Go(func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for now := time.Now(); now.Before(start.Add(25 * time.Minute)); now = <-tick.C {
					c.call("1000", "alice", true)
				}
			})
		}
		wg.Wait()
		stop()
		c.report()

		// Refreshes every 8m30s to 11m30s (2/3 of 15 min ± 10%) for seven
		// days, less the last quarter hour where the session caps the
		// token: 876 to 1186, about 1008 on average.
		lo, hi := int((7*24*time.Hour-15*time.Minute)/(690*time.Second)), int(7*24*time.Hour/(510*time.Second))+1
		for osUser, user := range users {
			s := f.Stats(user)
			end := f.sessionEnd(user)
			t.Logf("%s (%s): %d refreshes, first %s after sign-in, last %s before the session's end", osUser, user, s.ok,
				s.attempts[0].Sub(start), end.Sub(s.attempts[len(s.attempts)-1]))
			if s.ok < lo || s.ok > hi {
				t.Errorf("%s: %d refreshes in 7 days, want %d to %d", user, s.ok, lo, hi)
			}
			if s.ok < 958 || s.ok > 1058 {
				t.Errorf("%s: %d refreshes in 7 days, want about 1008 (every 10 min on average)", user, s.ok)
			}
			if len(s.attempts) != s.ok || s.invalidGrants != 0 {
				t.Errorf("%s: %d refresh requests, %d succeeded, %d invalid_grant", user, len(s.attempts), s.ok, s.invalidGrants)
			}
			if s.max != 1 {
				t.Errorf("%s: %d refreshes at once, want 1", user, s.max)
			}
			if last := s.attempts[len(s.attempts)-1]; !last.Before(end) {
				t.Errorf("%s: refresh attempted at %s, after the session's end", user, last)
			}
			if _, err := os.Stat(filepath.Join(dir, "state", fileName(osUser))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: file after the session's end: %v", osUser, err)
			}
		}
		for _, st := range m.Status() {
			if st.LoggedIn || !strings.Contains(st.LastError, "sign in again") {
				t.Errorf("status after 8 days: %+v", st)
			}
		}
		if c.served.Load() < c.calls.Load()*8/10 {
			t.Errorf("served %d of %d calls", c.served.Load(), c.calls.Load())
		}
		t.Logf("%d Token calls, %d served", c.calls.Load(), c.served.Load())
	})
}

// failFor makes the fake answer refresh requests of user with fail until
// n of them failed, and records when they arrived.
func failRefreshes(f *fakePlatform, n int, fail func() (int, error)) {
	var count atomic.Int64
	f.setFault(func(req *http.Request, form url.Values) (int, error) {
		if form.Get("grant_type") != "refresh_token" || count.Add(1) > int64(n) {
			return 0, nil
		}
		return fail()
	})
}

// TestRefresherBackoff: the platform fails refreshes with 503 four times;
// the agent retries after 5, 10, 20 and 40 s (±20%), the fifth attempt
// succeeds, and Token never fails meanwhile.
func TestRefresherBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		m := newTestManager(t, testOptions(t, f, t.TempDir()))
		login(t, m, f, "1000", "alice")
		failRefreshes(f, 4, func() (int, error) { return http.StatusServiceUnavailable, nil })
		var sawError atomic.Bool
		m.onRefresh = func(_ string, err error) {
			if err != nil && m.Status()[0].LastError != "" && m.Status()[0].LoggedIn {
				sawError.Store(true)
			}
		}
		stop := runManager(t, m)
		c := &checker{t: t, f: f, m: m}
		tick := time.NewTicker(3 * time.Second)
		for start := time.Now(); time.Since(start) < 30*time.Minute; <-tick.C {
			c.call("1000", "alice", true)
		}
		tick.Stop()
		stop()
		c.report()

		s := f.Stats("alice")
		if len(s.attempts) < 6 || s.ok < 2 {
			t.Fatalf("%d attempts, %d ok: want 4 failures then refreshes", len(s.attempts), s.ok)
		}
		for i := range 4 {
			gap := s.attempts[i+1].Sub(s.attempts[i])
			if lo, hi := backoff(i+1, 0), backoff(i+1, 1); gap < lo || gap > hi {
				t.Errorf("wait after failure %d: %s, want %s to %s", i+1, gap, lo, hi)
			}
		}
		if !sawError.Load() {
			t.Error("Status did not show the failures while signed in")
		}
		if st := m.Status()[0]; st.LastError != "" || !st.LoggedIn {
			t.Errorf("status after recovery: %+v", st)
		}
	})
}

// TestRefresherOutlastedByOutage: the platform is unreachable for 40
// minutes, longer than an access token lives. The agent keeps retrying with
// backoff (not hammering), Token says ErrRefreshing (an ErrNeedsLogin) once
// the token is spent but the user stays signed in, and the first refresh
// after the outage brings tokens back without a new login.
func TestRefresherOutlastedByOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		m := newTestManager(t, testOptions(t, f, t.TempDir()))
		login(t, m, f, "1000", "alice")
		start := time.Now()
		outageEnd := start.Add(5*time.Minute + 40*time.Minute)
		f.setFault(func(req *http.Request, form url.Values) (int, error) {
			if now := time.Now(); now.After(start.Add(5*time.Minute)) && now.Before(outageEnd) {
				return 0, errors.New("dial tcp: connect: network is unreachable")
			}
			return 0, nil
		})
		stop := runManager(t, m)
		defer stop()

		time.Sleep(14*time.Minute + 31*time.Second) // simulated: just past the token's last usable moment
		if _, err := m.Token("1000"); !errors.Is(err, ErrRefreshing) || !errors.Is(err, ErrNeedsLogin) {
			t.Fatalf("Token with an expired access token during an outage: %v, want ErrRefreshing", err)
		}
		if st := m.Status()[0]; !st.LoggedIn || !strings.Contains(st.LastError, "unreachable") {
			t.Errorf("status during the outage: %+v", st)
		}
		time.Sleep(time.Until(outageEnd))
		during := len(f.Stats("alice").attempts)
		time.Sleep(maxBackoff*12/10 + time.Second)
		s := f.Stats("alice")
		// 5, 10, 20, 40 s, then halving the time left before the token's
		// last usable moment (at least 2 s apart), then every 5 min once
		// it has expired: about 20 attempts, not hundreds.
		t.Logf("%d refresh attempts during the 40-minute outage", during)
		if during < 10 || during > 30 {
			t.Errorf("%d refresh attempts in a 40-minute outage, want about 20", during)
		}
		if s.ok != 1 {
			t.Errorf("%d refreshes after the outage, want 1", s.ok)
		}
		if tok, err := m.Token("1000"); err != nil {
			t.Errorf("Token after the outage: %v", err)
		} else if a, _ := f.accessInfo(tok); a.user != "alice" {
			t.Errorf("token of %q", a.user)
		}
	})
}

// TestRefresherInvalidGrant: an administrator revokes alice's session; the
// next refresh gets invalid_grant and signs her out at once, although her
// access token has minutes left.
func TestRefresherInvalidGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		dir := t.TempDir()
		m := newTestManager(t, testOptions(t, f, dir))
		signedIn := time.Now()
		login(t, m, f, "1000", "alice")
		login(t, m, f, "1001", "bob")
		refused := make(chan time.Time, 1)
		m.onRefresh = func(user string, err error) {
			if user == "1000" && sessionGone(err) {
				refused <- time.Now()
			}
		}
		stop := runManager(t, m)
		defer stop()
		f.revokeUser("alice")
		at := <-refused
		if _, err := m.Token("1000"); err != ErrNeedsLogin {
			t.Errorf("Token right after invalid_grant: %v, want ErrNeedsLogin", err)
		}
		if at.Sub(signedIn) > 15*time.Minute-TokenMargin {
			t.Errorf("refused %s after sign-in: the access token had expired anyway", at.Sub(signedIn))
		}
		if _, err := m.Token("1001"); err != nil {
			t.Errorf("bob's token: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "state", fileName("1000"))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("alice's file after invalid_grant: %v", err)
		}
		for _, st := range m.Status() {
			if st.UserID == "1000" && (st.LoggedIn || !strings.Contains(st.LastError, "invalid_grant")) {
				t.Errorf("status: %+v", st)
			}
		}
		time.Sleep(time.Hour)
		if s := f.Stats("alice"); len(s.attempts) != 1 {
			t.Errorf("%d refresh attempts for a signed-out user, want 1", len(s.attempts))
		}
	})
}

// TestRefreshTokenReuse: an old copy of alice's file comes back (a backup
// restored); its refresh token was spent, so the platform revokes the whole
// session and both the restored agent and the original end signed out.
func TestRefreshTokenReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		dir := t.TempDir()
		o := testOptions(t, f, dir)
		m := newTestManager(t, o)
		login(t, m, f, "1000", "alice")
		path := filepath.Join(o.StateDir, fileName("1000"))
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		stop := runManager(t, m)
		time.Sleep(12 * time.Minute) // one refresh
		stop()
		if s := f.Stats("alice"); s.ok != 1 {
			t.Fatalf("%d refreshes", s.ok)
		}
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		restored := newTestManager(t, o)
		stop = runManager(t, restored)
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		if _, err := restored.Token("1000"); err != ErrNeedsLogin {
			t.Errorf("restored agent: %v, want ErrNeedsLogin", err)
		}
		stop = runManager(t, m)
		time.Sleep(15 * time.Minute)
		stop()
		if _, err := m.Token("1000"); err != ErrNeedsLogin {
			t.Errorf("original agent after the reuse: %v, want ErrNeedsLogin", err)
		}
	})
}

// TestTokenKicksRefresh: timers stop while a laptop sleeps, the wall clock
// does not. After a sleep, the first Token call gets the due refresh going
// at once instead of waiting for Run's timer.
func TestTokenKicksRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePlatform()
		var slept atomic.Int64
		o := testOptions(t, f, t.TempDir())
		o.Now = func() time.Time { return time.Now().Add(time.Duration(slept.Load())) }
		m := newTestManager(t, o)
		login(t, m, f, "1000", "alice")
		stop := runManager(t, m)
		defer stop()
		synctest.Wait()
		before := time.Now()
		slept.Store(int64(12 * time.Minute)) // the wall clock jumped; no timer fired
		if _, err := m.Token("1000"); err != nil {
			t.Fatalf("Token: %v", err)
		}
		synctest.Wait()
		if s := f.Stats("alice"); s.ok != 1 || !time.Now().Equal(before) {
			t.Errorf("%d refreshes after %s: want 1 at once", s.ok, time.Since(before))
		}
	})
}
