package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// What agents fetch: the tenants' distribution keys, enrolment secrets,
// enrolled devices and the versions of the artifacts agents download.
// None of it is on the revocation feed: gateways do not use it, and the
// distribution endpoints read the store on every request.

// Distribution keys.

// PutDistributionKey stores the tenant's key; ErrConflict when it has one,
// so that two nodes creating it at once keep the first. CreatedAt defaults
// to now.
func (s *sqlStore) PutDistributionKey(ctx context.Context, k *DistributionKey) error {
	created := orNow(k.CreatedAt, time.Now())
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO distribution_keys (tenant, private, public, created_at) VALUES (?, ?, ?, ?)`),
		k.Tenant, k.Private, k.Public, s.d.t(created))
	if err != nil {
		return s.fail(err, "tenant "+strconv.Quote(k.Tenant)+": distribution key")
	}
	k.CreatedAt = created
	return nil
}

func (s *sqlStore) DistributionKey(ctx context.Context, tenant string) (*DistributionKey, error) {
	k := &DistributionKey{Tenant: tenant}
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT private, public, created_at FROM distribution_keys WHERE tenant = ?`), tenant).
		Scan(&k.Private, &k.Public, ts(&k.CreatedAt))
	if err != nil {
		return nil, s.fail(err, "tenant "+strconv.Quote(tenant)+": distribution key")
	}
	return k, nil
}

// Enrolment secrets.

// AddEnrollmentSecret stores a secret by name; ErrConflict when the name or
// the hash is taken in the tenant. CreatedAt defaults to now.
func (s *sqlStore) AddEnrollmentSecret(ctx context.Context, e *EnrollmentSecret) error {
	created := orNow(e.CreatedAt, time.Now())
	_, err := s.w.ExecContext(ctx, s.d.q(`INSERT INTO enrollment_secrets (tenant, name, hash, created_at) VALUES (?, ?, ?, ?)`),
		e.Tenant, e.Name, e.Hash, s.d.t(created))
	if err != nil {
		return s.fail(err, in(e.Tenant, "enrolment secret", e.Name))
	}
	e.CreatedAt = created
	return nil
}

// EnrollmentSecrets returns the tenant's secrets (hashes included), by name.
func (s *sqlStore) EnrollmentSecrets(ctx context.Context, tenant string) ([]*EnrollmentSecret, error) {
	what := "tenant " + strconv.Quote(tenant) + ": enrolment secrets"
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT name, hash, created_at FROM enrollment_secrets WHERE tenant = ? ORDER BY name`), tenant)
	if err != nil {
		return nil, s.fail(err, what)
	}
	defer rows.Close()
	var out []*EnrollmentSecret
	for rows.Next() {
		e := &EnrollmentSecret{Tenant: tenant}
		if err := rows.Scan(&e.Name, &e.Hash, ts(&e.CreatedAt)); err != nil {
			return nil, s.fail(err, what)
		}
		out = append(out, e)
	}
	return out, s.fail(rows.Err(), what)
}

// DeleteEnrollmentSecret deletes a secret; ErrNotFound when there is none.
// Devices it enrolled stay enrolled.
func (s *sqlStore) DeleteEnrollmentSecret(ctx context.Context, tenant, name string) error {
	res, err := s.w.ExecContext(ctx, s.d.q(`DELETE FROM enrollment_secrets WHERE tenant = ? AND name = ?`), tenant, name)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(tenant, "enrolment secret", name))
}

// Devices.

const deviceColumns = `tenant, id, public_key, hostname, os, secret, created_at, revoked_at`

func scanDevice(row interface{ Scan(...any) error }) (*Device, error) {
	d := new(Device)
	err := row.Scan(&d.Tenant, &d.ID, &d.PublicKey, &d.Hostname, &d.OS, &d.Secret, ts(&d.CreatedAt), ts(&d.RevokedAt))
	return d, err
}

// EnrollDevice reads the secret and inserts the device in one transaction.
// A secret deleted concurrently is ordered after the enrolment, as if the
// deletion had come a moment later: deleting a secret stops enrolments
// that start after it, and never revokes devices. CreatedAt defaults to
// now.
func (s *sqlStore) EnrollDevice(ctx context.Context, d *Device, secretHash string) error {
	created := orNow(d.CreatedAt, time.Now())
	var name string
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT name FROM enrollment_secrets WHERE tenant = ? AND hash = ?`), d.Tenant, secretHash).Scan(&name); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("store: tenant %s: no such enrolment secret: %w", strconv.Quote(d.Tenant), ErrNotFound)
			}
			return err
		}
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`),
			d.Tenant, d.ID, d.PublicKey, d.Hostname, d.OS, name, s.d.t(created))
		return err
	})
	if err != nil {
		return s.fail(err, in(d.Tenant, "device", d.ID))
	}
	d.Secret, d.CreatedAt, d.RevokedAt = name, created, time.Time{}
	return nil
}

func (s *sqlStore) Device(ctx context.Context, tenant, id string) (*Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+deviceColumns+` FROM devices WHERE tenant = ? AND id = ?`), tenant, id))
	if err != nil {
		return nil, s.fail(err, in(tenant, "device", id))
	}
	return d, nil
}

// Devices returns the tenant's devices, revoked ones included, oldest
// first (by CreatedAt, then ID).
func (s *sqlStore) Devices(ctx context.Context, tenant string) ([]*Device, error) {
	what := "tenant " + strconv.Quote(tenant) + ": devices"
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+deviceColumns+` FROM devices WHERE tenant = ? ORDER BY created_at, id`), tenant)
	if err != nil {
		return nil, s.fail(err, what)
	}
	defer rows.Close()
	var out []*Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.fail(err, what)
		}
		out = append(out, d)
	}
	return out, s.fail(rows.Err(), what)
}

// RevokeDevice sets RevokedAt to now (the current time when zero) unless
// it is set already.
func (s *sqlStore) RevokeDevice(ctx context.Context, tenant, id string, now time.Time) error {
	now = orNow(now, time.Now())
	res, err := s.w.ExecContext(ctx, s.d.q(`UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant = ? AND id = ?`), s.d.t(now), tenant, id)
	if err == nil && affected(res) == 0 {
		err = sql.ErrNoRows
	}
	return s.fail(err, in(tenant, "device", id))
}

// Artifacts.

const artifactColumns = `tenant, kind, version, payload, author, created_at`

func scanArtifact(row interface{ Scan(...any) error }) (*Artifact, error) {
	a := new(Artifact)
	err := row.Scan(&a.Tenant, &a.Kind, &a.Version, &a.Payload, &a.Author, ts(&a.CreatedAt))
	return a, err
}

// PutArtifact stores a as the next version of its tenant and kind;
// CreatedAt defaults to now. As PutPolicy: the version check reads the
// current version and the insert is conditional on the key being free, so
// that of two writers of one version on PostgreSQL the second inserts
// nothing and gets ErrStale; versions have no gaps.
func (s *sqlStore) PutArtifact(ctx context.Context, a *Artifact) error {
	what := in(a.Tenant, a.Kind+" version", strconv.FormatInt(a.Version, 10))
	created := orNow(a.CreatedAt, time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		var current int64
		if err := tx.QueryRowContext(ctx, s.d.q(`SELECT COALESCE(MAX(version), 0) FROM agent_artifacts WHERE tenant = ? AND kind = ?`), a.Tenant, a.Kind).Scan(&current); err != nil {
			return err
		}
		if a.Version != current+1 {
			return fmt.Errorf("store: %s: the current version is %d, so the next is %d: %w", what, current, current+1, ErrStale)
		}
		res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO agent_artifacts (`+artifactColumns+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, kind, version) DO NOTHING`),
			a.Tenant, a.Kind, a.Version, bytesOrNil(a.Payload), a.Author, s.d.t(created))
		if err != nil {
			return err
		}
		if affected(res) == 0 {
			return fmt.Errorf("store: %s: another writer stored this version first: %w", what, ErrStale)
		}
		return nil
	})
	if err != nil {
		return s.fail(err, what)
	}
	a.CreatedAt = created
	return nil
}

// Artifact returns the current version of the tenant's artifact of kind;
// ErrNotFound if there is none.
func (s *sqlStore) Artifact(ctx context.Context, tenant, kind string) (*Artifact, error) {
	a, err := scanArtifact(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+artifactColumns+` FROM agent_artifacts WHERE tenant = ? AND kind = ? ORDER BY version DESC LIMIT 1`), tenant, kind))
	if err != nil {
		return nil, s.fail(err, "tenant "+strconv.Quote(tenant)+": "+kind)
	}
	return a, nil
}

// ArtifactHistory returns up to limit versions, newest first; all of them
// when limit is not positive, none (and no error) when there are none.
func (s *sqlStore) ArtifactHistory(ctx context.Context, tenant, kind string, limit int) ([]*Artifact, error) {
	what := "tenant " + strconv.Quote(tenant) + ": " + kind + " history"
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+artifactColumns+` FROM agent_artifacts WHERE tenant = ? AND kind = ? ORDER BY version DESC LIMIT ?`), tenant, kind, feedLimit(limit))
	if err != nil {
		return nil, s.fail(err, what)
	}
	defer rows.Close()
	var out []*Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, s.fail(err, what)
		}
		out = append(out, a)
	}
	return out, s.fail(rows.Err(), what)
}
