package platformtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Chromium runs Debian's Chromium headless, once per page, with a home
// whose NSS database trusts a tenant's inspection CA (and nothing else
// added), and a new profile each time: what a person's browser on a
// workstation with the agent does, for tests.
type Chromium struct {
	bin, home string
	flags     []string
	// LastStderr is Chromium's standard error of the last page, for
	// failure messages.
	LastStderr string
}

// NewChromium makes a home for Chromium whose NSS database
// ($HOME/.pki/nssdb, where Chromium on Linux looks) trusts caPEM for TLS
// servers; flags go on every run (the proxy: --proxy-server=… or
// --proxy-pac-url=…).
//
// It skips the test when /usr/bin/chromium or certutil is missing, unless
// VIGIE_REQUIRE_CHROMIUM=1 (CI), which makes that a failure.
func NewChromium(t *testing.T, caPEM []byte, flags ...string) *Chromium {
	t.Helper()
	bin := "/usr/bin/chromium"
	var missing []string
	if _, err := os.Stat(bin); err != nil {
		missing = append(missing, bin)
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		missing = append(missing, "certutil")
	}
	if len(missing) > 0 {
		msg := strings.Join(missing, " and ") + " not found; on Debian: apt-get install chromium libnss3-tools"
		if os.Getenv("VIGIE_REQUIRE_CHROMIUM") == "1" {
			t.Fatal(msg + " (VIGIE_REQUIRE_CHROMIUM=1: missing tools are a failure)")
		}
		t.Skip(msg + " (set VIGIE_REQUIRE_CHROMIUM=1 to fail instead of skipping)")
	}
	home := t.TempDir()
	caFile := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + nssdb, "-N", "--empty-password"},
		{"-d", "sql:" + nssdb, "-A", "-t", "C,,", "-n", "vigie-tenant", "-i", caFile},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out, err := exec.CommandContext(ctx, certutil, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return &Chromium{bin: bin, home: home, flags: flags}
}

// DumpDOM loads u and returns the DOM Chromium printed once it loaded.
func (b *Chromium) DumpDOM(t *testing.T, u string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append([]string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		// Without these Chromium calls Google at start, and this machine's
		// closed network refuses it.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
	}, b.flags...)
	args = append(append(args, extra...), "--dump-dom", u)
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(withoutEnv(os.Environ(), "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"),
		"HOME="+b.home, "XDG_CONFIG_HOME="+filepath.Join(b.home, ".config"), "XDG_CACHE_HOME="+filepath.Join(b.home, ".cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium's helper processes may hold the pipes after the browser
	// exits or is killed: do not wait for them for ever.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	b.LastStderr = "chromium stderr:\n" + stderr.String()
	if err != nil {
		t.Fatalf("chromium %s: %v after %v\n%s\nstdout:\n%s", u, err, time.Since(start).Round(time.Millisecond), b.LastStderr, stdout.String())
	}
	t.Logf("chromium %s: %v", u, time.Since(start).Round(time.Millisecond))
	return stdout.String()
}

// withoutEnv drops the named variables from env.
func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
