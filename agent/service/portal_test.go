package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigie/agent/health"
	"vigie/platform/platformtest"
)

// TestCaptivePortal takes a signed-in laptop to a hotel: the network
// refuses the gateway and a portal answers the detection URL with a
// redirect to its sign-in page. Although the tenant's policy is
// fail-closed, the agent lets everything DIRECT so that the user can pass
// the portal, and journals the period; once the portal is passed (the
// gateway answers, the detection URL gets its 204), normal routing
// resumes and the period ends.
func TestCaptivePortal(t *testing.T) {
	t.Parallel() // a platform of its own; waits on probes and the access log
	o := newOrigin(t)
	p := startPlatform(t, o)
	var hotel atomic.Bool
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hotel.Load() {
			http.Redirect(w, r, "http://portal.test/login", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(portal.Close)
	// The network as the agent sees it (proxy and prober alike).
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch {
		case hotel.Load() && addr == p.GatewayAddr:
			return nil, errors.New("dial tcp " + addr + ": connect: connection refused")
		case strings.HasPrefix(addr, "portal.test:"):
			return (&net.Dialer{}).DialContext(ctx, network, portal.Listener.Addr().String())
		}
		return o.dial(ctx, network, addr)
	}
	putAgentConfig(t, p, `{"continuity":"fail-closed","probe_interval":"1s","portal_check_url":"http://portal.test/generate_204"}`)

	s := newSigner(t, p)
	me := fmt.Sprint(os.Getuid())
	s.as(me, "alice")
	a := startAgent(t, agentConfig(t, p), Options{UserMode: true, OpenBrowser: s.open, Dial: dial})
	state := func() string { return a.Report(me, "").User.State }
	eventually(t, 10*time.Second, "the agent has the tenant's configuration", func() bool {
		return a.syncer.Current().Config.ProbeInterval.D() == time.Second && a.syncer.Current().PAC != nil
	})
	if a.syncer.Current().Config.Gateway != p.GatewayAddr {
		t.Fatalf("gateway %q in the configuration, %q listening", a.syncer.Current().Config.Gateway, p.GatewayAddr)
	}
	if _, err := a.sessions.BeginLogin(me); err != nil {
		t.Fatal(err)
	}
	if err := <-s.errs; err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "connected", func() bool { return state() == "connected" })
	c := through(t, a)

	hotel.Store(true)
	eventually(t, 10*time.Second, "captive-portal at the hotel", func() bool { return state() == "captive-portal" })
	before := a.px.Counters()
	if code, body, err := get(c, "http://www.example.com/hotel"); err != nil || code != 200 || !strings.Contains(body, "origin says hello") {
		t.Fatalf("behind the portal: %d %v %.200s", code, err, body)
	}
	// HTTPS goes DIRECT too: the client sees the origin's own certificate
	// (trusting only it), not one the gateway would make.
	originOnly := x509.NewCertPool()
	originOnly.AddCert(o.tls.Certificate())
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: a.Addr()}),
		TLSClientConfig: &tls.Config{RootCAs: originOnly, ServerName: "example.com"}}}
	if code, _, err := get(direct, "https://www.example.com/hotel-tls"); err != nil || code != 200 {
		t.Fatalf("HTTPS behind the portal: %d %v", code, err)
	}
	if after := a.px.Counters(); after.Direct != before.Direct+2 || after.Gateway != before.Gateway || after.Refused != before.Refused {
		t.Errorf("behind the portal, counters went from %+v to %+v", before, after)
	}
	ps := a.journal.Periods()
	if len(ps) == 0 || !ps[len(ps)-1].Open() || ps[len(ps)-1].State != health.CaptivePortal || ps[len(ps)-1].Reason != "captive portal" {
		t.Fatalf("journal behind the portal: %+v", ps)
	}

	hotel.Store(false) // the portal is passed
	eventually(t, 10*time.Second, "connected once the portal is passed", func() bool { return state() == "connected" })
	before = a.px.Counters()
	if code, body, err := get(through(t, a), "http://www.example.com/after-the-portal"); err != nil || code != 200 || !strings.Contains(body, "origin says hello") {
		t.Fatalf("after the portal: %d %v %.200s", code, err, body)
	}
	if after := a.px.Counters(); after.Gateway != before.Gateway+1 {
		t.Errorf("after the portal, counters went from %+v to %+v", before, after)
	}
	ps = a.journal.Periods()
	if last := ps[len(ps)-1]; len(ps) != 1 || last.Open() || last.State != health.CaptivePortal || !last.End.After(last.Start) {
		t.Errorf("journal after the portal: %+v", ps)
	}
}

// putAgentConfig sets the tenant's agent configuration through the admin
// API.
func putAgentConfig(t *testing.T, p *platformtest.Platform, doc string) {
	t.Helper()
	req := adminRequest(t, p, "PUT", "/agent-config", strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT agent-config: %s", resp.Status)
	}
}
