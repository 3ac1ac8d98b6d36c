package truststore

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sts "github.com/smallstep/truststore"

	"vigie/certs"
)

// These tests change no trust store of the machine. smallstep/truststore
// on Linux writes SystemTrustFilename and runs SystemTrustCommand, both
// package variables, and reaches NSS databases under $HOME, read when the
// package loads: TestInstallRedirected runs itself again in a child
// process whose HOME is a temporary directory, and there points the
// system store at that directory and its update command at a marker file.
// PATH is a directory of the few commands the library runs, so that it
// never goes through sudo.
//
// TestInstallSystem changes the real system store and restores it; it runs
// only when VIGIE_TRUSTSTORE_TESTS=1 (as root, on a machine you may change).

const childEnv = "VIGIE_TRUSTSTORE_CHILD"

func TestInstallRedirected(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		runChild(t)
		return
	}
	redirect(t, dir)
	testRoundTrip(t, dir)
}

// runChild runs TestInstallRedirected in a child process with a temporary
// HOME, and reports its outcome.
func runChild(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tee", "rm", "touch", "certutil"} {
		p, err := exec.LookPath(name)
		if err != nil {
			if name == "certutil" {
				continue // NSS is then not tested
			}
			t.Skipf("%s is not installed", name)
		}
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallRedirected$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, "HOME="+home, "PATH="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestInstallRedirected")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
}

// redirect points smallstep/truststore at dir.
func redirect(t *testing.T, dir string) {
	home := os.Getenv("HOME")
	if !strings.HasPrefix(home, dir) {
		t.Fatalf("HOME %s is not under %s: refusing to touch a real NSS database", home, dir)
	}
	anchors := filepath.Join(dir, "anchors")
	os.Mkdir(anchors, 0o755)
	sts.SystemTrustFilename = filepath.Join(anchors, "%s.crt")
	sts.SystemTrustCommand = []string{"touch", filepath.Join(dir, "updated")}
	sts.NSSProfile = filepath.Join(home, ".mozilla", "firefox", "*")
	if _, err := exec.LookPath("certutil"); err == nil {
		nssdb := filepath.Join(home, ".pki", "nssdb")
		os.MkdirAll(nssdb, 0o700)
		if out, err := exec.Command("certutil", "-N", "-d", "sql:"+nssdb, "--empty-password").CombinedOutput(); err != nil {
			t.Fatalf("certutil -N: %v %s", err, out)
		}
	}
}

func newCA(t *testing.T, name string) (*x509.Certificate, []byte) {
	t.Helper()
	p, _, err := certs.NewCA(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// anchorsHave lists the certificates in the redirected system store.
func anchorsHave(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "anchors"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// nssHas reports whether the test's NSS database trusts c.
func nssHas(t *testing.T, c *x509.Certificate) bool {
	out, _ := exec.Command("certutil", "-L", "-d", "sql:"+filepath.Join(os.Getenv("HOME"), ".pki", "nssdb")).CombinedOutput()
	return bytes.Contains(out, []byte(c.SerialNumber.String()))
}

func testRoundTrip(t *testing.T, dir string) {
	_, noNSS := exec.LookPath("certutil")
	o := Options{StateFile: filepath.Join(dir, "state", "truststore.json")}
	a, aPEM := newCA(t, "acme")
	b, bPEM := newCA(t, "acme")
	marker := filepath.Join(dir, "updated")
	// A CA someone else installed: never touched.
	foreign := filepath.Join(dir, "anchors", "corporate-root.crt")
	os.WriteFile(foreign, []byte("someone else's"), 0o644)

	if err := Install(aPEM, o); err != nil {
		t.Fatal(err)
	}
	if got := anchorsHave(t, dir); len(got) != 2 {
		t.Fatalf("system store after installing one CA: %v", got)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the system store's update command did not run")
	}
	if noNSS == nil && !nssHas(t, a) {
		t.Error("the CA is not in the NSS database")
	}
	if fi, err := os.Stat(o.StateFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", fi, err)
	}
	inst, err := Installed(o)
	if err != nil || len(inst) != 1 || inst[0].SHA256 != fingerprint(a) || !slices.Contains(inst[0].Stores, StoreSystem) ||
		(noNSS == nil) != slices.Contains(inst[0].Stores, StoreNSS) {
		t.Fatalf("Installed = %+v, %v", inst, err)
	}

	// Idempotent: the same bundle changes nothing, runs nothing.
	os.Remove(marker)
	if err := Install(aPEM, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("installing the same bundle again ran the update command")
	}

	// A rotation: both while they overlap, then only the new one.
	if err := Install(append(append([]byte{}, aPEM...), bPEM...), o); err != nil {
		t.Fatal(err)
	}
	if got := anchorsHave(t, dir); len(got) != 3 {
		t.Fatalf("during the overlap: %v", got)
	}
	if err := Install(bPEM, o); err != nil {
		t.Fatal(err)
	}
	if got := anchorsHave(t, dir); len(got) != 2 || slices.ContainsFunc(got, func(n string) bool { return strings.Contains(n, a.SerialNumber.String()) }) {
		t.Fatalf("after the rotation: %v", got)
	}
	if noNSS == nil && (nssHas(t, a) || !nssHas(t, b)) {
		t.Error("the NSS database did not follow the rotation")
	}

	// A bad bundle installs nothing and keeps the record.
	for _, bad := range [][]byte{nil, []byte("not pem"), append([]byte("x"), bPEM...)} {
		if err := Install(bad, o); err == nil || !strings.HasPrefix(err.Error(), "truststore: ") {
			t.Errorf("Install(%.20q) = %v", bad, err)
		}
	}
	if inst, _ := Installed(o); len(inst) != 1 || inst[0].SHA256 != fingerprint(b) {
		t.Fatalf("after bad bundles: %+v", inst)
	}

	// Uninstall removes exactly what Install installed.
	if err := Uninstall(o); err != nil {
		t.Fatal(err)
	}
	if got := anchorsHave(t, dir); len(got) != 1 || got[0] != "corporate-root.crt" {
		t.Fatalf("after Uninstall: %v", got)
	}
	if noNSS == nil && nssHas(t, b) {
		t.Error("Uninstall left the CA in the NSS database")
	}
	if inst, err := Installed(o); err != nil || len(inst) != 0 {
		t.Fatalf("Installed after Uninstall = %v, %v", inst, err)
	}
	if _, err := os.Stat(o.StateFile); err == nil {
		t.Error("Uninstall left the state file")
	}
	if err := Uninstall(o); err != nil {
		t.Errorf("a second Uninstall: %v", err)
	}
}

// TestInstallSystem installs a CA in this machine's real system store and
// removes it. It needs root and changes /usr/local/share/ca-certificates
// (or the distribution's equivalent) for its duration.
func TestInstallSystem(t *testing.T) {
	if os.Getenv("VIGIE_TRUSTSTORE_TESTS") != "1" {
		t.Skip("changes the machine's trust store: set VIGIE_TRUSTSTORE_TESTS=1 to run")
	}
	if sts.SystemTrustCommand == nil {
		t.Skip("no system trust store that smallstep/truststore knows")
	}
	o := Options{StateFile: filepath.Join(t.TempDir(), "truststore.json")}
	c, p := newCA(t, "vigie-test")
	t.Cleanup(func() {
		if err := Uninstall(o); err != nil {
			t.Errorf("restoring the trust store: %v", err)
		}
		if bundleHas(c) {
			t.Error("the CA is still trusted after Uninstall")
		}
	})
	if err := Install(p, o); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(strings.ReplaceAll(sts.SystemTrustFilename, "%s", "*"+c.SerialNumber.String()+"*"))
	if len(matches) != 1 {
		t.Fatalf("anchor files for the CA: %v", matches)
	}
	if _, err := os.Stat(debianBundle); err == nil && !bundleHas(c) {
		t.Error("the CA is not in the system bundle after the update command")
	}
}

const debianBundle = "/etc/ssl/certs/ca-certificates.crt"

// bundleHas reports whether the distribution's CA bundle holds c.
func bundleHas(c *x509.Certificate) bool {
	data, err := os.ReadFile(debianBundle)
	if err != nil {
		return false
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return false
		}
		if bytes.Equal(block.Bytes, c.Raw) {
			return true
		}
	}
}
