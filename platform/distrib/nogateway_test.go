package distrib_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/store/storetest"
)

// TestNoGatewayAddress: a platform whose configuration does not say where
// agents reach the gateway serves what it can, and says what is missing
// for the rest, instead of sending agents to a wrong address.
func TestNoGatewayAddress(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	seal, _ := secret.New(key)
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := distrib.New(distrib.Options{Store: st, Sealer: seal, BaseURL: srv.URL})
	s.Register(mux)
	pub, err := s.EnsureKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := s.CreateEnrollmentSecret(ctx, "acme", "msi")
	if err != nil {
		t.Fatal(err)
	}
	devPub, devPriv, _ := ed25519.GenerateKey(rand.Reader)
	resp, err := http.Post(srv.URL+"/api/v1/enroll", "application/json", strings.NewReader(enrollBody("acme", sec, devPub)))
	if err != nil {
		t.Fatal(err)
	}
	var out distrib.EnrollResponse
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	d := &device{id: out.DeviceID, priv: devPriv}
	e := &env{t: t}

	for kind, want := range map[string]int{artifact.KindConfig: 503, artifact.KindPAC: 503, artifact.KindRelease: 200, artifact.KindCA: 404} {
		c := e.claimsFor(srv.URL, "acme", d)
		req, _ := http.NewRequest("GET", srv.URL+"/t/acme/agent/"+kind, nil)
		req.Header.Set("Authorization", distrib.DeviceScheme+" "+sign(t, c, d.priv))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", kind, resp.StatusCode, want)
		}
	}
	if _, _, err := s.SetConfig(ctx, "acme", []byte(`{}`)); !errors.Is(err, distrib.ErrNoGateway) {
		t.Errorf("SetConfig without a gateway address: %v", err)
	}
	// A PAC file set by an administrator needs no gateway address.
	if _, _, err := s.SetPAC(ctx, "acme", []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`)); err != nil {
		t.Fatal(err)
	}
	body, _, err := s.Envelope(ctx, "acme", artifact.KindPAC)
	if _, oerr := artifact.Open(body, pub, artifact.KindPAC, "acme"); err != nil || oerr != nil {
		t.Errorf("PAC set by an administrator: %v, %v", err, oerr)
	}
}
