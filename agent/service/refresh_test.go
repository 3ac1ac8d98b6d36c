package service

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigie/agent/session"
	"vigie/platform/platformtest"
	"vigie/platform/server"
)

// TestRefreshAndRevocation runs the platform and the agent on one clock
// that the test moves on, with alice's requests going through the agent
// to the gateway all the while:
//
//   - 12 minutes on, the agent refreshes her token at the platform;
//     16 minutes on, the first token has expired at the gateway. No
//     request fails across that boundary.
//   - An administrator revokes her sessions; at the next refresh the
//     platform answers invalid_grant and the agent signs her out at
//     once, with minutes left on her access token: her next request
//     starts a sign-in.
func TestRefreshAndRevocation(t *testing.T) {
	t.Parallel() // a platform of its own
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	o := newOrigin(t)
	roots := x509.NewCertPool()
	roots.AddCert(o.tls.Certificate())
	p := platformtest.Start(t, platformtest.Options{Now: now, Server: server.Options{OriginRoots: roots, GatewayDial: o.dial}})
	s := newSigner(t, p)
	me := fmt.Sprint(os.Getuid())
	s.as(me, "alice")
	var signedIn atomic.Bool
	logins := make(chan string, 16)
	open := func(userID, u string) error {
		if signedIn.Load() {
			logins <- u // the second sign-in: not done here
			return nil
		}
		return s.open(userID, u)
	}
	a := startAgent(t, agentConfig(t, p), Options{UserMode: true, OpenBrowser: open, Dial: o.dial, Now: now})
	eventually(t, 10*time.Second, "the agent has its configuration", func() bool {
		return a.syncer.Current().PAC != nil && a.syncer.Current().Config.Gateway != ""
	})
	if _, err := a.sessions.BeginLogin(me); err != nil {
		t.Fatal(err)
	}
	if err := <-s.errs; err != nil {
		t.Fatal(err)
	}
	signedIn.Store(true)
	first, err := a.sessions.Token(me)
	if err != nil {
		t.Fatal(err)
	}

	// Alice's browsing: four clients, one request after the other.
	c := through(t, a)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		sent     atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				code, body, err := get(c, fmt.Sprintf("http://www.example.com/load-%d-%d", w, i))
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %v %.100s", code, err, body))
					mu.Unlock()
				}
			}
		})
	}
	waitSent := func(n int64) {
		t.Helper()
		target := sent.Load() + n
		eventually(t, 10*time.Second, fmt.Sprintf("%d more requests", n), func() bool { return sent.Load() >= target })
	}
	waitSent(20)
	skew.Store(int64(12 * time.Minute))
	eventually(t, 10*time.Second, "the token refreshed", func() bool {
		tok, err := a.sessions.Token(me)
		return err == nil && tok != first
	})
	waitSent(20)
	skew.Store(int64(16 * time.Minute)) // the first token has expired
	waitSent(40)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across the refresh: %q", len(failures), sent.Load(), failures[:min(len(failures), 5)])
	}
	t.Logf("%d requests across the refresh, none failed", sent.Load())
	// The boundary was real: the gateway refuses the first token now.
	req, _ := http.NewRequest("GET", "http://www.example.com/first-token", nil)
	req.Header.Set("Proxy-Authorization", "Bearer "+first)
	req.Header.Set("X-Vigie-Tenant", p.Tenant)
	gw := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.GatewayAddr})},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := gw.Do(req); err != nil || resp.StatusCode == http.StatusOK {
		t.Fatalf("the first token at the gateway, 16 minutes on: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Revoked at the platform: the next refresh signs her out, minutes
	// before her access token would have expired.
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(adminRequest(t, p, "POST", "/users/demo-alice/revoke", nil))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoking alice: %v %v", resp, err)
	}
	resp.Body.Close()
	skew.Store(int64(24 * time.Minute))
	a.sessions.Token(me) // as a request would: the refresh is due
	eventually(t, 10*time.Second, "alice signed out by invalid_grant", func() bool {
		_, err := a.sessions.Token(me)
		return errors.Is(err, session.ErrNeedsLogin) && !errors.Is(err, session.ErrRefreshing)
	})
	st := a.Report(me, "")
	if st.User.LoggedIn || st.User.State != "needs-login" || !strings.Contains(st.User.LastError, "invalid_grant") {
		t.Errorf("status after invalid_grant: %+v", st.User)
	}
	if left := st.User.AccessExpires; !left.IsZero() {
		t.Errorf("an access token is still reported: %v", left)
	}
	code, body, err := get(c, "http://www.example.com/after-revocation")
	if err != nil || (code != http.StatusFound && code != http.StatusProxyAuthRequired) {
		t.Errorf("request after the sign-out: %d %v %.200s", code, err, body)
	}
	select {
	case <-logins:
	case <-time.After(10 * time.Second):
		t.Error("no sign-in started after the sign-out")
	}
}

// adminRequest is a request to the tenant's admin API.
func adminRequest(t *testing.T, p *platformtest.Platform, method, path string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, p.BaseURL+"/api/v1/tenants/"+p.Tenant+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	return req
}
