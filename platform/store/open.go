package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Open connects to the database, applies the schema migrations it lacks,
// and returns the store. It refuses a database whose schema is newer than
// this build knows (a downgrade), rather than risk writing rows an older
// schema does not describe.
//
// For SQLite, dsn is a file path, created if missing (not ":memory:": the
// store opens several connections to the file). The database is put in WAL
// mode so that reads never wait for writes.
//
// For PostgreSQL, dsn is a pgx connection string. The pool holds at most
// 16 connections.
func Open(ctx context.Context, driver, dsn string) (Store, error) {
	var (
		s   *sqlStore
		err error
	)
	switch driver {
	case SQLite:
		s, err = openSQLite(ctx, dsn)
	case Postgres:
		s, err = openPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("store: unknown driver %q (want %q or %q)", driver, SQLite, Postgres)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// SQLite connection settings. busy_timeout only matters for other processes
// holding the file (a backup, the sqlite3 shell): within this process writes
// queue in the single-connection writer pool instead of polling the lock.
// synchronous=NORMAL is SQLite's recommendation for WAL: a commit survives a
// crash of the process; a power loss may lose the last commits but never
// corrupts the file. With FULL every commit waits for an fsync.
// temp_store=MEMORY keeps the writer's statement journals (the undo record
// of one statement inside a transaction) in memory: the access log's
// multi-row inserts outgrow the 64 KiB SQLite otherwise keeps there before
// spilling to a temporary file, which cost about a tenth of their time.
const (
	sqliteCommon = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	sqliteWriter = sqliteCommon + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	sqliteReader = sqliteCommon + "&_pragma=query_only(1)"
)

func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: sqlite: %q is not a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	// The file holds sealed keys and token hashes: for its owner only.
	// SQLite gives the -wal and -shm files the database file's mode, and
	// takes an empty file for a new database.
	if f, err := os.OpenFile(abs, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
	// A file: URI, so that a path holding '?' or '#' is not read as
	// parameters. SQLite wants "file:///C:/x" for a Windows drive path.
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	uri := (&url.URL{Scheme: "file", Path: p}).String() // file:///abs/path, escaped

	// Writes go through one connection: SQLite allows one writer at a time
	// anyway, and waiting in database/sql's pool is fair and immediate where
	// SQLite's busy handler sleeps and retries. BEGIN IMMEDIATE
	// (_txlock=immediate) takes the write lock when a transaction starts, so
	// a read-then-write transaction never fails with SQLITE_BUSY on upgrade.
	w, err := sql.Open("sqlite", uri+"?"+sqliteWriter)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	// Reads go through a pool of read-only connections; in WAL mode they
	// read the last committed state without waiting for the writer.
	r, err := sql.Open("sqlite", uri+"?"+sqliteReader)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &sqlStore{d: sqliteDialect, w: w, r: r}, nil
}

func openPostgres(ctx context.Context, dsn string) (*sqlStore, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("store: postgres: the connection string does not parse")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return &sqlStore{d: postgresDialect, w: db, r: db}, nil
}
