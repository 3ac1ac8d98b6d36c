//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// samlIdPEntry is saml-idp's command (its package.json "bin"), relative to
// this package's folder, where `npm ci` installs it.
const samlIdPEntry = "node_modules/saml-idp/bin/run.js"

// dieWithParent makes the kernel stop cmd when the test binary dies, even
// by SIGKILL or a panic in another goroutine, so that no IdP outlives a
// run. Set where the OS can do it (samlidp_linux_test.go).
var dieWithParent = func(cmd *exec.Cmd) {}

// idpUser is the profile saml-idp asserts: NameID (userName, in the e-mail
// format) and attributes.
type idpUser struct {
	UserName, Email, FirstName, LastName, DisplayName string
}

// samlIdP is a running saml-idp.
type samlIdP struct {
	URL      string // http://127.0.0.1:<port>
	Issuer   string // its entity ID
	Metadata string // URL of its SAML metadata
	out      *syncBuffer
}

// startSAMLIdP runs saml-idp on a free loopback port until the test ends.
// It signs with a fresh RSA key, asserts user's profile, and trusts the SP
// with the given ACS URL and audience (the SP's entity ID). On failure the
// test log gets the IdP's output.
func startSAMLIdP(t *testing.T, acsURL, audience string, user idpUser) *samlIdP {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("saml-idp needs Node.js: %v; install it (apt-get install nodejs npm) and run `go tool task e2e`", err)
	}
	if _, err := os.Stat(samlIdPEntry); err != nil {
		t.Fatalf("saml-idp is not installed (%v): run `go tool task e2e`, or `npm ci` in platform/e2e", err)
	}
	dir := t.TempDir()
	certFile, keyFile := writeIdPKeyPair(t, dir)
	profile := filepath.Join(dir, "profile.js")
	writeProfile(t, profile, user)

	const issuer = "urn:vigie:e2e:saml-idp"
	cmd := exec.Command(node, samlIdPEntry,
		"--host", "127.0.0.1",
		"--port", "0", // the kernel picks a free port; the IdP prints it
		"--issuer", issuer,
		"--acsUrl", acsURL,
		"--audience", audience,
		"--cert", certFile,
		"--key", keyFile,
		"--configFile", profile,
	)
	cmd.Env = idpEnv()
	out := &syncBuffer{ready: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting saml-idp: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("saml-idp output:\n%s", out)
		}
	})

	var port string
	select {
	case port = <-out.ready:
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("saml-idp exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("saml-idp did not say it was ready within 30s")
	}
	idp := &samlIdP{URL: "http://127.0.0.1:" + port, Issuer: issuer, out: out}
	idp.Metadata = idp.URL + "/metadata"
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(idp.Metadata)
	if err != nil {
		t.Fatalf("saml-idp metadata: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("saml-idp metadata: %s", resp.Status)
	}
	return idp
}

// idpEnv is the test's environment for node, without what would change
// saml-idp's listener (it prefers $HOST and $PORT to its flags), and
// without colours in its output.
func idpEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOST=") && !strings.HasPrefix(kv, "PORT=") && !strings.HasPrefix(kv, "FORCE_COLOR=") {
			env = append(env, kv)
		}
	}
	return append(env, "FORCE_COLOR=0")
}

// writeIdPKeyPair writes the IdP's signing key (RSA 2048, PKCS #1 PEM, the
// form saml-idp documents) and a self-signed certificate for it, valid for
// a day; the SP learns the certificate from the IdP's metadata.
func writeIdPKeyPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Vigie e2e saml-idp"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "idp-cert.pem"), filepath.Join(dir, "idp-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// writeProfile writes saml-idp's --configFile: a CommonJS module with the
// user it asserts (userName is the NameID) and the attributes it sends.
// JSON is valid JavaScript, so the module is a JSON literal.
func writeProfile(t *testing.T, path string, u idpUser) {
	t.Helper()
	type attribute struct {
		ID          string `json:"id"`
		Optional    bool   `json:"optional"`
		DisplayName string `json:"displayName"`
		Description string `json:"description"`
		MultiValue  bool   `json:"multiValue"`
	}
	cfg := map[string]any{
		"user": map[string]string{
			"userName":     u.UserName,
			"nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			"email":        u.Email,
			"firstName":    u.FirstName,
			"lastName":     u.LastName,
			"displayName":  u.DisplayName,
		},
		"metadata": []attribute{
			{ID: "email", DisplayName: "E-Mail Address", Description: "The e-mail address of the user"},
			{ID: "firstName", DisplayName: "First Name", Description: "The given name of the user"},
			{ID: "lastName", DisplayName: "Last Name", Description: "The surname of the user"},
			{ID: "displayName", Optional: true, DisplayName: "Display Name", Description: "The display name of the user"},
		},
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(append([]byte("module.exports = "), js...), ";\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readyLine is how saml-idp announces that it listens (app.js, in the
// listen callback): "IdP server ready at" and its URL on the next line.
var readyLine = regexp.MustCompile(`IdP server ready at\s+https?://[^\s/]+:(\d+)`)

// syncBuffer collects a process's output (stdout and stderr write from
// two goroutines) and reports the port of saml-idp's ready line once.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string // receives the port, once
	seen  bool
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.ready != nil && !b.seen {
		if m := readyLine.FindSubmatch(b.buf.Bytes()); m != nil {
			b.seen = true
			b.ready <- string(m[1])
		}
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
