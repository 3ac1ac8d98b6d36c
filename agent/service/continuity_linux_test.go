package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigie/platform/platformtest"
)

// platformProcess is the demo platform as a child process, so that the
// test can stop its gateway the hard way and start it again.
type platformProcess struct {
	t                    *testing.T
	dir, listen, gateway string
	cmd                  *exec.Cmd
	out                  bytes.Buffer
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (pp *platformProcess) start() {
	t := pp.t
	t.Helper()
	pp.out.Reset()
	pp.cmd = exec.Command(os.Args[0])
	pp.cmd.Env = append(os.Environ(), platformEnv+"="+pp.dir, "VIGIE_TEST_LISTEN="+pp.listen, "VIGIE_TEST_GATEWAY="+pp.gateway)
	pp.cmd.Stdout, pp.cmd.Stderr = &pp.out, &pp.out
	pp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}).Get("http://" + pp.listen + "/healthz")
		if err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", pp.gateway); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) || pp.cmd.ProcessState != nil {
			t.Fatalf("the platform did not start: %v\n%s", err, pp.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the platform as a crash would.
func (pp *platformProcess) kill() {
	pp.cmd.Process.Kill()
	pp.cmd.Wait()
}

// putAgentConfig sets the tenant's agent configuration through the admin
// API.
func (pp *platformProcess) putAgentConfig(cfg map[string]any) {
	t := pp.t
	var st struct {
		AdminToken string `json:"admin_token"`
	}
	b, err := os.ReadFile(filepath.Join(pp.dir, "demo-state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("demo state: %v", err)
	}
	body, _ := json.Marshal(cfg)
	req, _ := http.NewRequest("PUT", "http://"+pp.listen+"/api/v1/tenants/demo/agent-config", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
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

// TestContinuityWithARealGateway stops the gateway's process and starts it
// again, under each continuity policy: the agent goes FailOpen (traffic
// DIRECT, the period journaled) or FailClosed (the local page) within 12
// s, and back to Connected within 12 s of the gateway answering again.
func TestContinuityWithARealGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts a platform process, waiting out probe intervals (about a minute)")
	}
	pp := &platformProcess{t: t, dir: t.TempDir(), listen: freeAddr(t), gateway: freeAddr(t)}
	pp.start()
	t.Cleanup(pp.kill)
	// The portal check stays on loopback, and answers "no portal".
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(portal.Close)
	pp.putAgentConfig(map[string]any{"continuity": "fail-open", "portal_check_url": portal.URL + "/generate_204"})

	cfg, err := LoadConfig(filepath.Join(pp.dir, "agent.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.StateDir = freePort(t), t.TempDir()
	o := newOrigin(t)
	s := newSigner(t, nil)
	me := fmt.Sprint(os.Getuid())
	s.as(me, "alice")
	a := startAgent(t, cfg, Options{UserMode: true, OpenBrowser: s.open, Dial: o.dial})
	state := func() string { return a.Report(me, "").User.State }
	eventually(t, 10*time.Second, "the agent has the fail-open configuration", func() bool {
		return a.syncer.Current().Config.PortalCheckURL == portal.URL+"/generate_204"
	})
	if _, err := a.sessions.BeginLogin(me); err != nil {
		t.Fatal(err)
	}
	if err := <-s.errs; err != nil {
		t.Fatal(err)
	}
	eventually(t, 12*time.Second, "connected after the sign-in", func() bool { return state() == "connected" })
	c := through(t, a)
	// What a person sees when the policy closes the web: Chromium, with the
	// agent's PAC URL, on a plain-HTTP page (a browser shows no proxy's
	// answer to a CONNECT: HTTPS gets the browser's own error page).
	browser := platformtest.NewChromium(t, a.syncer.Current().CABundle, "--proxy-pac-url=http://"+a.Addr()+"/proxy.pac",
		"--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable")

	for _, policy := range []string{"fail-open", "fail-closed"} {
		if policy == "fail-closed" {
			pp.putAgentConfig(map[string]any{"continuity": "fail-closed", "portal_check_url": portal.URL + "/generate_204"})
			if err := a.syncer.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		stopped := time.Now()
		pp.kill()
		eventually(t, 12*time.Second, policy+" within 12 s of the gateway stopping", func() bool { return state() == policy })
		t.Logf("%s %.1f s after the gateway stopped", policy, time.Since(stopped).Seconds())

		code, body, err := get(c, "http://www.example.com/while-down")
		switch {
		case err != nil:
			t.Fatal(err)
		case policy == "fail-open" && (code != 200 || !strings.Contains(body, "origin says hello")):
			t.Fatalf("fail-open: DIRECT request: %d %.200s", code, body)
		case policy == "fail-closed" && (code != http.StatusBadGateway || !strings.Contains(body, "Vigie")):
			t.Fatalf("fail-closed: %d %.200s", code, body)
		}
		if policy == "fail-closed" {
			if dom := browser.DumpDOM(t, "http://www.example.com/in-a-browser"); !strings.Contains(dom, "Web access is paused") ||
				!strings.Contains(dom, "www.example.com") {
				t.Fatalf("fail-closed, in Chromium:\n%s\n%s", dom, browser.LastStderr)
			}
		}
		if policy == "fail-open" {
			ps := a.journal.Periods()
			if len(ps) == 0 || !ps[len(ps)-1].Open() || !strings.Contains(ps[len(ps)-1].Reason, "gateway unreachable") {
				t.Fatalf("journal while failing open: %+v", ps)
			}
		}

		pp.start()
		back := time.Now()
		eventually(t, 12*time.Second, "connected within 12 s of the gateway answering", func() bool { return state() == "connected" })
		t.Logf("connected %.1f s after the gateway answered again", time.Since(back).Seconds())
		// Routed to the gateway again (which, in this test, cannot reach
		// the origin: no DNS for it; what matters is the route).
		before := a.px.Counters().Gateway
		if _, _, err := get(c, "http://www.example.com/after"); err != nil || a.px.Counters().Gateway != before+1 {
			t.Fatalf("after recovery: %v, counters %+v", err, a.px.Counters())
		}
	}
	ps := a.journal.Periods()
	if len(ps) != 1 || ps[0].Open() {
		t.Errorf("journal: want one closed fail-open period (fail-closed sends nothing around the gateway): %+v", ps)
	}
}
