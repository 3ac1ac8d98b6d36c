package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// What gateways apply: the tenants' inspection CAs, their policies and the
// URL-category list. Every change appends its feed event in the transaction
// that makes it, so that the event is on the feed exactly when the change is
// visible: a gateway that hears of it reads the new state, and a change that
// rolls back tells no one.

// Inspection CAs.

const caColumns = `tenant, id, cert_pem, private, created_at, active_at, retired_at, remove_at`

// caChanged appends the CAChanged event of a change to the tenant's CA set.
// The reason is what happened to the CA, for the gateways' logs.
func (s *sqlStore) caChanged(ctx context.Context, tx *sql.Tx, tenant, id, reason string) error {
	return s.appendRevocation(ctx, tx, &Revocation{Tenant: tenant, Kind: CAChanged, Subject: id, Reason: reason})
}

// AddCA stores ca and appends a CAChanged event. CreatedAt defaults to now.
func (s *sqlStore) AddCA(ctx context.Context, ca *CA) error {
	created := orNow(ca.CreatedAt, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO inspection_cas (`+caColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			ca.Tenant, ca.ID, ca.CertPEM, bytesOrNil(ca.Key), s.d.t(created), s.d.t(ca.ActiveAt), s.d.t(ca.RetiredAt), s.d.t(ca.RemoveAt)); err != nil {
			return err
		}
		return s.caChanged(ctx, tx, ca.Tenant, ca.ID, "added")
	})
	if err != nil {
		return s.fail(err, in(ca.Tenant, "CA", ca.ID))
	}
	ca.CreatedAt = created
	return nil
}

// CAs returns the tenant's CAs, oldest first (by CreatedAt, then ID).
func (s *sqlStore) CAs(ctx context.Context, tenant string) ([]*CA, error) {
	what := "tenant " + strconv.Quote(tenant) + ": CAs"
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+caColumns+` FROM inspection_cas WHERE tenant = ? ORDER BY created_at, id`), tenant)
	if err != nil {
		return nil, s.fail(err, what)
	}
	defer rows.Close()
	var out []*CA
	for rows.Next() {
		ca := new(CA)
		if err := rows.Scan(&ca.Tenant, &ca.ID, &ca.CertPEM, &ca.Key, ts(&ca.CreatedAt), ts(&ca.ActiveAt), ts(&ca.RetiredAt), ts(&ca.RemoveAt)); err != nil {
			return nil, s.fail(err, what)
		}
		out = append(out, ca)
	}
	return out, s.fail(rows.Err(), what)
}

// UpdateCA writes RetiredAt and RemoveAt, and appends a CAChanged event;
// the certificate, the key and the other times never change.
func (s *sqlStore) UpdateCA(ctx context.Context, ca *CA) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE inspection_cas SET retired_at = ?, remove_at = ? WHERE tenant = ? AND id = ?`),
			s.d.t(ca.RetiredAt), s.d.t(ca.RemoveAt), ca.Tenant, ca.ID)
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return sql.ErrNoRows
		}
		return s.caChanged(ctx, tx, ca.Tenant, ca.ID, "updated")
	})
	return s.fail(err, in(ca.Tenant, "CA", ca.ID))
}

// DeleteCA deletes the CA and appends a CAChanged event: the CA leaves the
// bundle gateways publish, which they must hear of as of any other change to
// the set.
func (s *sqlStore) DeleteCA(ctx context.Context, tenant, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM inspection_cas WHERE tenant = ? AND id = ?`), tenant, id)
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return sql.ErrNoRows
		}
		return s.caChanged(ctx, tx, tenant, id, "deleted")
	})
	return s.fail(err, in(tenant, "CA", id))
}

// Policies.

const policyColumns = `tenant, version, doc, author, created_at`

func scanPolicy(row interface{ Scan(...any) error }) (*Policy, error) {
	p := new(Policy)
	err := row.Scan(&p.Tenant, &p.Version, (*[]byte)(&p.Doc), &p.Author, ts(&p.CreatedAt))
	return p, err
}

// PutPolicy stores p as the tenant's next version and appends a
// PolicyChanged event; CreatedAt defaults to now, and is the event's time.
//
// The version check reads the current version and the insert is
// conditional on the (tenant, version) key being free: on SQLite writes are
// serial, so the read is the truth; on PostgreSQL two writers of the same
// version may both read the previous one, and the second's insert then
// waits for the first to commit and inserts nothing. Versions have no gaps:
// a writer inserts version n only once it has seen n-1 committed.
func (s *sqlStore) PutPolicy(ctx context.Context, p *Policy) error {
	what := in(p.Tenant, "policy version", strconv.FormatInt(p.Version, 10))
	created := orNow(p.CreatedAt, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		var current int64
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COALESCE(MAX(version), 0) FROM policies WHERE tenant = ?`), p.Tenant).Scan(&current); err != nil {
			return err
		}
		if p.Version != current+1 {
			return fmt.Errorf("store: %s: the current version is %d, so the next is %d: read the policy again: %w", what, current, current+1, ErrStale)
		}
		res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO policies (`+policyColumns+`) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, version) DO NOTHING`),
			p.Tenant, p.Version, bytesOrNil(p.Doc), p.Author, s.d.t(created))
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return fmt.Errorf("store: %s: another writer stored this version first: read the policy again: %w", what, ErrStale)
		}
		return s.appendRevocation(ctx, tx, &Revocation{Tenant: p.Tenant, Kind: PolicyChanged, Subject: strconv.FormatInt(p.Version, 10), At: created})
	})
	if err != nil {
		return s.fail(err, what)
	}
	p.CreatedAt = created
	return nil
}

// Policy returns the tenant's current policy; ErrNotFound if it has none.
func (s *sqlStore) Policy(ctx context.Context, tenant string) (*Policy, error) {
	p, err := scanPolicy(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+policyColumns+` FROM policies WHERE tenant = ? ORDER BY version DESC LIMIT 1`), tenant))
	if err != nil {
		return nil, s.fail(err, "tenant "+strconv.Quote(tenant)+": policy")
	}
	return p, nil
}

// PolicyHistory returns up to limit versions of the tenant's policy, newest
// first; all of them when limit is not positive, none (and no error) for a
// tenant without a policy.
func (s *sqlStore) PolicyHistory(ctx context.Context, tenant string, limit int) ([]*Policy, error) {
	what := "tenant " + strconv.Quote(tenant) + ": policy history"
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+policyColumns+` FROM policies WHERE tenant = ? ORDER BY version DESC LIMIT ?`), tenant, feedLimit(limit))
	if err != nil {
		return nil, s.fail(err, what)
	}
	defer rows.Close()
	var out []*Policy
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, s.fail(err, what)
		}
		out = append(out, p)
	}
	return out, s.fail(rows.Err(), what)
}

// URL categories.

// PutCategories replaces the list and appends a CategoriesChanged event
// (Tenant "", Subject the version), at now (the current time when zero).
// It stores what it is given, even the version it has: deciding that an
// update is a no-op is the caller's business.
func (s *sqlStore) PutCategories(ctx context.Context, version string, data []byte, now time.Time) error {
	if version == "" {
		return errors.New("store: URL categories: no version")
	}
	now = orNow(now, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO url_categories (id, version, data, updated_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data, updated_at = excluded.updated_at`),
			version, bytesOrNil(data), s.d.t(now)); err != nil {
			return err
		}
		return s.appendRevocation(ctx, tx, &Revocation{Kind: CategoriesChanged, Subject: version, At: now})
	})
	return s.fail(err, "URL categories "+strconv.Quote(version))
}

// Categories returns the list's version and data; ErrNotFound if none was
// ever put.
func (s *sqlStore) Categories(ctx context.Context) (string, []byte, error) {
	var (
		version string
		data    []byte
	)
	err := s.r.QueryRowContext(ctx, `SELECT version, data FROM url_categories WHERE id = 1`).Scan(&version, &data)
	if err != nil {
		return "", nil, s.fail(err, "URL categories")
	}
	return version, data, nil
}
