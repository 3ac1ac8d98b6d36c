package tenant

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	s, err := Parse(nil)
	if err != nil || s != Defaults() {
		t.Fatalf("Parse(nil) = %+v, %v", s, err)
	}
	s, err = Parse([]byte(`{"access_token_ttl":"10m","jit_provisioning":true}`))
	if err != nil || s.AccessTokenTTL.D() != 10*time.Minute || !s.JITProvisioning || s.RefreshLifetime.D() != 168*time.Hour {
		t.Fatalf("Parse = %+v, %v", s, err)
	}
	for in, want := range map[string]string{
		`{"access_token_ttl":"2h"}`:       "access_token_ttl: 2h0m0s is outside",
		`{"refresh_lifetime":"10s"}`:      "refresh_lifetime",
		`{"access_token_ttl":15}`:         "want a duration",
		`{"acces_token_ttl":"15m"}`:       `unknown field "acces_token_ttl"`,
		`{"key_publish_lead":"-1m"}`:      "key_publish_lead",
		`not json`:                        "tenant settings",
		`{"access_token_ttl":"fortnite"}`: "want a duration",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestMergeAndJSON(t *testing.T) {
	s, err := Defaults().Merge([]byte(`{"refresh_lifetime":"24h"}`))
	if err != nil || s.RefreshLifetime.D() != 24*time.Hour || s.AccessTokenTTL.D() != 15*time.Minute {
		t.Fatalf("Merge = %+v, %v", s, err)
	}
	back, err := Parse(s.JSON())
	if err != nil || back != s {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{"acme": true, "a": true, "acme-corp-2": true, "-acme": false, "acme-": false,
		"Acme": false, "ac_me": false, "": false, strings.Repeat("a", 64): false, "api": false, "ac.me": false} {
		if err := ValidID(id); (err == nil) != ok {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
}
