package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Signing keys.

// AddSigningKey stores k. CreatedAt defaults to now.
func (s *sqlStore) AddSigningKey(ctx context.Context, k *SigningKey) error {
	created := orNow(k.CreatedAt, time.Now())
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO signing_keys (tenant, kid, private, public, created_at, active_at, retired_at, remove_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		k.Tenant, k.KID, bytesOrNil(k.Private), bytesOrNil(k.Public), s.d.t(created), s.d.t(k.ActiveAt), s.d.t(k.RetiredAt), s.d.t(k.RemoveAt))
	if err != nil {
		return s.fail(err, in(k.Tenant, "signing key", k.KID))
	}
	k.CreatedAt = created
	return nil
}

// SigningKeys returns the tenant's keys, oldest first (by CreatedAt, then
// KID).
func (s *sqlStore) SigningKeys(ctx context.Context, tenant string) ([]*SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT tenant, kid, private, public, created_at, active_at, retired_at, remove_at FROM signing_keys WHERE tenant = ? ORDER BY created_at, kid`), tenant)
	if err != nil {
		return nil, s.fail(err, "tenant "+strconv.Quote(tenant)+": signing keys")
	}
	defer rows.Close()
	var keys []*SigningKey
	for rows.Next() {
		k := new(SigningKey)
		if err := rows.Scan(&k.Tenant, &k.KID, &k.Private, &k.Public, ts(&k.CreatedAt), ts(&k.ActiveAt), ts(&k.RetiredAt), ts(&k.RemoveAt)); err != nil {
			return nil, s.fail(err, "tenant "+strconv.Quote(tenant)+": signing keys")
		}
		keys = append(keys, k)
	}
	return keys, s.fail(rows.Err(), "tenant "+strconv.Quote(tenant)+": signing keys")
}

// UpdateSigningKey writes RetiredAt and RemoveAt; the key material and the
// other times never change.
func (s *sqlStore) UpdateSigningKey(ctx context.Context, k *SigningKey) error {
	res, err := s.w.ExecContext(ctx, s.d.q(`UPDATE signing_keys SET retired_at = ?, remove_at = ? WHERE tenant = ? AND kid = ?`),
		s.d.t(k.RetiredAt), s.d.t(k.RemoveAt), k.Tenant, k.KID)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(k.Tenant, "signing key", k.KID))
}

func (s *sqlStore) DeleteSigningKey(ctx context.Context, tenant, kid string) error {
	res, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM signing_keys WHERE tenant = ? AND kid = ?`), tenant, kid)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(tenant, "signing key", kid))
}

// The login flow's single-use records. Each Take is one DELETE … RETURNING:
// the database hands a row to one statement only, so concurrent takers
// cannot both get it, on either database.

// PutAuthRequest stores r; ExpiresAt is required, CreatedAt defaults to now.
func (s *sqlStore) PutAuthRequest(ctx context.Context, r *AuthRequest) error {
	what := in(r.Tenant, "auth request", r.ID)
	if r.ExpiresAt.IsZero() {
		return fmt.Errorf("store: %s: no expiry", what)
	}
	created := orNow(r.CreatedAt, time.Now())
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO auth_requests (tenant, id, redirect_uri, code_challenge, state, device, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		r.Tenant, r.ID, r.RedirectURI, r.CodeChallenge, r.State, r.Device, s.d.t(created), s.d.t(r.ExpiresAt))
	if err != nil {
		return s.fail(err, what)
	}
	r.CreatedAt = created
	return nil
}

func (s *sqlStore) TakeAuthRequest(ctx context.Context, tenant, id string, now time.Time) (*AuthRequest, error) {
	what := in(tenant, "auth request", id)
	r := new(AuthRequest)
	err := s.w.QueryRowContext(ctx, s.d.q(`DELETE FROM auth_requests WHERE tenant = ? AND id = ? RETURNING tenant, id, redirect_uri, code_challenge, state, device, created_at, expires_at`), tenant, id).
		Scan(&r.Tenant, &r.ID, &r.RedirectURI, &r.CodeChallenge, &r.State, &r.Device, ts(&r.CreatedAt), ts(&r.ExpiresAt))
	if err != nil {
		return nil, s.fail(err, what)
	}
	if !now.Before(r.ExpiresAt) {
		return nil, fmt.Errorf("store: %s: %w", what, ErrExpired)
	}
	return r, nil
}

// PutAuthCode stores c; ExpiresAt is required.
func (s *sqlStore) PutAuthCode(ctx context.Context, c *AuthCode) error {
	what := in(c.Tenant, "auth code", c.Hash)
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("store: %s: no expiry", what)
	}
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO auth_codes (tenant, hash, user_id, session_id, redirect_uri, code_challenge, device, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		c.Tenant, c.Hash, c.UserID, c.SessionID, c.RedirectURI, c.CodeChallenge, c.Device, s.d.t(c.ExpiresAt))
	return s.fail(err, what)
}

func (s *sqlStore) TakeAuthCode(ctx context.Context, tenant, hash string, now time.Time) (*AuthCode, error) {
	what := in(tenant, "auth code", hash)
	c := new(AuthCode)
	err := s.w.QueryRowContext(ctx, s.d.q(`DELETE FROM auth_codes WHERE tenant = ? AND hash = ? RETURNING tenant, hash, user_id, session_id, redirect_uri, code_challenge, device, expires_at`), tenant, hash).
		Scan(&c.Tenant, &c.Hash, &c.UserID, &c.SessionID, &c.RedirectURI, &c.CodeChallenge, &c.Device, ts(&c.ExpiresAt))
	if err != nil {
		return nil, s.fail(err, what)
	}
	if !now.Before(c.ExpiresAt) {
		return nil, fmt.Errorf("store: %s: %w", what, ErrExpired)
	}
	return c, nil
}

// SeeAssertion records the assertion ID, or takes over the row of one
// expired at now, in one statement.
func (s *sqlStore) SeeAssertion(ctx context.Context, tenant, id string, expires, now time.Time) error {
	what := in(tenant, "assertion", id)
	if expires.IsZero() {
		return fmt.Errorf("store: %s: no expiry", what)
	}
	res, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO saml_assertions (tenant, id, expires_at) VALUES (?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET expires_at = excluded.expires_at WHERE saml_assertions.expires_at <= ?`),
		tenant, id, s.d.t(expires), s.d.t(now))
	if err != nil {
		return s.fail(err, what)
	}
	if affected(res) == 0 {
		return fmt.Errorf("store: %s: %w", what, ErrReplay)
	}
	return nil
}
