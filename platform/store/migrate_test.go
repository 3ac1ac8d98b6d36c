package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigie/platform/store/pgtest"
)

// TestUpgradeSQLite and TestUpgradePostgres build a database as the first
// release left it (schema 1, with data in it), open it with this build, and
// check that the data is still there and the new tables work: databases in
// the field upgrade in place.
func TestUpgradeSQLite(t *testing.T) {
	testUpgrade(t, SQLite, filepath.Join(t.TempDir(), "v1.db"))
}

func TestUpgradePostgres(t *testing.T) {
	testUpgrade(t, Postgres, pgtest.DSN(t))
}

func testUpgrade(t *testing.T, driver, dsn string) {
	ctx := t.Context()
	var (
		old *sqlStore
		err error
	)
	if driver == SQLite {
		old, err = openSQLite(ctx, dsn)
	} else {
		old, err = openPostgres(ctx, dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	migs, err := loadMigrations(old.d.migrations)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 2 {
		t.Fatalf("%d migrations, want at least 2", len(migs))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	must(old.applyMigrations(ctx, migs[:1]))
	must(old.CreateTenant(ctx, &Tenant{ID: "acme", Name: "Acme"}))
	must(old.CreateSession(ctx, &Session{Tenant: "acme", ID: "s1", UserID: "u1", ExpiresAt: now.Add(time.Hour)}, &RefreshToken{Hash: "h0"}))
	must(old.RevokeSession(ctx, "acme", "s1", "logout", now))
	must(old.Close())

	st, err := Open(ctx, driver, dsn)
	must(err)
	defer st.Close()
	var version int
	must(st.(*sqlStore).r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version))
	if version != len(migs) {
		t.Fatalf("schema version %d after Open, want %d", version, len(migs))
	}
	s, err := st.Session(ctx, "acme", "s1")
	must(err)
	if s.RevokedAt.IsZero() {
		t.Fatal("the upgrade lost the session's revocation")
	}
	before, err := st.LastRevocation(ctx)
	must(err)
	if before == 0 {
		t.Fatal("the upgrade lost the revocation feed")
	}

	must(st.AddCA(ctx, &CA{Tenant: "acme", ID: "ca1", CertPEM: "pem"}))
	must(st.PutPolicy(ctx, &Policy{Tenant: "acme", Version: 1}))
	must(st.PutCategories(ctx, "v1", []byte("data"), now))
	must(st.AppendAccess(ctx, []*AccessRecord{{Tenant: "acme", Host: "example.com"}}))
	events, err := st.Revocations(ctx, before, 0)
	must(err)
	if len(events) != 3 || events[0].Kind != CAChanged || events[1].Kind != PolicyChanged || events[2].Kind != CategoriesChanged {
		t.Fatalf("feed after the upgrade: %+v", events)
	}
	recs, err := st.AccessLog(ctx, AccessQuery{Tenant: "acme"})
	must(err)
	if len(recs) != 1 {
		t.Fatalf("access log after the upgrade: %d records", len(recs))
	}
	// 0003: what agents fetch, for a tenant the first schema made.
	must(st.PutDistributionKey(ctx, &DistributionKey{Tenant: "acme", Private: []byte("sealed"), Public: []byte("public")}))
	must(st.AddEnrollmentSecret(ctx, &EnrollmentSecret{Tenant: "acme", Name: "msi", Hash: "h"}))
	must(st.EnrollDevice(ctx, &Device{Tenant: "acme", ID: "d1", PublicKey: []byte("k")}, "h"))
	must(st.PutArtifact(ctx, &Artifact{Tenant: "acme", Kind: ArtifactPAC, Version: 1, Payload: []byte("pac"), Author: "admin"}))
}

// TestAccessLogPlansSQLite checks how SQLite runs each shape of AccessLog
// query: on the index meant for it, constrained by the query's conditions.
// Left to itself, SQLite, planning without statistics, read a user's time
// range through the whole tenant's time index, or the whole tenant's log
// in seq order; accessQuery names the index.
func TestAccessLogPlansSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, SQLite, filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	for _, tc := range []struct {
		q    AccessQuery
		want string
	}{
		{AccessQuery{Tenant: "acme"}, "access_log_tenant (tenant=?)"},
		{AccessQuery{Tenant: "acme", After: 10}, "access_log_tenant (tenant=? AND seq>?)"},
		{AccessQuery{Tenant: "acme", From: from}, "access_log_at (tenant=? AND at>?)"},
		{AccessQuery{Tenant: "acme", From: from, To: to, After: 10}, "access_log_at (tenant=? AND at>? AND at<?)"},
		{AccessQuery{Tenant: "acme", UserID: "alice"}, "access_log_user (tenant=? AND user_id=?)"},
		{AccessQuery{Tenant: "acme", UserID: "alice", From: from, To: to}, "access_log_user (tenant=? AND user_id=? AND at>? AND at<?)"},
		{AccessQuery{Tenant: "acme", UserID: "alice", To: to, After: 10}, "access_log_user (tenant=? AND user_id=? AND at<?)"},
		{AccessQuery{Tenant: "acme", UserID: "alice", Host: "example.com", From: from}, "access_log_user (tenant=? AND user_id=? AND at>?)"},
		{AccessQuery{Tenant: "acme", Host: "example.com", From: from, To: to}, "access_log_host (tenant=? AND host=? AND at>? AND at<?)"},
		{AccessQuery{Tenant: "acme", Host: "example.com", After: 10}, "access_log_host (tenant=? AND host=?)"},
	} {
		query, args := s.accessQuery(tc.q)
		rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "\n"), "SEARCH access_log USING INDEX "+tc.want) {
			t.Errorf("%+v: plan\n\t%s\nwant index %s", tc.q, strings.Join(plan, "\n\t"), tc.want)
		}
	}
}
