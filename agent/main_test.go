package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary act as the agent command: tests run it as
// a child process with VIGIE_AGENT_MAIN=1, black-box, as an admin would.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIE_AGENT_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func agent(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VIGIE_AGENT_MAIN=1", "TZ=UTC")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func TestPacCommand(t *testing.T) {
	pac := filepath.Join("..", "pac", "testdata", "corporate.pac")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-u", "https://www.example.com/"}, "PROXY gateway.vigie.example:3128; DIRECT"},
		{[]string{"-u", "http://intranet/"}, "DIRECT"},
		{[]string{"-u", "https://bank.example/login"}, "PROXY noinspect.vigie.example:3128"},
		{[]string{"-u", "http://198.51.100.7/"}, "PROXY noinspect.vigie.example:3128"},
		{[]string{"-u", "https://www.example.fr/", "--now", "2026-11-23T10:00:00Z", "--dns", "www.example.fr=192.0.2.1", "-c", "10.1.2.3"},
			"PROXY gateway-eu.vigie.example:3128; PROXY gateway.vigie.example:3128; DIRECT"},
	}
	for _, tc := range tests {
		code, out, errOut := agent(t, append([]string{"pac", "-p", pac}, tc.args...)...)
		if code != 0 || out != tc.want+"\n" {
			t.Errorf("agent pac %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, out, errOut := agent(t, "pac", "-p", filepath.Join(t.TempDir(), "missing.pac"), "-u", "http://x/")
	if code != 1 || out != "" || !strings.Contains(errOut, "missing.pac") {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := agent(t); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := agent(t, "help"); code != 0 || !strings.Contains(out, "agent pac") {
		t.Errorf("help: exit %d, stdout %q", code, out)
	}
	if code, _, errOut := agent(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
}

// TestLocalCommandsWithoutAgent: status and logout say the agent is not
// running; diag still writes its bundle; a bad configuration is named.
func TestLocalCommandsWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("platform_url: http://127.0.0.1:1\ntenant: demo\ndistribution_key: "+
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\nport: 1\nstate_dir: "+dir+"\n"), 0o600)
	for _, cmd := range []string{"status", "logout"} {
		code, _, stderr := agent(t, cmd, "--config", cfg)
		if code != 1 || !strings.Contains(stderr, "is the agent running?") {
			t.Errorf("%s: %d %q", cmd, code, stderr)
		}
	}
	out := filepath.Join(dir, "bundle.tar.gz")
	if code, stdout, stderr := agent(t, "diag", "--config", cfg, "-o", out); code != 0 || !strings.Contains(stdout, "redacted") {
		t.Errorf("diag: %d %q %q", code, stdout, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("bundle: %v %v", fi, err)
	}
	os.WriteFile(cfg, []byte("platform_url: ftp://x\ntenant: demo\nbogus: 1\n"), 0o600)
	if code, _, stderr := agent(t, "status", "--config", cfg); code != 1 || !strings.Contains(stderr, "bogus") {
		t.Errorf("bad config: %d %q", code, stderr)
	}
}
