package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"vigie/platform/secret"
)

// TestMain lets the test binary act as the platform command, so that tests
// run it as a child process, black-box, as an operator would.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIE_PLATFORM_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func platform(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VIGIE_PLATFORM_MAIN=1")
	cmd.SysProcAttr = childAttr()
	return cmd
}

func TestUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "platform serve") {
		t.Errorf("help: exit %d, stdout %q", code, out.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"serve"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--config FILE is required") {
		t.Errorf("serve without config: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"demo", "--listen", "0.0.0.0:0", "--dir", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "loopback") {
		t.Errorf("demo on a public address: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("listen: 0.0.0.0:80\ndatabase: {driver: mysql}\n"), 0o600)
	if code := run(context.Background(), []string{"serve", "--config", bad}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "database.driver") || !strings.Contains(errb.String(), "tls: required") {
		t.Errorf("serve with a bad config: exit %d, stderr %q", code, errb.String())
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor reads lines from r until one contains want: the child says when
// it listens, so no polling is needed. It returns what it read.
func waitFor(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var seen strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), want) {
			go io.Copy(io.Discard, r)
			return seen.String()
		}
	}
	t.Fatalf("the platform exited before saying %q:\n%s", want, seen.String())
	return ""
}

type buffer struct{ strings.Builder }

func TestServe(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	adminToken := "admin-secret-for-test"
	cfg := fmt.Sprintf(`listen: %s
base_url: http://%s
database: {driver: sqlite, dsn: %s}
master_key_file: %s
admin_token_sha256: %s
feed_token_sha256: %s
`, addr, addr, filepath.Join(dir, "vigie.db"), filepath.Join(dir, "master.key"), secret.HashToken(adminToken), secret.HashToken("feed"))
	path := filepath.Join(dir, "platform.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := platform(t, "serve", "--config", path)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stderr, "platform: serving")
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/tenants", strings.NewReader(`{"id":"acme"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create tenant: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + addr + "/t/acme/saml/metadata")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SP metadata: %v %v", resp, err)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "master.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master key: %v %v", fi, err)
	}
}

// TestDemo runs `platform demo` and reads what it tells a newcomer.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	addr := freeAddr(t)
	for run := 1; run <= 2; run++ { // the second run reuses the folder
		cmd := platform(t, "demo", "--dir", dir, "--listen", addr, "--gateway", "127.0.0.1:0")
		stdout, _ := cmd.StdoutPipe()
		var logs buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := waitFor(t, stdout, "----")
		for _, want := range []string{"http://" + addr, "Admin API", "SCIM base", "alice", "alice-demo-pw", "bob@demo.example",
			"contractors", "/idp/metadata", "Revocation feed"} {
			if !strings.Contains(out, want) {
				t.Errorf("run %d: the demo does not print %q:\n%s\n%s", run, want, out, logs.String())
			}
		}
		// The banner comes once the listener is open: the demo answers now.
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("run %d: health: %v %v", run, resp, err)
		}
		resp.Body.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run %d: exit after SIGTERM: %v\n%s", run, err, logs.String())
		}
	}
}
