package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// sqlStore implements Store on database/sql for both databases.
//
// How concurrent calls stay correct: on SQLite, every write runs on one
// connection, so write transactions are serial, and reads run beside them
// on WAL snapshots. On PostgreSQL, transactions run at READ COMMITTED and
// each write that depends on a read is conditional on what was read
// (version = ?, spent_at IS NULL) or is one statement (DELETE … RETURNING,
// INSERT … ON CONFLICT), so that a concurrent change makes it affect no row
// instead of being lost. The feed's ordering is the one case that needs a
// lock (appendFeed).
type sqlStore struct {
	d *dialect
	w *sql.DB // writes; for SQLite a single connection
	r *sql.DB // reads outside a write; for PostgreSQL the same pool as w
}

func (s *sqlStore) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// keep is an error that write still commits for: a refresh token's reuse is
// reported as an error, and the revocation it causes must persist.
type keep struct{ err error }

func (k keep) Error() string { return k.err.Error() }

// write runs fn in a write transaction and commits it unless fn fails. On
// PostgreSQL a transaction that lost a serialization conflict or a deadlock
// is run again, so fn must not have effects outside tx other than setting
// its results.
func (s *sqlStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || attempt == 3 || !s.d.retryable(err) {
			return err
		}
	}
}

func (s *sqlStore) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	err = fn(tx)
	var k keep
	if err != nil && !errors.As(err, &k) {
		tx.Rollback()
		return err
	}
	if cerr := tx.Commit(); cerr != nil {
		return fmt.Errorf("store: commit: %w", cerr)
	}
	if err != nil {
		return k.err
	}
	return nil
}

// read runs fn in a read-only transaction that sees one snapshot.
func (s *sqlStore) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// fail turns a database error about what (for example `user "u1" in tenant
// "acme"`) into a store error: the sentinel errors for the expected cases,
// the database's own error, wrapped, for the others.
func (s *sqlStore) fail(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	switch s.d.constraint(err) {
	case uniqueViolation:
		return fmt.Errorf("store: %s: %w", what, ErrConflict)
	case foreignKeyViolation:
		return fmt.Errorf("store: %s: a record it refers to (tenant, user, group or session) does not exist: %w", what, ErrNotFound)
	}
	for _, e := range sentinels {
		if errors.Is(err, e) {
			return err // already said
		}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

var sentinels = []error{ErrNotFound, ErrConflict, ErrStale, ErrReplay, ErrReused, ErrExpired, ErrRevoked}

// in names a record of a tenant in errors.
func in(tenant, kind, id string) string {
	return kind + " " + strconv.Quote(id) + " in tenant " + strconv.Quote(tenant)
}

// affected returns how many rows res changed; an error getting the count
// counts as none, which callers report as not found or stale.
func affected(res sql.Result) int64 {
	n, err := res.RowsAffected()
	if err != nil {
		return 0
	}
	return n
}

// orNow returns t, or now when t is zero: the store stamps records the
// caller did not.
func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// bytesOrNil stores an empty document as NULL, so that nil round-trips.
func bytesOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// limit turns a count where "negative means all" into a LIMIT argument.
func limit(n int) int64 {
	if n < 0 {
		return math.MaxInt64
	}
	return int64(n)
}

// fold returns a key that is the same for two strings exactly when
// strings.EqualFold says they are equal: each rune is replaced by the
// lower case of the smallest rune of its simple case-folding orbit (so K,
// k and the Kelvin sign all become k). Stored beside userName and
// displayName, it makes case-insensitive uniqueness and lookup an ordinary
// index on both databases, with one definition of "case-insensitive".
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(s[i]) // keep invalid bytes apart from U+FFFD
			i++
			continue
		}
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(unicode.ToLower(m))
		i += size
	}
	return b.String()
}

// migrate applies the migrations the database lacks, each in its own
// transaction together with its row in schema_migrations.
func (s *sqlStore) migrate(ctx context.Context) error {
	migs, err := loadMigrations(s.d.migrations)
	if err != nil {
		return err
	}
	return s.applyMigrations(ctx, migs)
}

// applyMigrations brings the schema to len(migs); tests give it fewer than
// there are, to build a database as an older build left it.
func (s *sqlStore) applyMigrations(ctx context.Context, migs []migration) error {
	for {
		done := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			if s.d.lockMigrations != "" {
				if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.bootstrap); err != nil {
				return err
			}
			var current int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			switch {
			case current > len(migs):
				return fmt.Errorf("store: the %s database schema is at version %d, newer than this build of vigie knows (%d): run the newer vigie that upgraded it, or restore a backup taken before the upgrade", s.d.name, current, len(migs))
			case current == len(migs):
				done = true
				return nil
			}
			m := migs[current]
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("store: %s migration %s: %w", s.d.name, m.name, err)
			}
			_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), current+1, s.d.t(time.Now()))
			return err
		})
		if err != nil {
			if strings.HasPrefix(err.Error(), "store: ") {
				return err
			}
			return fmt.Errorf("store: %s migrations: %w", s.d.name, err)
		}
		if done {
			return nil
		}
	}
}

type migration struct {
	name string
	sql  string
}

// loadMigrations reads NNNN_name.sql files, numbered from 1 without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	migs := make([]migration, 0, len(names))
	for i, name := range names {
		num, _, ok := strings.Cut(name, "_")
		if n, err := strconv.Atoi(num); !ok || err != nil || n != i+1 {
			// A build-time mistake: tests catch it.
			return nil, fmt.Errorf("store: migration %s: want number %04d", name, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		migs = append(migs, migration{name: name, sql: string(b)})
	}
	return migs, nil
}
