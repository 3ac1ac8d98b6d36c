package sync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigie/agent/internal/atomicfile"
	"vigie/platform/distrib/artifact"
)

// Device is the enrolled device: its ID at the platform and the private
// key its requests are signed with.
type Device struct {
	ID  string
	Key ed25519.PrivateKey
}

// TokenLifetime is how long a device token is valid: each request gets a
// new one, so a copied token is soon useless.
const TokenLifetime = 2 * time.Minute

// Token returns a device token for a request to the tenant's agent
// endpoints at platformURL (the base URL, without trailing slash), dated
// now.
func (d *Device) Token(platformURL, tenant string, now time.Time) (string, error) {
	claims := jwt.RegisteredClaims{
		Issuer: d.ID, Subject: d.ID,
		Audience:  jwt.ClaimStrings{artifact.DeviceAudience(platformURL, tenant)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(TokenLifetime)),
		ID:        rand.Text(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(d.Key)
	if err != nil {
		return "", fmt.Errorf("sync: signing the device token: %w", err)
	}
	return tok, nil
}

// deviceFile is <stateDir>/device.json.
type deviceFile struct {
	PlatformURL string    `json:"platform_url"`
	Tenant      string    `json:"tenant"`
	DeviceID    string    `json:"device_id"`
	PrivateKey  string    `json:"private_key"` // the Ed25519 seed, standard base64
	EnrolledAt  time.Time `json:"enrolled_at"`
}

// ErrNotEnrolled: there is no device state and no enrolment secret to make
// one with.
var ErrNotEnrolled = errors.New("sync: this device is not enrolled, and no enrolment secret was given: reinstall with the tenant's enrolment secret")

// LoadOrEnroll returns the device saved in <stateDir>/device.json, or, when
// there is none, generates a key, enrols it with the platform using the
// enrolment secret, and saves the device (0600) before returning it. A
// device file others can read is refused, as is one enrolled with another
// platform or tenant: remove it to enrol again.
//
// On Windows file modes say nothing about access: the installer gives the
// state directory an ACL for the service account and administrators only.
func LoadOrEnroll(ctx context.Context, stateDir, platformURL, tenant, secret string, client *http.Client) (*Device, error) {
	platformURL = trimSlash(platformURL)
	path := filepath.Join(stateDir, "device.json")
	d, err := loadDevice(path, platformURL, tenant)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	if secret == "" {
		return nil, ErrNotEnrolled
	}
	if client == nil {
		client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil}}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	id, err := enroll(ctx, client, platformURL, tenant, secret, pub)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("sync: device state: %w", err)
	}
	data, _ := json.MarshalIndent(deviceFile{PlatformURL: platformURL, Tenant: tenant, DeviceID: id,
		PrivateKey: base64.StdEncoding.EncodeToString(priv.Seed()), EnrolledAt: time.Now().UTC()}, "", "  ")
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("sync: saving the device %s (enrolled, but lost: enrol again): %w", id, err)
	}
	return &Device{ID: id, Key: priv}, nil
}

func loadDevice(path, platformURL, tenant string) (*Device, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // fs.ErrNotExist: enrol
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sync: device state: %w", err)
	}
	if err := checkPrivate(fi); err != nil {
		return nil, fmt.Errorf("sync: device state %s: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("sync: device state: %w", err)
	}
	var df deviceFile
	if err := json.Unmarshal(data, &df); err != nil {
		return nil, fmt.Errorf("sync: device state %s is damaged (%v): remove it to enrol again", path, err)
	}
	seed, err := base64.StdEncoding.DecodeString(df.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize || df.DeviceID == "" {
		return nil, fmt.Errorf("sync: device state %s is damaged (no device ID or key): remove it to enrol again", path)
	}
	if df.PlatformURL != platformURL || df.Tenant != tenant {
		return nil, fmt.Errorf("sync: device state %s is for tenant %q at %s, not %q at %s: remove it to enrol again", path, df.Tenant, df.PlatformURL, tenant, platformURL)
	}
	return &Device{ID: df.DeviceID, Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// enroll registers pub with the platform and returns the device ID.
func enroll(ctx context.Context, client *http.Client, platformURL, tenant, secret string, pub ed25519.PublicKey) (string, error) {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	body, _ := json.Marshal(map[string]string{"tenant": tenant, "secret": secret,
		"public_key": base64.StdEncoding.EncodeToString(pub), "hostname": host, "os": runtime.GOOS})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, platformURL+"/api/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("sync: enrolment: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("sync: enrolment: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return "", fmt.Errorf("sync: enrolment: the platform asks to retry after %ss%s", resp.Header.Get("Retry-After"), platformSays(resp.Body))
	case resp.StatusCode/100 != 2:
		return "", fmt.Errorf("sync: enrolment refused: %s%s", resp.Status, platformSays(resp.Body))
	}
	var out struct {
		DeviceID string `json:"device_id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil || out.DeviceID == "" {
		return "", fmt.Errorf("sync: enrolment: the platform's answer has no device_id (%v)", err)
	}
	return out.DeviceID, nil
}
