package truststore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusals: inputs that must not reach a trust store, on every OS.
func TestRefusals(t *testing.T) {
	state := filepath.Join(t.TempDir(), "truststore.json")
	if err := Install([]byte("x"), Options{}); err == nil || !strings.Contains(err.Error(), "no state file") {
		t.Errorf("no state file: %v", err)
	}
	for name, bundle := range map[string]string{
		"empty":   "",
		"not PEM": "hello",
		"a key":   "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		if err := Install([]byte(bundle), Options{StateFile: state}); err == nil || !strings.HasPrefix(err.Error(), "truststore: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Error("a refused bundle wrote the state file")
	}
	if certs, err := Installed(Options{StateFile: state}); err != nil || len(certs) != 0 {
		t.Errorf("Installed with no state file: %v, %v", certs, err)
	}
	if err := Uninstall(Options{StateFile: state}); err != nil {
		t.Errorf("Uninstall with nothing installed: %v", err)
	}
	os.WriteFile(state, []byte("{"), 0o600)
	if _, err := Installed(Options{StateFile: state}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged state file: %v", err)
	}
}
