package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigie/agent/proxy"
	"vigie/agent/service"
	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/server"
)

// TestStatusAndDiagOfARunningAgent runs an agent in user mode against the
// demo platform, signs alice in and browses once, then runs `agent
// status` and `agent diag` as an admin would: status names her state,
// her token's expiry and her session's, the gateway's health, each
// artifact's version and last sync, and the counters; the diag bundle
// has the agent's real log and status and no token, key or secret.
func TestStatusAndDiagOfARunningAgent(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") }))
	t.Cleanup(origin.Close)
	toOrigin := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host) == nil {
			addr = origin.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	p := platformtest.Start(t, platformtest.Options{Server: server.Options{OriginRoots: x509.NewCertPool(), GatewayDial: toOrigin}})

	dir := t.TempDir()
	lns, err := proxy.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	port := lns[0].Addr().(*net.TCPAddr).Port
	for _, ln := range lns {
		ln.Close()
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, "platform_url: %s\ntenant: %s\nenrollment_secret: %s\ndistribution_key: %s\nport: %d\nstate_dir: %s\n",
		p.BaseURL, p.Tenant, p.EnrollmentSecret, p.DistributionKey, port, filepath.Join(dir, "state")), 0o600)
	cfg, err := service.LoadConfig(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(cfg.StateDir, 0o700)
	logFile := service.LogFile(cfg.StateDir)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan *service.Agent, 1), make(chan error, 1)
	go func() {
		done <- service.Run(ctx, cfg, service.Options{UserMode: true, Dial: toOrigin, Ready: func(a *service.Agent) { ready <- a },
			Logger:      slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
			OpenBrowser: func(string, string) error { return nil }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		logFile.Close()
	})
	var a *service.Agent
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("agent: %v", err)
	}

	// alice signs in through the agent's /login, and browses once.
	b := platformtest.NewBrowser()
	b.Client.Transport = &http.Transport{Proxy: nil}
	if resp, page, err := b.SignIn("http://"+a.Addr()+"/login", "alice", demo.Users[0].Password); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %v %v %.300s", resp, err, page)
	}
	through := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: a.Addr()})}, Timeout: 10 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := through.Get("http://www.example.com/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("browsing through the agent: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond) // the agent's first sync and probe
	}

	code, out, stderr := agent(t, "status", "--config", cfgPath, "--user-mode")
	if code != 0 {
		t.Fatalf("agent status: exit %d, %s", code, stderr)
	}
	stamp := `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`
	for _, want := range []string{
		`(?m)^tenant +demo \(device \w+\)$`,
		`(?m)^platform +` + regexp.QuoteMeta(p.BaseURL) + `$`,
		`(?m)^you +\S+: connected$`,
		`(?m)^token +expires ` + stamp + `; sign-in again by ` + stamp + `$`,
		`(?m)^gateway +` + regexp.QuoteMeta(p.GatewayAddr) + ` up \(continuity: fail-open\)$`,
		`(?m)^config +version [1-9]\d*, last sync ` + stamp + `$`,
		`(?m)^pac +version [1-9]\d*, last sync ` + stamp + `$`,
		`(?m)^ca +version [1-9]\d*, last sync ` + stamp + `$`,
		`(?m)^traffic +[1-9]\d* requests, \d+ tunnels: \d+ direct, [1-9]\d* gateway, 0 other proxy, \d+ refused, \d+ failed$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("agent status has no line like %s:\n%s", want, out)
		}
	}

	bundle := filepath.Join(dir, "diag.tar.gz")
	if code, _, stderr := agent(t, "diag", "--config", cfgPath, "--user-mode", "-o", bundle); code != 0 {
		t.Fatalf("agent diag: exit %d, %s", code, stderr)
	}
	files := readBundle(t, bundle)
	if !strings.Contains(files["status.json"], `"state": "connected"`) || !strings.Contains(files["agent.log"], "session: signed in") {
		t.Errorf("the bundle lacks the status or the log: status %q, log of %d bytes", files["status.json"], len(files["agent.log"]))
	}
	device, _ := os.ReadFile(filepath.Join(cfg.StateDir, "device.json"))
	secrets := []string{p.EnrollmentSecret, "eyJ"} // eyJ: any JWT (access tokens, device assertions)
	for _, m := range regexp.MustCompile(`"[a-z_]*key[a-z_]*":\s*"([^"]{16,})"`).FindAllStringSubmatch(string(device), -1) {
		secrets = append(secrets, m[1])
	}
	if len(secrets) < 3 {
		t.Fatalf("no key found in device.json to look for: %s", device)
	}
	for name, body := range files {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("the bundle's %s holds %.12q…", name, s)
			}
		}
	}
}

func readBundle(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := service.ReadDiag(f)
	if err != nil {
		t.Fatal(err)
	}
	return files
}
