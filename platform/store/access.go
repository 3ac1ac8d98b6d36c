package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"
)

// The access log.

const (
	accessColumns = `tenant, at, user_id, device, session_id, client, method, host, path, status, bytes_in, bytes_out, duration_ns, decision, rule, ref`
	accessArgs    = 16 // columns in accessColumns

	// maxAccessRows is the most rows one INSERT carries: 8,192 arguments,
	// far below SQLite's limit (32,766) and PostgreSQL's (65,535).
	maxAccessRows = 512

	// defaultAccessLimit is AccessQuery's Limit when it is not positive.
	defaultAccessLimit = 1000
)

// accessInserts holds the multi-row INSERT statements, by log2 of their
// row count. AppendAccess sends only these ten, whatever the batch sizes,
// so that what is cached per statement stays small: pgx prepares each once
// per connection and keeps it, dialect.q keeps each rewritten.
var accessInserts = sync.OnceValue(func() []string {
	row := "(" + marks(accessArgs) + ")"
	var out []string
	for n := 1; n <= maxAccessRows; n *= 2 {
		out = append(out, `INSERT INTO access_log (`+accessColumns+`) VALUES `+strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")+` RETURNING seq`)
	}
	return out
})

// AppendAccess appends records in one transaction and sets their Seq, in
// their order; an At left zero becomes now. Nothing is set if it fails.
//
// The records go in multi-row INSERTs of up to 512 rows, in the sizes of
// the binary digits of the count (500 = 256+128+64+32+16+4), which is few
// round trips per batch and a bounded set of statements.
//
// Seqs come back from RETURNING, whose row order neither database
// promises, so they are sorted and handed out in record order. That is
// right because rows are inserted in the order of the VALUES lists, each
// taking the next seq, and because no other append takes seqs meanwhile:
// SQLite has one writer, and on PostgreSQL appends take an advisory lock
// until commit. The lock also makes commit order seq order, so that a
// reader following the After cursor never skips a late commit.
func (s *sqlStore) AppendAccess(ctx context.Context, records []*AccessRecord) error {
	if len(records) == 0 {
		return nil
	}
	now := time.Now()
	var seqs []int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		seqs = make([]int64, 0, len(records))
		if s.d.lockAccess != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockAccess); err != nil {
				return err
			}
		}
		args := make([]any, 0, accessArgs*min(len(records), maxAccessRows))
		for rest := records; len(rest) > 0; {
			// The largest power of two that fits.
			k := min(bits.Len(uint(len(rest)))-1, len(accessInserts())-1)
			n := 1 << k
			args = args[:0]
			for _, r := range rest[:n] {
				args = append(args, r.Tenant, s.d.t(orNow(r.At, now)), r.UserID, r.Device, r.SessionID, r.Client, r.Method, r.Host, r.Path,
					r.Status, r.BytesIn, r.BytesOut, int64(r.Duration), r.Decision, r.Rule, r.Ref)
			}
			rest = rest[n:]
			if err := s.insertAccess(ctx, tx, accessInserts()[k], args, &seqs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(err, "access log")
	}
	if len(seqs) != len(records) {
		// The transaction committed: say so, rather than hand out wrong seqs.
		return fmt.Errorf("store: access log: %d records appended, but %d seqs returned", len(records), len(seqs))
	}
	slices.Sort(seqs)
	for i, r := range records {
		r.Seq = seqs[i]
		r.At = orNow(r.At, now)
	}
	return nil
}

// insertAccess runs one INSERT … RETURNING seq and collects the seqs.
func (s *sqlStore) insertAccess(ctx context.Context, tx *sql.Tx, query string, args []any, seqs *[]int64) error {
	rows, err := tx.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return err
		}
		*seqs = append(*seqs, seq)
	}
	return rows.Err()
}

// accessQuery returns the SELECT for q, in the dialect's placeholders, and
// its arguments. Conditions are added only for the filters q sets.
//
// The index that serves it, where the dialect is told: a user's or a
// host's (tenant, …, at) index when the query names one, (tenant, at) for a
// time range, so that such a query reads the rows of its range, however
// long the history, and sorts them by seq; (tenant, seq) otherwise, read in
// order from the cursor.
func (s *sqlStore) accessQuery(q AccessQuery) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT seq, ` + accessColumns + ` FROM access_log`)
	if s.d.indexedBy != nil {
		index := "access_log_tenant"
		switch {
		case q.UserID != "":
			index = "access_log_user"
		case q.Host != "":
			index = "access_log_host"
		case !q.From.IsZero() || !q.To.IsZero():
			index = "access_log_at"
		}
		b.WriteString(s.d.indexedBy(index))
	}
	b.WriteString(` WHERE tenant = ?`)
	args := []any{q.Tenant}
	if q.UserID != "" {
		b.WriteString(` AND user_id = ?`)
		args = append(args, q.UserID)
	}
	if q.Host != "" {
		b.WriteString(` AND host = ?`)
		args = append(args, q.Host)
	}
	if !q.From.IsZero() {
		b.WriteString(` AND at >= ?`)
		args = append(args, s.d.t(q.From))
	}
	if !q.To.IsZero() {
		b.WriteString(` AND at < ?`)
		args = append(args, s.d.t(q.To))
	}
	if q.After > 0 {
		b.WriteString(` AND seq > ?`)
		args = append(args, q.After)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAccessLimit
	}
	if q.From.IsZero() && q.To.IsZero() {
		b.WriteString(` ORDER BY seq LIMIT ?`)
	} else {
		// The same order, but one no index provides. Otherwise PostgreSQL,
		// which assumes that the rows in a time range are spread evenly
		// over seqs, reads the tenant's log in seq order from the cursor
		// until it has found enough, and for the last hour of a month-long
		// log that is the whole month. Rows are in fact clustered by time;
		// reading the range by the time index and sorting it costs what the
		// range holds, however long the history.
		b.WriteString(` ORDER BY seq + 0 LIMIT ?`)
	}
	return s.d.q(b.String()), append(args, limit)
}

// AccessLog returns the tenant's records that q selects, oldest (lowest
// Seq) first. A query without a tenant is refused: it must never read
// every tenant's log.
func (s *sqlStore) AccessLog(ctx context.Context, q AccessQuery) ([]*AccessRecord, error) {
	if q.Tenant == "" {
		return nil, errors.New("store: access log: the query names no tenant")
	}
	query, args := s.accessQuery(q)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail(err, "access log")
	}
	defer rows.Close()
	var out []*AccessRecord
	for rows.Next() {
		r := new(AccessRecord)
		if err := rows.Scan(&r.Seq, &r.Tenant, ts(&r.At), &r.UserID, &r.Device, &r.SessionID, &r.Client, &r.Method, &r.Host, &r.Path,
			&r.Status, &r.BytesIn, &r.BytesOut, (*int64)(&r.Duration), &r.Decision, &r.Rule, &r.Ref); err != nil {
			return nil, s.fail(err, "access log")
		}
		out = append(out, r)
	}
	return out, s.fail(rows.Err(), "access log")
}
