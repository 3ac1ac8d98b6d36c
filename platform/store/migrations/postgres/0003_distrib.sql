-- What agents fetch, for PostgreSQL: each tenant's distribution key, its
-- enrolment secrets and enrolled devices, and the versions of the
-- artifacts agents download (configuration, PAC, CA bundle, release
-- manifest). Conventions as in 0001 (TIMESTAMPTZ, NULL for the zero time,
-- opaque values as BYTEA, "C" collation).

-- One key per tenant, for ever: installers pin its public half.
CREATE TABLE distribution_keys (
	tenant     TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES tenants (id),
	private    BYTEA NOT NULL,
	public     BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE enrollment_secrets (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	name       TEXT COLLATE "C" NOT NULL,
	hash       TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, name),
	UNIQUE (tenant, hash)
);

-- secret is the name of the enrolment secret the device used, kept after
-- the secret is deleted: deleting a secret stops new enrolments, it does
-- not revoke the devices (RevokeDevice does). A public key is enrolled once
-- per tenant, so one key cannot stand for two devices.
CREATE TABLE devices (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id         TEXT COLLATE "C" NOT NULL,
	public_key BYTEA NOT NULL,
	hostname   TEXT COLLATE "C" NOT NULL,
	os         TEXT COLLATE "C" NOT NULL,
	secret     TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, public_key)
);
CREATE INDEX devices_order ON devices (tenant, created_at, id);

-- Every version is kept, and never changed: agents refuse to go back to a
-- lower version, so the history is also what an operator restores from.
-- The primary key is what makes two concurrent writers of one version
-- collide.
CREATE TABLE agent_artifacts (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	kind       TEXT COLLATE "C" NOT NULL,
	version    BIGINT NOT NULL CHECK (version > 0),
	payload    BYTEA,
	author     TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, kind, version)
);
