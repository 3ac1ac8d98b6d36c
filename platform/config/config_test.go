package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
base_url: https://vigie.example.com
listen: 0.0.0.0:443
tls: {cert: /etc/vigie/cert.pem, key: /etc/vigie/key.pem}
database: {driver: postgres, dsn: "postgres://vigie@db/vigie"}
master_key_file: /var/lib/vigie/master.key
admin_token_sha256: ` + hash + `
feed_token_sha256: ` + hash + `
`))
	if err != nil || c.Database.Driver != "postgres" || c.TLS.Cert != "/etc/vigie/cert.pem" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
}

func TestErrorsNameTheField(t *testing.T) {
	tests := map[string][]string{
		`base_url: https://x.example`: {"database.driver", "master_key_file", "admin_token_sha256", "feed_token_sha256"},
		`base_url: https://x.example/
listen: 0.0.0.0:8080
database: {driver: mysql}`: {"base_url: remove the trailing slash", "tls: required", `database.driver: want sqlite or postgres, got "mysql"`},
		`base_url: ftp://x`:                            {"base_url: want the public http(s) URL"},
		`listen: 8080`:                                 {"listen: want host:port"},
		`databse: {driver: sqlite}`:                    {"field databse not found"},
		`base_url: [unclosed`:                          {"config:"},
		`tls: {cert: a.pem}` + "\nlisten: 127.0.0.1:1": {"tls: cert and key files are both required"},
		`admin_token_sha256: secret`:                   {"admin_token_sha256: want the 64-hex-digit SHA-256"},
	}
	for in, wants := range tests {
		_, err := Parse([]byte(in))
		for _, w := range wants {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, w)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("loaded a missing file")
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("listen: nope"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Load error %v does not name the file", err)
	}
}

func TestGatewayPublicAddr(t *testing.T) {
	const base = "base_url: https://x.example\ndatabase: {driver: sqlite, dsn: x.db}\nmaster_key_file: k\nadmin_token_sha256: " + hash + "\nfeed_token_sha256: " + hash + "\n"
	for in, want := range map[string]string{
		"gateway: {listen: 127.0.0.1:3128}":                                 "127.0.0.1:3128",
		"gateway: {listen: gw.example:3128}":                                "gw.example:3128",
		"gateway: {listen: 0.0.0.0:3128, public_addr: gw.example.com:3128}": "gw.example.com:3128",
		"gateway: {public_addr: \"[2001:db8::1]:3128\"}":                    "[2001:db8::1]:3128",
		// Listening on every address, or on any port: agents cannot dial
		// that, and get no configuration until public_addr says where.
		"gateway: {listen: 0.0.0.0:3128}":  "",
		"gateway: {listen: \"[::]:3128\"}": "",
		"gateway: {listen: 127.0.0.1:0}":   "",
	} {
		c, err := Parse([]byte(base + in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := c.Gateway.PublicAddress(); got != want {
			t.Errorf("%s: PublicAddress = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"gateway: {}": "gateway: give listen",
		"gateway: {listen: 127.0.0.1:3128, public_addr: gw}":     "gateway.public_addr: want host:port",
		"gateway: {public_addr: gw.example:0}":                   "gateway.public_addr: port of",
		"gateway: {public_addr: \"0.0.0.0:3128\"}":               "gateway.public_addr: \"0.0.0.0:3128\" listens on every address",
		"gateway: {listen: 127.0.0.1:3128, public_adr: gw:3128}": "field public_adr not found",
	} {
		if _, err := Parse([]byte(base + in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", in, err, want)
		}
	}
	var none *Gateway
	if none.PublicAddress() != "" {
		t.Error("no gateway section, yet a public address")
	}
}
