package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"vigie/platform/store"
	"vigie/platform/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.SQLite(t) })
}

// TestSQLitePath opens a file whose path would read as URI parameters,
// and opens it again: the schema is migrated once, the data stays.
func TestSQLitePath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd ?name#1.db")
	st, err := store.Open(ctx, store.SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(f); err != nil {
			t.Fatal(err)
		} else if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", f, fi.Mode())
		}
	}
	st.Close()
	st, err = store.Open(ctx, store.SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Tenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigie.db")
	testNewerSchema(t, store.SQLite, path, func() (*sql.DB, error) { return sql.Open("sqlite", path) })
}

// testNewerSchema checks that Open refuses a database that a newer build
// has migrated, and says so.
func testNewerSchema(t *testing.T, driver, dsn string, raw func() (*sql.DB, error)) {
	ctx := context.Background()
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := raw()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) SELECT MAX(version) + 1, MAX(applied_at) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(ctx, driver, dsn)
	if err == nil {
		st.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("error does not say the schema is newer: %v", err)
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	if _, err := store.Open(context.Background(), "mysql", "x"); err == nil {
		t.Fatal("Open accepted an unknown driver")
	}
	if _, err := store.Open(context.Background(), store.SQLite, ":memory:"); err == nil {
		t.Fatal("Open accepted :memory:")
	}
}
