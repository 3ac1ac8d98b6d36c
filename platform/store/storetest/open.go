package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"vigie/platform/store"
	"vigie/platform/store/pgtest"
)

// SQLite opens a store on a new file in t.TempDir(), closed when the test
// ends.
func SQLite(t testing.TB) store.Store {
	t.Helper()
	return open(t, store.SQLite, filepath.Join(t.TempDir(), "vigie.db"))
}

// Postgres opens a store on a new database of the throwaway server (see
// pgtest), closed when the test ends. The test is skipped where PostgreSQL
// is not installed, unless pgtest.RequireEnv is set.
func Postgres(t testing.TB) store.Store {
	t.Helper()
	return open(t, store.Postgres, pgtest.DSN(t))
}

func open(t testing.TB, driver, dsn string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return st
}
