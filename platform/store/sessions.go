package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ReasonReused is the revocation reason of a session whose refresh token
// was used twice.
const ReasonReused = "refresh token reused"

const sessionColumns = `s.tenant, s.id, s.user_id, s.device, s.auth_time, s.created_at, s.expires_at, s.revoked_at, s.reason`

func scanSession(row interface{ Scan(...any) error }, extra ...any) (*Session, error) {
	s := new(Session)
	dest := append([]any{&s.Tenant, &s.ID, &s.UserID, &s.Device, ts(&s.AuthTime), ts(&s.CreatedAt), ts(&s.ExpiresAt), ts(&s.RevokedAt), &s.Reason}, extra...)
	return s, row.Scan(dest...)
}

// CreateSession stores s and its first refresh token, when there is one.
// s.ExpiresAt is required; CreatedAt defaults to now. first gets s's tenant
// and ID, and by default its CreatedAt and ExpiresAt.
func (s *sqlStore) CreateSession(ctx context.Context, sess *Session, first *RefreshToken) error {
	what := in(sess.Tenant, "session", sess.ID)
	if sess.ExpiresAt.IsZero() {
		return fmt.Errorf("store: %s: no expiry", what)
	}
	created := orNow(sess.CreatedAt, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO sessions (tenant, id, user_id, device, auth_time, created_at, expires_at, revoked_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			sess.Tenant, sess.ID, sess.UserID, sess.Device, s.d.t(sess.AuthTime), s.d.t(created), s.d.t(sess.ExpiresAt), s.d.t(sess.RevokedAt), sess.Reason); err != nil {
			return err
		}
		if first == nil {
			return nil
		}
		return s.insertToken(ctx, tx, sess, first, created)
	})
	if err != nil {
		return s.fail(err, what)
	}
	sess.CreatedAt = created
	return nil
}

// insertToken stores t as a token of sess, filling in what it leaves out.
func (s *sqlStore) insertToken(ctx context.Context, tx *sql.Tx, sess *Session, t *RefreshToken, now time.Time) error {
	t.Tenant, t.SessionID = sess.Tenant, sess.ID
	t.CreatedAt = orNow(t.CreatedAt, now)
	t.ExpiresAt = orNow(t.ExpiresAt, sess.ExpiresAt)
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO refresh_tokens (tenant, hash, session_id, created_at, expires_at, spent_at) VALUES (?, ?, ?, ?, ?, ?)`),
		t.Tenant, t.Hash, t.SessionID, s.d.t(t.CreatedAt), s.d.t(t.ExpiresAt), s.d.t(t.SpentAt))
	if err != nil {
		return s.fail(err, in(t.Tenant, "refresh token", t.Hash))
	}
	return nil
}

func (s *sqlStore) Session(ctx context.Context, tenant, id string) (*Session, error) {
	sess, err := scanSession(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+sessionColumns+` FROM sessions s WHERE s.tenant = ? AND s.id = ?`), tenant, id))
	if err != nil {
		return nil, s.fail(err, in(tenant, "session", id))
	}
	return sess, nil
}

func (s *sqlStore) RefreshTokenSession(ctx context.Context, tenant, hash string) (*Session, error) {
	sess, err := scanSession(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+sessionColumns+` FROM refresh_tokens t JOIN sessions s ON s.tenant = t.tenant AND s.id = t.session_id WHERE t.tenant = ? AND t.hash = ?`), tenant, hash))
	if err != nil {
		return nil, s.fail(err, in(tenant, "refresh token", hash))
	}
	return sess, nil
}

// RotateRefreshToken checks, in this order: the token exists, its session
// is not revoked (ErrRevoked, even for a spent token: the session is
// already dead and already on the feed), the session and token have not
// ended (ErrExpired), the token is unspent (else ErrReused, and the session
// is revoked in the same transaction). The spend itself is conditional on
// the token being unspent, so that of two concurrent rotations that both
// read it unspent (possible on PostgreSQL), the second finds it spent when
// its update runs after the first commits, and handles it as a reuse.
//
// next gets the session's tenant and ID, and by default CreatedAt now and
// the session's ExpiresAt. The returned session is nil on every error.
func (s *sqlStore) RotateRefreshToken(ctx context.Context, tenant, oldHash string, next *RefreshToken, now time.Time) (*Session, error) {
	what := in(tenant, "refresh token", oldHash)
	var sess *Session
	err := s.write(ctx, func(tx *sql.Tx) error {
		var spent, expires time.Time
		var err error
		sess, err = scanSession(tx.QueryRowContext(ctx, s.d.q(`SELECT `+sessionColumns+`, t.spent_at, t.expires_at FROM refresh_tokens t JOIN sessions s ON s.tenant = t.tenant AND s.id = t.session_id WHERE t.tenant = ? AND t.hash = ?`), tenant, oldHash),
			ts(&spent), ts(&expires))
		switch {
		case err != nil:
			return err
		case !sess.RevokedAt.IsZero():
			return fmt.Errorf("store: %s: session %q: %w", what, sess.ID, ErrRevoked)
		case !now.Before(sess.ExpiresAt) || !now.Before(expires):
			return fmt.Errorf("store: %s: session %q: %w", what, sess.ID, ErrExpired)
		case !spent.IsZero():
			return s.reused(ctx, tx, what, sess, now)
		}
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE refresh_tokens SET spent_at = ? WHERE tenant = ? AND hash = ? AND spent_at IS NULL`), s.d.t(now), tenant, oldHash)
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return s.reused(ctx, tx, what, sess, now)
		}
		return s.insertToken(ctx, tx, sess, next, now)
	})
	if err != nil {
		return nil, s.fail(err, what)
	}
	return sess, nil
}

// reused revokes the session of a reused token and reports ErrReused, and
// has the transaction commit anyway.
func (s *sqlStore) reused(ctx context.Context, tx *sql.Tx, what string, sess *Session, now time.Time) error {
	if _, err := s.revokeSession(ctx, tx, sess.Tenant, sess.ID, ReasonReused, now); err != nil {
		return err
	}
	return keep{fmt.Errorf("store: %s: session %q revoked: %w", what, sess.ID, ErrReused)}
}

// revokeSession revokes an active session and appends its revocation
// event, and reports whether it did; a revoked session stays as it was.
func (s *sqlStore) revokeSession(ctx context.Context, tx *sql.Tx, tenant, id, reason string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, s.d.q(`UPDATE sessions SET revoked_at = ?, reason = ? WHERE tenant = ? AND id = ? AND revoked_at IS NULL`),
		s.d.t(now), reason, tenant, id)
	if err != nil || affected(res) == 0 {
		return false, err
	}
	return true, s.appendRevocation(ctx, tx, &Revocation{Tenant: tenant, Kind: RevokeSession, Subject: id, Reason: reason, At: now})
}

// RevokeSession revokes the session; ErrNotFound if there is none. The
// event is appended only when the session was active.
func (s *sqlStore) RevokeSession(ctx context.Context, tenant, id, reason string, now time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		done, err := s.revokeSession(ctx, tx, tenant, id, reason, now)
		if err != nil || done {
			return err
		}
		var one int
		return tx.QueryRowContext(ctx, s.d.q(`SELECT 1 FROM sessions WHERE tenant = ? AND id = ?`), tenant, id).Scan(&one)
	})
	return s.fail(err, in(tenant, "session", id))
}

// RevokeUserSessions revokes the user's sessions that are active at now
// and returns how many. It appends one RevokeUser event whatever that
// number, even for a user the store does not know (one deleted from the
// directory, say), so that gateways also drop tokens of sessions this store
// no longer has.
func (s *sqlStore) RevokeUserSessions(ctx context.Context, tenant, userID, reason string, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE sessions SET revoked_at = ?, reason = ? WHERE tenant = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`),
			s.d.t(now), reason, tenant, userID, s.d.t(now))
		if err != nil {
			return err
		}
		n = affected(res)
		return s.appendRevocation(ctx, tx, &Revocation{Tenant: tenant, Kind: RevokeUser, Subject: userID, Reason: reason, At: now})
	})
	if err != nil {
		return 0, s.fail(err, in(tenant, "sessions of user", userID))
	}
	return int(n), nil
}

// DeleteExpired deletes the single-use records that expired at now, and the
// sessions, with their refresh tokens, that expired or were revoked before
// cutoff. Each kind is one statement, so that SQLite's writer is not held
// for the whole sweep.
func (s *sqlStore) DeleteExpired(ctx context.Context, now, cutoff time.Time) error {
	for _, q := range []struct {
		table string
		query string
		args  []any
	}{
		{"auth requests", `DELETE FROM auth_requests WHERE expires_at <= ?`, []any{s.d.t(now)}},
		{"auth codes", `DELETE FROM auth_codes WHERE expires_at <= ?`, []any{s.d.t(now)}},
		{"assertions", `DELETE FROM saml_assertions WHERE expires_at <= ?`, []any{s.d.t(now)}},
		{"sessions", `DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?`, []any{s.d.t(cutoff), s.d.t(cutoff)}},
	} {
		if _, err := s.w.ExecContext(ctx, s.d.q(q.query), q.args...); err != nil {
			return s.fail(err, "delete expired "+q.table)
		}
	}
	return nil
}
