package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/secret"
	"vigie/platform/server"
	"vigie/platform/store"
)

// testPlatform is the whole platform in-process, like platformtest.Start
// (the demo: tenant "demo", its IdP and two users), with its folder known:
// other gateways, in this process or in child processes, need the master
// key kept there to open the tenant's CA.
type testPlatform struct {
	*platformtest.Platform
	Dir string
}

// startPlatform runs the demo on st (nil: SQLite in its folder) until tb
// ends, logging nothing.
func startPlatform(tb testing.TB, st store.Store, so server.Options) *testPlatform {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *demo.Demo, 1)
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{Dir: dir, Listen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", Store: st, Server: so,
			Logger: slog.New(slog.DiscardHandler), Ready: func(d *demo.Demo) { ready <- d }})
	}()
	select {
	case d := <-ready:
		tb.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				tb.Errorf("platform: %v", err)
			}
		})
		return &testPlatform{Platform: &platformtest.Platform{Demo: d, Tenant: demo.TenantID}, Dir: dir}
	case err := <-done:
		cancel()
		tb.Fatalf("platform did not start: %v", err)
		return nil
	}
}

// MasterKeyFile is where the platform keeps the key that seals the
// tenants' CA keys.
func (p *testPlatform) MasterKeyFile() string { return filepath.Join(p.Dir, "master.key") }

// Sealer opens what the platform sealed.
func (p *testPlatform) Sealer(tb testing.TB) *secret.Sealer {
	key, err := secret.LoadOrCreateKey(p.MasterKeyFile())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := secret.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// admin calls the admin API and fails tb unless it answers 200.
func (p *testPlatform) admin(tb testing.TB, method, path, body string) map[string]any {
	tb.Helper()
	req, err := http.NewRequest(method, p.BaseURL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

// token signs demo user who in and returns the access token.
func (p *testPlatform) token(tb testing.TB, who int) string {
	tb.Helper()
	u := demo.Users[who]
	return p.Login(tb, u.Login, u.Password, "dev-"+u.Login).AccessToken
}

// platformBinary builds the platform command for t, with the race
// detector when the tests have it: then the packages the tests compiled are
// reused (only the link is new), and the child nodes are race-checked too.
func platformBinary(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test builds the platform command: it needs the go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "platform")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(t.Context(), goCmd, append(args, "vigie/platform")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build vigie/platform: %v\n%s", err, out)
	}
	return bin
}

// gatewayNode is `platform gateway --config FILE`, a child process that dies
// with the test binary.
type gatewayNode struct {
	name     string
	cmd      *exec.Cmd
	Addr     string // the proxy
	MainAddr string // /healthz and /metrics
	exited   chan struct{}
	mu       sync.Mutex
	log      strings.Builder
}

func (n *gatewayNode) logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

var listenAddr = regexp.MustCompile(`\baddr=(\S+)`)

// startGatewayNode runs a gateway node on p's database (driver, dsn) and
// master key, on free loopback ports, until t ends; then it must exit
// cleanly on SIGTERM.
func startGatewayNode(t *testing.T, bin, name string, p *testPlatform, driver, dsn string) *gatewayNode {
	t.Helper()
	dir := t.TempDir()
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) } // YAML reads JSON strings
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
base_url: %s
database:
  driver: %s
  dsn: %s
master_key_file: %s
admin_token_sha256: %s
feed_token_sha256: %s
gateway:
  listen: 127.0.0.1:0
`, quote(p.BaseURL), driver, quote(dsn), quote(p.MasterKeyFile()), secret.HashToken(p.AdminToken), secret.HashToken(p.FeedToken))
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &gatewayNode{name: name, cmd: exec.Command(bin, "gateway", "--config", path), exited: make(chan struct{})}
	n.cmd.SysProcAttr = childAttr()
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The node logs "platform: gateway serving addr=…" then "platform:
	// serving addr=…" once both listeners are open.
	addrs := make(chan [2]string, 1)
	var waitErr error
	err = startChild(n.cmd, func() {
		defer close(n.exited)
		var gw string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.log.WriteString(line + "\n")
			n.mu.Unlock()
			m := listenAddr.FindStringSubmatch(line)
			switch {
			case m == nil:
			case strings.Contains(line, `msg="platform: gateway serving"`):
				gw = m[1]
			case strings.Contains(line, `msg="platform: serving"`):
				addrs <- [2]string{gw, m[1]}
			}
		}
		io.Copy(io.Discard, stderr)
		waitErr = n.cmd.Wait()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
			t.Errorf("gateway node %s did not stop within 15 s of SIGTERM", name)
		}
		if waitErr != nil {
			t.Errorf("gateway node %s: %v", name, waitErr)
		}
		if t.Failed() {
			t.Logf("gateway node %s log:\n%s", name, n.logs())
		}
	})
	select {
	case a := <-addrs:
		n.Addr, n.MainAddr = a[0], a[1]
	case <-n.exited:
		t.Fatalf("gateway node %s exited before serving: %v\n%s", name, waitErr, n.logs())
	case <-time.After(time.Minute):
		t.Fatalf("gateway node %s did not serve within a minute:\n%s", name, n.logs())
	}
	if n.Addr == "" {
		t.Fatalf("gateway node %s serves no proxy:\n%s", name, n.logs())
	}
	return n
}

// startChild starts cmd and runs watch (which must end with cmd.Wait) on a
// goroutine locked to the thread that started cmd: the parent-death signal
// (childAttr) fires when that thread ends, not the process, and Go ends a
// thread only when a goroutine locked to it returns; this one returns
// when the child has exited.
func startChild(cmd *exec.Cmd, watch func()) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		watch()
	}()
	return <-started
}
