package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// CreateTenant stores t. CreatedAt and UpdatedAt default to now.
func (s *sqlStore) CreateTenant(ctx context.Context, t *Tenant) error {
	created := orNow(t.CreatedAt, time.Now())
	updated := orNow(t.UpdatedAt, created)
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO tenants (id, name, settings, idp, sp, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)`),
		t.ID, t.Name, bytesOrNil(t.Settings), bytesOrNil(t.IdP), bytesOrNil(t.SP), s.d.t(created), s.d.t(updated))
	if err != nil {
		return s.fail(err, "tenant "+strconv.Quote(t.ID))
	}
	t.CreatedAt, t.UpdatedAt, t.Version = created, updated, 1
	return nil
}

const tenantColumns = `id, name, settings, idp, sp, created_at, updated_at, version`

func scanTenant(row interface{ Scan(...any) error }) (*Tenant, error) {
	t := new(Tenant)
	err := row.Scan(&t.ID, &t.Name, (*[]byte)(&t.Settings), (*[]byte)(&t.IdP), (*[]byte)(&t.SP), ts(&t.CreatedAt), ts(&t.UpdatedAt), &t.Version)
	return t, err
}

func (s *sqlStore) Tenant(ctx context.Context, id string) (*Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`), id))
	if err != nil {
		return nil, s.fail(err, "tenant "+strconv.Quote(id))
	}
	return t, nil
}

// Tenants returns all tenants ordered by ID.
func (s *sqlStore) Tenants(ctx context.Context) ([]*Tenant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, s.fail(err, "tenants")
	}
	defer rows.Close()
	var out []*Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, s.fail(err, "tenants")
		}
		out = append(out, t)
	}
	return out, s.fail(rows.Err(), "tenants")
}

// UpdateTenant replaces the name, settings, IdP and SP; UpdatedAt is the
// caller's (now when zero).
func (s *sqlStore) UpdateTenant(ctx context.Context, t *Tenant) error {
	what := "tenant " + strconv.Quote(t.ID)
	now := orNow(t.UpdatedAt, time.Now())
	res, err := s.w.ExecContext(ctx, s.d.q(`UPDATE tenants SET name = ?, settings = ?, idp = ?, sp = ?, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?`),
		t.Name, bytesOrNil(t.Settings), bytesOrNil(t.IdP), bytesOrNil(t.SP), s.d.t(now), t.ID, t.Version)
	if err != nil {
		return s.fail(err, what)
	}
	if affected(res) == 0 {
		return s.whyNotUpdated(ctx, s.w, `SELECT version FROM tenants WHERE id = ?`, what, t.Version, t.ID)
	}
	t.UpdatedAt = now
	t.Version++
	return nil
}

// whyNotUpdated explains an update by version that changed no row: the
// record is gone, or its version is no longer the one the caller read.
func (s *sqlStore) whyNotUpdated(ctx context.Context, q execer, query, what string, had int64, args ...any) error {
	var current int64
	err := q.QueryRowContext(ctx, s.d.q(query), args...).Scan(&current)
	if err == sql.ErrNoRows {
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return s.fail(err, what)
	}
	return fmt.Errorf("store: %s: version %d, now %d: %w", what, had, current, ErrStale)
}
