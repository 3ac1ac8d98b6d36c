package service

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiagRedacts builds a bundle from a state folder whose log and
// configuration hold every kind of secret, and finds none of them in it.
func TestDiagRedacts(t *testing.T) {
	dir := t.TempDir()
	jwt := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	secrets := []string{jwt, "opaque-bearer-value", "the-code-123", "verifier-456", "enrol-secret-789", "refresh-abc"}
	log := "level=INFO msg=x header=\"Bearer opaque-bearer-value\" token=" + jwt + "\n" +
		"GET /callback?code=the-code-123&state=s1 code_verifier=verifier-456\n" +
		`{"refresh_token": "refresh-abc", "state": "connected"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "agent.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fail-open.jsonl"), []byte(`{"start":"2026-11-23T10:00:00Z","state":"fail-open","reason":"gateway unreachable"}`+"\n"), 0o600)
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, []byte("platform_url: http://127.0.0.1:8080\ntenant: demo\nenrollment_secret: enrol-secret-789\n"), 0o600)
	cfg := &Config{StateDir: dir}

	var buf bytes.Buffer
	if err := Diag(&buf, cfgPath, cfg, []byte(`{"tenant":"demo","user":{"state":"connected"}}`), nil, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	files := untar(t, &buf)
	for _, want := range []string{"about.txt", "agent.yaml", "status.json", "agent.log", "fail-open.jsonl", "state-files.txt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the bundle lacks %s (has %v)", want, keys(files))
		}
	}
	for name, body := range files {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s holds %q:\n%s", name, s, body)
			}
		}
	}
	if !strings.Contains(files["agent.log"], `"state": "connected"`) || !strings.Contains(files["status.json"], "connected") {
		t.Errorf("redaction took what is not secret:\n%s", files["agent.log"])
	}

	// Without a running agent the bundle still comes, saying so.
	buf.Reset()
	if err := Diag(&buf, cfgPath, cfg, nil, errors.New("connection refused"), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if files := untar(t, &buf); !strings.Contains(files["about.txt"], "did not answer: connection refused") {
		t.Errorf("about.txt: %s", files["about.txt"])
	}
}

func untar(t *testing.T, r io.Reader) map[string]string {
	files, err := ReadDiag(r)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
