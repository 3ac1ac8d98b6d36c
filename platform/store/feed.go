package store

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// The revocation feed and the audit log are read by cursor (after seq N),
// so a row must never become visible after a row with a higher seq: a
// reader that has moved past it would miss it. SQLite commits one writer at
// a time, so that holds by itself. On PostgreSQL two transactions may take
// seqs 5 and 6 and commit 6 first; appendFeed therefore takes an advisory
// lock, held until commit, before taking a seq. Appends are rare next to
// reads, so serialising them is cheap.
func (s *sqlStore) appendFeed(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	if s.d.lockFeed != "" {
		if _, err := tx.ExecContext(ctx, s.d.lockFeed); err != nil {
			return 0, err
		}
	}
	var seq int64
	err := tx.QueryRowContext(ctx, s.d.q(query), args...).Scan(&seq)
	return seq, err
}

func (s *sqlStore) appendRevocation(ctx context.Context, tx *sql.Tx, r *Revocation) error {
	r.At = orNow(r.At, time.Now())
	seq, err := s.appendFeed(ctx, tx, `INSERT INTO revocations (tenant, kind, subject, reason, at) VALUES (?, ?, ?, ?, ?) RETURNING seq`,
		r.Tenant, r.Kind, r.Subject, r.Reason, s.d.t(r.At))
	r.Seq = seq
	return err
}

// AddRevocation appends r and sets its Seq; At defaults to now.
func (s *sqlStore) AddRevocation(ctx context.Context, r *Revocation) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return s.appendRevocation(ctx, tx, r) })
	return s.fail(err, "revocation feed")
}

// Revocations returns up to limit events after seq after, in seq order;
// all of them when limit is not positive.
func (s *sqlStore) Revocations(ctx context.Context, after int64, limit int) ([]*Revocation, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT seq, tenant, kind, subject, reason, at FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?`), after, feedLimit(limit))
	if err != nil {
		return nil, s.fail(err, "revocation feed")
	}
	defer rows.Close()
	var out []*Revocation
	for rows.Next() {
		r := new(Revocation)
		if err := rows.Scan(&r.Seq, &r.Tenant, &r.Kind, &r.Subject, &r.Reason, ts(&r.At)); err != nil {
			return nil, s.fail(err, "revocation feed")
		}
		out = append(out, r)
	}
	return out, s.fail(rows.Err(), "revocation feed")
}

// LastRevocation returns the highest seq, 0 for an empty feed.
func (s *sqlStore) LastRevocation(ctx context.Context) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM revocations`).Scan(&seq)
	return seq, s.fail(err, "revocation feed")
}

func feedLimit(n int) int64 {
	if n <= 0 {
		return limit(-1)
	}
	return int64(n)
}

// SCIM tokens.

// AddSCIMToken stores a token by name; ErrConflict when the name or the
// hash is taken in the tenant.
func (s *sqlStore) AddSCIMToken(ctx context.Context, tenant, name, hash string, now time.Time) error {
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO scim_tokens (tenant, name, hash, created_at) VALUES (?, ?, ?, ?)`),
		tenant, name, hash, s.d.t(orNow(now, time.Now())))
	return s.fail(err, in(tenant, "SCIM token", name))
}

func (s *sqlStore) SCIMTokenName(ctx context.Context, tenant, hash string) (string, error) {
	var name string
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT name FROM scim_tokens WHERE tenant = ? AND hash = ?`), tenant, hash).Scan(&name)
	if err != nil {
		return "", s.fail(err, "tenant "+strconv.Quote(tenant)+": SCIM token")
	}
	return name, nil
}

func (s *sqlStore) DeleteSCIMToken(ctx context.Context, tenant, name string) error {
	res, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM scim_tokens WHERE tenant = ? AND name = ?`), tenant, name)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(tenant, "SCIM token", name))
}

// The audit log.

// Audit appends e and sets its Seq; At defaults to now.
func (s *sqlStore) Audit(ctx context.Context, e *AuditEvent) error {
	at := orNow(e.At, time.Now())
	var seq int64
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		seq, err = s.appendFeed(ctx, tx, `INSERT INTO audit_log (at, tenant, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
			s.d.t(at), e.Tenant, e.Actor, e.Action, e.Target, bytesOrNil(e.Detail))
		return err
	})
	if err != nil {
		return s.fail(err, "audit log")
	}
	e.Seq, e.At = seq, at
	return nil
}

// AuditEvents returns up to limit events of exactly this tenant after seq
// after, in seq order; all of them when limit is not positive. Tenant ""
// selects the platform-wide events only, never every tenant's: a caller
// that lost its tenant must not see the others'.
func (s *sqlStore) AuditEvents(ctx context.Context, tenant string, after int64, limit int) ([]*AuditEvent, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT seq, at, tenant, actor, action, target, detail FROM audit_log WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?`), tenant, after, feedLimit(limit))
	if err != nil {
		return nil, s.fail(err, "audit log")
	}
	defer rows.Close()
	var out []*AuditEvent
	for rows.Next() {
		e := new(AuditEvent)
		if err := rows.Scan(&e.Seq, ts(&e.At), &e.Tenant, &e.Actor, &e.Action, &e.Target, (*[]byte)(&e.Detail)); err != nil {
			return nil, s.fail(err, "audit log")
		}
		out = append(out, e)
	}
	return out, s.fail(rows.Err(), "audit log")
}
