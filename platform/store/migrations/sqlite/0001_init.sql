-- The first schema of the platform store, for SQLite.
--
-- Times are INTEGER microseconds since the Unix epoch, UTC (PostgreSQL's
-- precision), NULL for the zero time.Time. Opaque values (JSON documents,
-- encrypted keys) are BLOBs so that they round-trip byte for byte. Tables are
-- STRICT so that a value of the wrong type fails loudly instead of being
-- stored as something else. The *_key columns hold case-folded copies of
-- names that SCIM compares case-insensitively; uniqueness is enforced on them.

CREATE TABLE tenants (
	id         TEXT NOT NULL PRIMARY KEY,
	name       TEXT NOT NULL,
	settings   BLOB,
	idp        BLOB,
	sp         BLOB,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version    INTEGER NOT NULL
) STRICT;

CREATE TABLE directory_users (
	tenant           TEXT NOT NULL REFERENCES tenants (id),
	id               TEXT NOT NULL,
	user_name        TEXT NOT NULL,
	user_name_key    TEXT NOT NULL,
	external_id      TEXT NOT NULL,
	display_name     TEXT NOT NULL,
	display_name_key TEXT NOT NULL,
	active           INTEGER NOT NULL,
	attributes       BLOB,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	version          INTEGER NOT NULL,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, user_name_key)
) STRICT;
CREATE INDEX directory_users_order ON directory_users (tenant, created_at, id);
CREATE INDEX directory_users_external_id ON directory_users (tenant, external_id);
CREATE INDEX directory_users_display_name ON directory_users (tenant, display_name_key);

CREATE TABLE directory_groups (
	tenant           TEXT NOT NULL REFERENCES tenants (id),
	id               TEXT NOT NULL,
	display_name     TEXT NOT NULL,
	display_name_key TEXT NOT NULL,
	external_id      TEXT NOT NULL,
	attributes       BLOB,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	version          INTEGER NOT NULL,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, display_name_key)
) STRICT;
CREATE INDEX directory_groups_order ON directory_groups (tenant, created_at, id);
CREATE INDEX directory_groups_external_id ON directory_groups (tenant, external_id);

-- Deleting a user or a group deletes its memberships.
CREATE TABLE directory_members (
	tenant   TEXT NOT NULL,
	group_id TEXT NOT NULL,
	user_id  TEXT NOT NULL,
	PRIMARY KEY (tenant, group_id, user_id),
	FOREIGN KEY (tenant, group_id) REFERENCES directory_groups (tenant, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant, user_id) REFERENCES directory_users (tenant, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX directory_members_user ON directory_members (tenant, user_id);

CREATE TABLE signing_keys (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	kid        TEXT NOT NULL,
	private    BLOB,
	public     BLOB,
	created_at INTEGER NOT NULL,
	active_at  INTEGER,
	retired_at INTEGER,
	remove_at  INTEGER,
	PRIMARY KEY (tenant, kid)
) STRICT;

CREATE TABLE auth_requests (
	tenant         TEXT NOT NULL REFERENCES tenants (id),
	id             TEXT NOT NULL,
	redirect_uri   TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	state          TEXT NOT NULL,
	device         TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX auth_requests_expires ON auth_requests (expires_at);

CREATE TABLE auth_codes (
	tenant         TEXT NOT NULL REFERENCES tenants (id),
	hash           TEXT NOT NULL,
	user_id        TEXT NOT NULL,
	session_id     TEXT NOT NULL,
	redirect_uri   TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	device         TEXT NOT NULL,
	expires_at     INTEGER NOT NULL,
	PRIMARY KEY (tenant, hash)
) STRICT, WITHOUT ROWID;
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE saml_assertions (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	id         TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX saml_assertions_expires ON saml_assertions (expires_at);

-- Sessions do not reference directory_users: deleting a user must not make
-- its sessions disappear without a revocation event.
CREATE TABLE sessions (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	id         TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	device     TEXT NOT NULL,
	auth_time  INTEGER,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER,
	reason     TEXT NOT NULL,
	PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (tenant, user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Spent tokens are kept until their session is deleted: they are what
-- reuse detection recognises.
CREATE TABLE refresh_tokens (
	tenant     TEXT NOT NULL,
	hash       TEXT NOT NULL,
	session_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	spent_at   INTEGER,
	PRIMARY KEY (tenant, hash),
	FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant, session_id);

-- The revocation feed is not tied to tenants: it is an append-only log that
-- gateways follow by seq. AUTOINCREMENT: a seq is never handed out twice, even
-- after the newest rows are deleted.
CREATE TABLE revocations (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant  TEXT NOT NULL,
	kind    TEXT NOT NULL,
	subject TEXT NOT NULL,
	reason  TEXT NOT NULL,
	at      INTEGER NOT NULL
) STRICT;

CREATE TABLE scim_tokens (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, name),
	UNIQUE (tenant, hash)
) STRICT;

-- tenant is '' for platform-wide events, hence no reference to tenants.
CREATE TABLE audit_log (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,
	tenant TEXT NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	detail BLOB
) STRICT;
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
