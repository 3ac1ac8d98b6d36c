package distrib

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"unicode"
	"unicode/utf8"

	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/tenant"
)

// EnrollRequest is the body of POST /api/v1/enroll: an agent's first
// request, with the enrolment secret the installer was given and the
// public half of the key the device generated.
type EnrollRequest struct {
	Tenant    string `json:"tenant"`
	Secret    string `json:"secret"`
	PublicKey string `json:"public_key"` // Ed25519, standard base64
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
}

// EnrollResponse is the answer to an enrolment.
type EnrollResponse struct {
	DeviceID string `json:"device_id"`
}

// ErrEnrollRefused: no enrolment secret of the tenant matches (or no such
// tenant: the answer does not tell which).
var ErrEnrollRefused = errors.New("distrib: enrolment refused: unknown or revoked enrolment secret for this tenant")

// CreateEnrollmentSecret makes a new enrolment secret named name and
// returns it; only its hash is kept.
func (s *Service) CreateEnrollmentSecret(ctx context.Context, tenantID, name string) (string, error) {
	if name == "" || len(name) > 64 || !printable(name) {
		return "", invalid("name: 1 to 64 printable characters, to tell secrets apart (for example \"msi-2026\")")
	}
	if _, err := s.st.Tenant(ctx, tenantID); err != nil {
		return "", err
	}
	tok := secret.NewToken()
	if err := s.st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: tenantID, Name: name, Hash: secret.HashToken(tok), CreatedAt: s.now()}); err != nil {
		return "", err
	}
	return tok, nil
}

// Enroll registers a device with an enrolment secret. Errors about the
// request are *InvalidError; a secret that does not match is
// ErrEnrollRefused.
func (s *Service) Enroll(ctx context.Context, req EnrollRequest) (*store.Device, error) {
	if err := tenant.ValidID(req.Tenant); err != nil {
		return nil, invalid("tenant: %v", err)
	}
	if req.Secret == "" || len(req.Secret) > 256 {
		return nil, invalid("secret: the enrolment secret the installer was given is required")
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(req.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, invalid("public_key: want a %d-byte Ed25519 public key in standard base64", ed25519.PublicKeySize)
	}
	if isZero(pub) {
		return nil, invalid("public_key: the all-zero key is not a key")
	}
	if req.Hostname == "" || len(req.Hostname) > 255 || !printable(req.Hostname) {
		return nil, invalid("hostname: 1 to 255 printable characters")
	}
	if req.OS == "" || len(req.OS) > 64 || !printable(req.OS) {
		return nil, invalid("os: 1 to 64 printable characters (such as \"windows\")")
	}
	d := &store.Device{Tenant: req.Tenant, ID: newDeviceID(), PublicKey: pub, Hostname: req.Hostname, OS: req.OS, CreatedAt: s.now()}
	err = s.st.EnrollDevice(ctx, d, secret.HashToken(req.Secret))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrEnrollRefused
	case errors.Is(err, store.ErrConflict):
		return nil, invalid("public_key: this key is enrolled already; generate a new key to enrol again")
	case err != nil:
		return nil, err
	}
	return d, nil
}

func newDeviceID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "d" + hex.EncodeToString(b)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// printable reports whether s is UTF-8 without control characters: what
// an administrator will read in a list.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// remoteHost is the rate limit's key: the client's address as the
// connection shows it. Forwarded-for headers are not trusted: anyone can
// write one.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Service) handleEnroll(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.limit.Allow(remoteHost(r)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		writeError(w, http.StatusTooManyRequests, "too many enrolment requests from this address; retry later")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	var req EnrollRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	d, err := s.Enroll(r.Context(), req)
	var inv *InvalidError
	switch {
	case err == nil:
		detail, _ := json.Marshal(map[string]string{"hostname": d.Hostname, "os": d.OS, "remote": remoteHost(r)})
		s.audit(r.Context(), d.Tenant, "enrollment:"+d.Secret, "device.enroll", d.ID, detail)
		writeJSON(w, http.StatusCreated, EnrollResponse{DeviceID: d.ID})
	case errors.As(err, &inv):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrEnrollRefused):
		// Audited for a tenant that exists, so that its administrators see
		// attempts with a revoked secret; unknown tenants are only logged.
		if _, terr := s.st.Tenant(r.Context(), req.Tenant); terr == nil {
			detail, _ := json.Marshal(map[string]string{"hostname": req.Hostname, "remote": remoteHost(r)})
			s.audit(r.Context(), req.Tenant, "enrollment", "device.enroll_refused", "", detail)
		}
		s.log.Info("distrib: enrolment refused", "tenant", req.Tenant, "remote", remoteHost(r))
		writeError(w, http.StatusForbidden, "enrolment refused: the enrolment secret is unknown or revoked for this tenant; ask the administrator for a current one")
	default:
		s.log.Error("distrib: enrolment failed", "tenant", req.Tenant, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (see the platform log)")
	}
}

// RevokeDevice stops a device from fetching anything; it must enrol again
// (with a new key) to come back.
func (s *Service) RevokeDevice(ctx context.Context, tenantID, id string) error {
	return s.st.RevokeDevice(ctx, tenantID, id, s.now())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
