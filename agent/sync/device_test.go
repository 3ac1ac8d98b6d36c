package sync

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/platform/distrib/artifact"
)

func TestLoadOrEnroll(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")

	if _, err := LoadOrEnroll(ctx, dir, h.p.BaseURL, h.p.Tenant, "", nil); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("no state, no secret: %v", err)
	}
	_, err := LoadOrEnroll(ctx, dir, h.p.BaseURL, h.p.Tenant, "wrong", nil)
	if err == nil || !strings.Contains(err.Error(), "enrolment refused: 403") || !strings.Contains(err.Error(), "unknown or revoked") {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "device.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused enrolment left a device file")
	}

	// A trailing slash in the URL is the same platform.
	d, err := LoadOrEnroll(ctx, dir, h.p.BaseURL+"/", h.p.Tenant, h.secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	var devices struct {
		Devices []struct{ ID, OS string } `json:"devices"`
	}
	h.adminOK("GET", "/api/v1/tenants/demo/devices", "", &devices)
	if len(devices.Devices) != 1 || devices.Devices[0].ID != d.ID || devices.Devices[0].OS == "" {
		t.Fatalf("the platform's devices: %+v", devices)
	}

	// Loaded again without the network, the secret or a client.
	again, err := LoadOrEnroll(ctx, dir, h.p.BaseURL, h.p.Tenant, "", &http.Client{Transport: failing{}})
	if err != nil || again.ID != d.ID || !again.Key.Equal(d.Key) {
		t.Fatalf("reload: %+v, %v", again, err)
	}

	// Another tenant or platform: not this device.
	for _, c := range [][2]string{{h.p.BaseURL, "acme"}, {"https://other.example", h.p.Tenant}} {
		if _, err := LoadOrEnroll(ctx, dir, c[0], c[1], h.secret, nil); err == nil || !strings.Contains(err.Error(), "remove it to enrol again") {
			t.Errorf("%v: %v", c, err)
		}
	}

	// A damaged file is reported, not replaced.
	os.WriteFile(filepath.Join(dir, "device.json"), []byte("{"), 0o600)
	if _, err := LoadOrEnroll(ctx, dir, h.p.BaseURL, h.p.Tenant, h.secret, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged file: %v", err)
	}
}

func TestDeviceToken(t *testing.T) {
	h := newHarness(t)
	d := h.device()
	now := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	raw, err := d.Token(h.p.BaseURL, h.p.Tenant, now)
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.RegisteredClaims
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(func() time.Time { return now })).
		ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return d.Key.Public(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if tok.Method.Alg() != "EdDSA" || c.Issuer != d.ID || c.Subject != d.ID || len(c.Audience) != 1 ||
		c.Audience[0] != artifact.DeviceAudience(h.p.BaseURL, h.p.Tenant) || c.ID == "" ||
		!c.IssuedAt.Equal(now) || c.ExpiresAt.Sub(c.IssuedAt.Time) != TokenLifetime || TokenLifetime > artifact.MaxDeviceTokenLifetime {
		t.Errorf("claims %+v", c)
	}
	other, _ := d.Token(h.p.BaseURL, h.p.Tenant, now)
	if other == raw {
		t.Error("two tokens with the same jti")
	}
	// The platform takes it.
	req, _ := http.NewRequest("GET", h.p.URL("/agent/release"), nil)
	fresh, _ := d.Token(h.p.BaseURL, h.p.Tenant, time.Now())
	req.Header.Set("Authorization", artifact.DeviceScheme+" "+fresh)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the platform answered %d to a fresh device token", resp.StatusCode)
	}
}
