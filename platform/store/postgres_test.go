package store_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"vigie/platform/store"
	"vigie/platform/store/pgtest"
	"vigie/platform/store/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Postgres(t) })
}

func TestPostgresNewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	testNewerSchema(t, store.Postgres, dsn, func() (*sql.DB, error) {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		return stdlib.OpenDB(*cfg), nil
	})
}

// TestPostgresOpenConcurrently has several processes' worth of stores
// migrate one database at once: the migration lock lets one apply each
// step.
func TestPostgresOpenConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			st, err := store.Open(context.Background(), store.Postgres, dsn)
			if err == nil {
				st.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
