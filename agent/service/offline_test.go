package service

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// unreachable is a network on which the platform's API cannot be reached.
type unreachable struct{}

func (unreachable) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp: connect: network is unreachable")
}

// TestStartsOffline stops a signed-in agent and starts it again while the
// platform's API cannot be reached: it serves at once with what it had,
// the cached configuration, PAC and CA bundle, its enrolment and alice's
// tokens, and her requests reach the gateway as her.
func TestStartsOffline(t *testing.T) {
	t.Parallel() // a platform of its own; waits on probes and the access log
	o := newOrigin(t)
	p := startPlatform(t, o)
	s := newSigner(t, p)
	me := fmt.Sprint(os.Getuid())
	s.as(me, "alice")
	cfg := agentConfig(t, p)
	first, stop := runAgent(t, cfg, Options{UserMode: true, OpenBrowser: s.open, Dial: o.dial})
	eventually(t, 10*time.Second, "the agent has its configuration", func() bool {
		snap := first.syncer.Current()
		return snap.PAC != nil && snap.Config.Gateway != "" && len(snap.CABundle) > 0 && snap.Version("release") > 0
	})
	if _, err := first.sessions.BeginLogin(me); err != nil {
		t.Fatal(err)
	}
	if err := <-s.errs; err != nil {
		t.Fatal(err)
	}
	had := first.Report(me, "")
	device := first.device
	stop()

	a := startAgent(t, cfg, Options{UserMode: true, Dial: o.dial, HTTPClient: &http.Client{Transport: unreachable{}},
		OpenBrowser: func(string, string) error { return errors.New("no sign-in expected") }})
	st := a.Report(me, "")
	for kind, ks := range had.Sync {
		if st.Sync[kind].Version != ks.Version || ks.Version == 0 {
			t.Errorf("%s offline: version %d, had %d", kind, st.Sync[kind].Version, ks.Version)
		}
	}
	if a.device != device || st.Gateway != had.Gateway || st.User == nil || !st.User.LoggedIn {
		t.Fatalf("offline start: device %s (was %s), %+v", a.device, device, st)
	}
	for _, u := range []string{"http://www.example.com/offline", "https://www.example.com/offline-tls"} {
		code, body, err := get(through(t, a), u)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "origin says hello") {
			t.Fatalf("%s from an agent started offline: %d %v %.200s", u, code, err, body)
		}
	}
	eventually(t, 10*time.Second, "the requests are in the access log as alice", func() bool {
		n := 0
		for _, r := range accessLog(t, p, "www.example.com") {
			if strings.HasPrefix(r.Path, "/offline") && strings.Contains(r.User, "alice") && r.Status == 200 {
				n++
			}
		}
		return n == 2
	})
	eventually(t, 10*time.Second, "the failed sync is reported", func() bool {
		return strings.Contains(a.Report(me, "").Sync["config"].LastError, "unreachable")
	})
}
