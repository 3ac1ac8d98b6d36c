package service

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"vigie/platform/platformtest"
)

// TestChromiumThroughTheAgent is a person's browser on a workstation with
// the agent: Debian's Chromium, headless, configured with nothing but the
// agent's PAC URL and an NSS database that trusts the tenant's CA, browsing
// through the real agent to the real gateway (which inspects) and origin.
//
//   - Before signing in, a page load ends on the platform's "Sign in to
//     continue" page (the gateway redirects a navigation inside the
//     tunnel the agent opened without a token), which links to this
//     agent's /login on its port, and the agent starts the sign-in.
//   - Signed in, an HTTPS page renders the origin's text: Chromium accepted
//     the leaf the gateway minted for it, the agent attached alice's token,
//     and the access log has it under alice.
//   - A blocked site renders Vigie's block page.
//
// No origin ever sees a token. It skips without Chromium and certutil,
// unless VIGIE_REQUIRE_CHROMIUM=1 (CI).
func TestChromiumThroughTheAgent(t *testing.T) {
	o := newOrigin(t)
	p := startPlatform(t, o)
	s := newSigner(t, p)
	uid := fmt.Sprint(os.Getuid())
	s.as(uid, "alice")
	// The sign-in the agent starts waits until the first page has been
	// seen signed out (Chromium's own requests at start would start it
	// before the page, and the signer is quick).
	logins := make(chan string, 8)
	a := startAgent(t, agentConfig(t, p), Options{UserMode: true, Dial: o.dial,
		OpenBrowser: func(_, authorize string) error { logins <- authorize; return nil }})
	eventually(t, 10*time.Second, "the agent has its configuration", func() bool {
		snap := a.syncer.Current()
		return snap.PAC != nil && snap.Config.Gateway != "" && len(snap.CABundle) > 0
	})
	b := platformtest.NewChromium(t, a.syncer.Current().CABundle, "--proxy-pac-url=http://"+a.Addr()+"/proxy.pac")

	dom := b.DumpDOM(t, "https://www.example.com/before-sign-in")
	if !strings.Contains(dom, "Sign in to continue") || !strings.Contains(dom, "https://www.example.com/before-sign-in") ||
		!strings.Contains(dom, "http://"+a.Addr()+"/login") {
		t.Fatalf("before the sign-in, the page is not the sign-in page:\n%s\n%s", dom, b.LastStderr)
	}
	select {
	case authorize := <-logins:
		if err := s.open(uid, authorize); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the browser's first request started no sign-in")
	}
	select {
	case err := <-s.errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not sign the user in after the browser's first request")
	}

	dom = b.DumpDOM(t, "https://www.example.com/chromium")
	if !strings.Contains(dom, "origin says hello to www.example.com/chromium") {
		t.Fatalf("the page is not the origin's (a certificate interstitial?):\n%s\n%s", dom, b.LastStderr)
	}
	eventually(t, 10*time.Second, "Chromium's request is in the access log as alice", func() bool {
		for _, r := range accessLog(t, p, "www.example.com") {
			if r.Path == "/chromium" && r.Status == http.StatusOK && strings.Contains(r.User, "alice") {
				return true
			}
		}
		return false
	})

	putPolicy(t, p, `{"version":0,"policy":{"rules":[{"id":"no-gambling","categories":["gambling"],"action":"block"}]}}`)
	c := through(t, a)
	eventually(t, 10*time.Second, "the policy reaches the gateway", func() bool {
		// (The origin's certificate does not name casino.example: the
		// gateway's refusal of it is a 403 too, without the rule.)
		code, body, _ := get(c, "https://casino.example/probe")
		return code == http.StatusForbidden && strings.Contains(body, "no-gambling")
	})
	dom = b.DumpDOM(t, "https://casino.example/play")
	for _, want := range []string{"This page is blocked", "casino.example", "no-gambling"} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the blocked page lacks %q:\n%s\n%s", want, dom, b.LastStderr)
		}
	}
	if bad := o.leaked(); len(bad) > 0 {
		t.Errorf("an origin saw %q", bad)
	}
}
