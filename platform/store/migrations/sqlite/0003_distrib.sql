-- What agents fetch, for SQLite: each tenant's distribution key, its
-- enrolment secrets and enrolled devices, and the versions of the
-- artifacts agents download (configuration, PAC, CA bundle, release
-- manifest). Conventions as in 0001 (microsecond INTEGER times, NULL for the
-- zero time, opaque values as BLOBs, STRICT tables).

-- One key per tenant, for ever: installers pin its public half.
CREATE TABLE distribution_keys (
	tenant     TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id),
	private    BLOB NOT NULL,
	public     BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE enrollment_secrets (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, name),
	UNIQUE (tenant, hash)
) STRICT;

-- secret is the name of the enrolment secret the device used, kept after
-- the secret is deleted: deleting a secret stops new enrolments, it does
-- not revoke the devices (RevokeDevice does). A public key is enrolled once
-- per tenant, so one key cannot stand for two devices.
CREATE TABLE devices (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	id         TEXT NOT NULL,
	public_key BLOB NOT NULL,
	hostname   TEXT NOT NULL,
	os         TEXT NOT NULL,
	secret     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, public_key)
) STRICT;
CREATE INDEX devices_order ON devices (tenant, created_at, id);

-- Every version is kept, and never changed: agents refuse to go back to a
-- lower version, so the history is also what an operator restores from.
-- The primary key is what makes two concurrent writers of one version
-- collide.
CREATE TABLE agent_artifacts (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	kind       TEXT NOT NULL,
	version    INTEGER NOT NULL CHECK (version > 0),
	payload    BLOB,
	author     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, kind, version)
) STRICT;
