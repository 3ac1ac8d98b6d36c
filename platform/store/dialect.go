package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations
var migrationFiles embed.FS

// A dialect is what differs between the two databases. The queries
// themselves are shared: they are written with ? placeholders, and use only
// SQL that both accept (ON CONFLICT … DO UPDATE, DELETE … RETURNING).
type dialect struct {
	name       string
	dollar     bool   // placeholders are $1, $2… instead of ?
	migrations fs.FS  // NNNN_name.sql files
	bootstrap  string // creates schema_migrations when missing
	// lockMigrations, lockFeed and lockAccess, when not empty, are run in a
	// write transaction to serialise it with the others that run them: the
	// first so that two processes starting at once do not both migrate, the
	// others so that feed rows and access-log rows commit in seq order (see
	// appendFeed and AppendAccess). The access log has its own lock so that
	// a large batch never holds up a revocation.
	lockMigrations string
	lockFeed       string
	lockAccess     string
	readTx         *sql.TxOptions // for reads that span several queries
	encodeTime     func(time.Time) any
	constraint     func(error) constraintKind
	retryable      func(error) bool
	// indexedBy, when set, names the index a query must use. SQLite plans
	// without statistics (the store never runs ANALYZE), and for the access
	// log it chose indexes that read the tenant's whole history where a
	// narrower one was at hand. PostgreSQL keeps statistics and chooses.
	indexedBy func(index string) string

	rebound sync.Map // query with ? → query with $n; the queries are a bounded set
}

type constraintKind int

const (
	noConstraint constraintKind = iota
	uniqueViolation
	foreignKeyViolation
)

var sqliteDialect = &dialect{
	name:       SQLite,
	migrations: mustSub(migrationFiles, "migrations/sqlite"),
	bootstrap:  `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
	// A deferred read transaction on a WAL connection reads one snapshot.
	readTx: &sql.TxOptions{ReadOnly: true},
	// Microseconds: PostgreSQL's precision, so that both stores return the
	// same values.
	encodeTime: func(t time.Time) any { return t.UnixMicro() },
	constraint: func(err error) constraintKind {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return noConstraint
		}
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return uniqueViolation
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return foreignKeyViolation
		}
		return noConstraint
	},
	// Writes are serialised in-process; SQLITE_BUSY only comes from another
	// process outlasting busy_timeout, and retrying would not help.
	retryable: func(error) bool { return false },
	indexedBy: func(index string) string { return ` INDEXED BY ` + index },
}

// Advisory lock keys, arbitrary but fixed: "vigie" in ASCII, then a number.
const (
	pgLockMigrations = 0x7669676965_01
	pgLockFeed       = 0x7669676965_02
	pgLockAccess     = 0x7669676965_03
)

var postgresDialect = &dialect{
	name:           Postgres,
	dollar:         true,
	migrations:     mustSub(migrationFiles, "migrations/postgres"),
	bootstrap:      `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`,
	lockMigrations: `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(pgLockMigrations, 10) + `)`,
	lockFeed:       `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(pgLockFeed, 10) + `)`,
	lockAccess:     `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(pgLockAccess, 10) + `)`,
	// Under the default READ COMMITTED each statement sees a new snapshot;
	// a page and its total must come from the same one.
	readTx:     &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
	encodeTime: func(t time.Time) any { return t.UTC() },
	constraint: func(err error) constraintKind {
		var e *pgconn.PgError
		if !errors.As(err, &e) {
			return noConstraint
		}
		switch e.Code {
		case "23505":
			return uniqueViolation
		case "23503":
			return foreignKeyViolation
		}
		return noConstraint
	},
	// serialization_failure and deadlock_detected: the transaction was
	// rolled back and may simply be run again.
	retryable: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
	},
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// q returns query with the dialect's placeholders.
func (d *dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	if v, ok := d.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	quoted := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	v, _ := d.rebound.LoadOrStore(query, b.String())
	return v.(string)
}

// t encodes a time as a query argument; the zero time is NULL.
func (d *dialect) t(v time.Time) any {
	if v.IsZero() {
		return nil
	}
	return d.encodeTime(v)
}

// timeDest scans what dialect.t wrote, from either database, back into a
// UTC time.Time; NULL is the zero time.
type timeDest struct{ p *time.Time }

func (s timeDest) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.p = time.Time{}
	case int64:
		*s.p = time.UnixMicro(v).UTC()
	case time.Time:
		*s.p = v.UTC()
	default:
		return fmt.Errorf("store: a time column holds a %T", v)
	}
	return nil
}

// ts wraps a time destination for Scan.
func ts(p *time.Time) timeDest { return timeDest{p} }

// execer is what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
