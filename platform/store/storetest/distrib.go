package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"vigie/platform/store"
)

// What agents fetch: distribution keys, enrolment secrets, devices and
// artifact versions.

func testDistributionKeys(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	_, err := st.DistributionKey(ctx, "acme")
	is(t, err, store.ErrNotFound)

	k := &store.DistributionKey{Tenant: "acme", Private: []byte("sealed seed"), Public: bytes.Repeat([]byte{7}, 32), CreatedAt: t0}
	must(t, st.PutDistributionKey(ctx, k))
	// The key installers pinned is never replaced.
	is(t, st.PutDistributionKey(ctx, &store.DistributionKey{Tenant: "acme", Private: []byte("other"), Public: []byte("other")}), store.ErrConflict)
	is(t, st.PutDistributionKey(ctx, &store.DistributionKey{Tenant: "nope", Private: []byte("x"), Public: []byte("x")}), store.ErrNotFound)

	got, err := st.DistributionKey(ctx, "acme")
	must(t, err)
	if got.Tenant != "acme" || string(got.Private) != "sealed seed" || !bytes.Equal(got.Public, k.Public) {
		t.Fatalf("DistributionKey = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, t0)
}

func testEnrollmentSecrets(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	must(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "acme", Name: "msi", Hash: "h1", CreatedAt: t0}))
	must(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "acme", Name: "deb", Hash: "h2"}))
	is(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "acme", Name: "msi", Hash: "h3"}), store.ErrConflict)
	is(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "acme", Name: "pkg", Hash: "h1"}), store.ErrConflict)
	is(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "nope", Name: "msi", Hash: "h9"}), store.ErrNotFound)
	// Names and hashes are per tenant.
	must(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "beta", Name: "msi", Hash: "h1"}))

	list, err := st.EnrollmentSecrets(ctx, "acme")
	must(t, err)
	if got := ids(list, func(e *store.EnrollmentSecret) string { return e.Name + "=" + e.Hash }); fmt.Sprint(got) != "[deb=h2 msi=h1]" {
		t.Fatalf("EnrollmentSecrets = %v", got)
	}
	sameTime(t, "CreatedAt", list[1].CreatedAt, t0)
	if list[0].CreatedAt.IsZero() {
		t.Error("AddEnrollmentSecret left CreatedAt zero")
	}

	must(t, st.DeleteEnrollmentSecret(ctx, "acme", "msi"))
	is(t, st.DeleteEnrollmentSecret(ctx, "acme", "msi"), store.ErrNotFound)
	list, err = st.EnrollmentSecrets(ctx, "acme")
	must(t, err)
	if len(list) != 1 || list[0].Name != "deb" {
		t.Fatalf("after delete: %v", ids(list, func(e *store.EnrollmentSecret) string { return e.Name }))
	}
	list, err = st.EnrollmentSecrets(ctx, "beta")
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("deleting acme's secret touched beta's: %d left", len(list))
	}
}

func testDevices(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	must(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "acme", Name: "msi", Hash: "h1"}))
	must(t, st.AddEnrollmentSecret(ctx, &store.EnrollmentSecret{Tenant: "beta", Name: "beta-msi", Hash: "hb"}))
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

	d1 := &store.Device{Tenant: "acme", ID: "d1", PublicKey: key(1), Hostname: "pc-1", OS: "windows", CreatedAt: t0}
	must(t, st.EnrollDevice(ctx, d1, "h1"))
	if d1.Secret != "msi" {
		t.Errorf("Secret = %q, want the secret's name", d1.Secret)
	}
	// Wrong secret, another tenant's secret, unknown tenant: nothing enrolled.
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "acme", ID: "d2", PublicKey: key(2)}, "wrong"), store.ErrNotFound)
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "acme", ID: "d2", PublicKey: key(2)}, "hb"), store.ErrNotFound)
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "nope", ID: "d2", PublicKey: key(2)}, "h1"), store.ErrNotFound)
	// A taken ID, a key enrolled already.
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "acme", ID: "d1", PublicKey: key(3)}, "h1"), store.ErrConflict)
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "acme", ID: "d3", PublicKey: key(1)}, "h1"), store.ErrConflict)
	// The same key in another tenant is another device.
	must(t, st.EnrollDevice(ctx, &store.Device{Tenant: "beta", ID: "d1", PublicKey: key(1)}, "hb"))
	d2 := &store.Device{Tenant: "acme", ID: "d2", PublicKey: key(2), Hostname: "mac-2", OS: "darwin", CreatedAt: t0.Add(time.Minute)}
	must(t, st.EnrollDevice(ctx, d2, "h1"))

	got, err := st.Device(ctx, "acme", "d1")
	must(t, err)
	if got.ID != "d1" || !bytes.Equal(got.PublicKey, key(1)) || got.Hostname != "pc-1" || got.OS != "windows" || got.Secret != "msi" {
		t.Fatalf("Device = %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, t0)
	sameTime(t, "RevokedAt", got.RevokedAt, time.Time{})
	_, err = st.Device(ctx, "beta", "d2")
	is(t, err, store.ErrNotFound)

	// Deleting the secret stops enrolments, not the devices it enrolled.
	must(t, st.DeleteEnrollmentSecret(ctx, "acme", "msi"))
	is(t, st.EnrollDevice(ctx, &store.Device{Tenant: "acme", ID: "d4", PublicKey: key(4)}, "h1"), store.ErrNotFound)
	if _, err := st.Device(ctx, "acme", "d1"); err != nil {
		t.Fatalf("deleting the secret removed its device: %v", err)
	}

	must(t, st.RevokeDevice(ctx, "acme", "d1", t0.Add(time.Hour)))
	must(t, st.RevokeDevice(ctx, "acme", "d1", t0.Add(2*time.Hour)))
	is(t, st.RevokeDevice(ctx, "acme", "nope", t0), store.ErrNotFound)
	got, err = st.Device(ctx, "acme", "d1")
	must(t, err)
	sameTime(t, "RevokedAt", got.RevokedAt, t0.Add(time.Hour))
	beta, err := st.Device(ctx, "beta", "d1")
	must(t, err)
	sameTime(t, "beta's RevokedAt", beta.RevokedAt, time.Time{})

	all, err := st.Devices(ctx, "acme")
	must(t, err)
	if got := ids(all, func(d *store.Device) string { return d.ID }); fmt.Sprint(got) != "[d1 d2]" {
		t.Fatalf("Devices = %v", got)
	}
	if all[0].RevokedAt.IsZero() || !all[1].RevokedAt.IsZero() {
		t.Errorf("Devices revocation times: %v, %v", all[0].RevokedAt, all[1].RevokedAt)
	}
}

func testArtifacts(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	tenant(t, st, "beta")
	_, err := st.Artifact(ctx, "acme", store.ArtifactPAC)
	is(t, err, store.ErrNotFound)
	hist, err := st.ArtifactHistory(ctx, "acme", store.ArtifactPAC, 0)
	must(t, err)
	if len(hist) != 0 {
		t.Fatalf("history of nothing = %d versions", len(hist))
	}

	is(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactPAC, Version: 0}), store.ErrStale)
	is(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactPAC, Version: 2}), store.ErrStale)
	a1 := &store.Artifact{Tenant: "acme", Kind: store.ArtifactPAC, Version: 1, Payload: []byte("function FindProxyForURL(u, h) { return \"DIRECT\"; }"), Author: "platform", CreatedAt: t0}
	must(t, st.PutArtifact(ctx, a1))
	is(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactPAC, Version: 1, Payload: []byte("x")}), store.ErrStale)
	// Binary payloads round-trip byte for byte.
	a2 := &store.Artifact{Tenant: "acme", Kind: store.ArtifactPAC, Version: 2, Payload: []byte{0, 0xff, '\n', 0xfe}, Author: "admin"}
	must(t, st.PutArtifact(ctx, a2))
	if a2.CreatedAt.IsZero() {
		t.Error("PutArtifact left CreatedAt zero")
	}
	// Kinds and tenants count their own versions.
	must(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactCA, Version: 1, Payload: []byte("pem"), Author: "platform"}))
	must(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "beta", Kind: store.ArtifactPAC, Version: 1, Author: "admin"}))
	is(t, st.PutArtifact(ctx, &store.Artifact{Tenant: "nope", Kind: store.ArtifactPAC, Version: 1}), store.ErrNotFound)

	got, err := st.Artifact(ctx, "acme", store.ArtifactPAC)
	must(t, err)
	sameArtifact(t, got, a2)
	hist, err = st.ArtifactHistory(ctx, "acme", store.ArtifactPAC, 0)
	must(t, err)
	if len(hist) != 2 {
		t.Fatalf("history = %d versions, want 2", len(hist))
	}
	sameArtifact(t, hist[0], a2)
	sameArtifact(t, hist[1], a1)
	hist, err = st.ArtifactHistory(ctx, "acme", store.ArtifactPAC, 1)
	must(t, err)
	if len(hist) != 1 || hist[0].Version != 2 {
		t.Fatalf("history(limit 1) = %d versions", len(hist))
	}
	got, err = st.Artifact(ctx, "beta", store.ArtifactPAC)
	must(t, err)
	if got.Version != 1 || got.Payload != nil {
		t.Fatalf("beta's PAC = %+v", got)
	}
	got, err = st.Artifact(ctx, "acme", store.ArtifactCA)
	must(t, err)
	if got.Version != 1 || string(got.Payload) != "pem" {
		t.Fatalf("acme's CA bundle = %+v", got)
	}
}

func sameArtifact(t testing.TB, got, want *store.Artifact) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Kind != want.Kind || got.Version != want.Version || !bytes.Equal(got.Payload, want.Payload) || got.Author != want.Author {
		t.Errorf("artifact = %+v, want %+v", got, want)
	}
	sameTime(t, "artifact CreatedAt", got.CreatedAt, want.CreatedAt)
}

// testPutArtifactConcurrently: several platform nodes derive a new version
// at once (a CA bundle that changed with time); one wins each version, and
// writers that re-read and retry end with every version stored once.
func testPutArtifactConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	tenant(t, st, "acme")
	const rounds = 5
	for v := int64(1); v <= rounds; v++ {
		errs := race(4, func(i int) error {
			return st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactCA, Version: v, Payload: fmt.Appendf(nil, "writer %d", i), Author: "platform"})
		})
		if n := winners(t, errs, store.ErrStale); n != 1 {
			t.Fatalf("version %d: %d writers succeeded (%v)", v, n, errs)
		}
	}
	const writers, each = 4, 5
	for _, err := range race(writers, func(w int) error {
		for range each {
			for {
				cur, err := st.Artifact(ctx, "acme", store.ArtifactCA)
				if err != nil {
					return err
				}
				err = st.PutArtifact(ctx, &store.Artifact{Tenant: "acme", Kind: store.ArtifactCA, Version: cur.Version + 1, Author: fmt.Sprint(w)})
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrStale) {
					return err
				}
			}
		}
		return nil
	}) {
		must(t, err)
	}
	const total = rounds + writers*each
	hist, err := st.ArtifactHistory(ctx, "acme", store.ArtifactCA, 0)
	must(t, err)
	if len(hist) != total {
		t.Fatalf("%d versions, want %d", len(hist), total)
	}
	for i, a := range hist {
		if a.Version != int64(total-i) {
			t.Fatalf("history[%d] is version %d, want %d", i, a.Version, total-i)
		}
	}
}
