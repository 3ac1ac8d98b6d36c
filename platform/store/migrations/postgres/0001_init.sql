-- The first schema of the platform store, for PostgreSQL.
--
-- Times are TIMESTAMPTZ (microseconds), NULL for the zero time.Time. Opaque
-- values (JSON documents, encrypted keys) are BYTEA so that they round-trip
-- byte for byte, unvalidated and unreordered (jsonb would normalise them).
-- The *_key columns hold case-folded copies of names that SCIM compares
-- case-insensitively; uniqueness is enforced on them. The folding is done by
-- the store in Go, identically for both databases, not by a collation. Text
-- columns use the "C" collation: byte order, as in SQLite, whatever the
-- server's locale, so that both stores sort alike and indexes stay cheap.

CREATE TABLE tenants (
	id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	name       TEXT COLLATE "C" NOT NULL,
	settings   BYTEA,
	idp        BYTEA,
	sp         BYTEA,
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	version    BIGINT NOT NULL
);

CREATE TABLE directory_users (
	tenant           TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id               TEXT COLLATE "C" NOT NULL,
	user_name        TEXT COLLATE "C" NOT NULL,
	user_name_key    TEXT COLLATE "C" NOT NULL,
	external_id      TEXT COLLATE "C" NOT NULL,
	display_name     TEXT COLLATE "C" NOT NULL,
	display_name_key TEXT COLLATE "C" NOT NULL,
	active           BOOLEAN NOT NULL,
	attributes       BYTEA,
	created_at       TIMESTAMPTZ NOT NULL,
	updated_at       TIMESTAMPTZ NOT NULL,
	version          BIGINT NOT NULL,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, user_name_key)
);
CREATE INDEX directory_users_order ON directory_users (tenant, created_at, id);
CREATE INDEX directory_users_external_id ON directory_users (tenant, external_id);
CREATE INDEX directory_users_display_name ON directory_users (tenant, display_name_key);

CREATE TABLE directory_groups (
	tenant           TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id               TEXT COLLATE "C" NOT NULL,
	display_name     TEXT COLLATE "C" NOT NULL,
	display_name_key TEXT COLLATE "C" NOT NULL,
	external_id      TEXT COLLATE "C" NOT NULL,
	attributes       BYTEA,
	created_at       TIMESTAMPTZ NOT NULL,
	updated_at       TIMESTAMPTZ NOT NULL,
	version          BIGINT NOT NULL,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, display_name_key)
);
CREATE INDEX directory_groups_order ON directory_groups (tenant, created_at, id);
CREATE INDEX directory_groups_external_id ON directory_groups (tenant, external_id);

-- Deleting a user or a group deletes its memberships.
CREATE TABLE directory_members (
	tenant   TEXT COLLATE "C" NOT NULL,
	group_id TEXT COLLATE "C" NOT NULL,
	user_id  TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant, group_id, user_id),
	FOREIGN KEY (tenant, group_id) REFERENCES directory_groups (tenant, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant, user_id) REFERENCES directory_users (tenant, id) ON DELETE CASCADE
);
CREATE INDEX directory_members_user ON directory_members (tenant, user_id);

CREATE TABLE signing_keys (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	kid        TEXT COLLATE "C" NOT NULL,
	private    BYTEA,
	public     BYTEA,
	created_at TIMESTAMPTZ NOT NULL,
	active_at  TIMESTAMPTZ,
	retired_at TIMESTAMPTZ,
	remove_at  TIMESTAMPTZ,
	PRIMARY KEY (tenant, kid)
);

CREATE TABLE auth_requests (
	tenant         TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id             TEXT COLLATE "C" NOT NULL,
	redirect_uri   TEXT COLLATE "C" NOT NULL,
	code_challenge TEXT COLLATE "C" NOT NULL,
	state          TEXT COLLATE "C" NOT NULL,
	device         TEXT COLLATE "C" NOT NULL,
	created_at     TIMESTAMPTZ NOT NULL,
	expires_at     TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX auth_requests_expires ON auth_requests (expires_at);

CREATE TABLE auth_codes (
	tenant         TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	hash           TEXT COLLATE "C" NOT NULL,
	user_id        TEXT COLLATE "C" NOT NULL,
	session_id     TEXT COLLATE "C" NOT NULL,
	redirect_uri   TEXT COLLATE "C" NOT NULL,
	code_challenge TEXT COLLATE "C" NOT NULL,
	device         TEXT COLLATE "C" NOT NULL,
	expires_at     TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, hash)
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE saml_assertions (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id         TEXT COLLATE "C" NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX saml_assertions_expires ON saml_assertions (expires_at);

-- Sessions do not reference directory_users: deleting a user must not make
-- its sessions disappear without a revocation event.
CREATE TABLE sessions (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id         TEXT COLLATE "C" NOT NULL,
	user_id    TEXT COLLATE "C" NOT NULL,
	device     TEXT COLLATE "C" NOT NULL,
	auth_time  TIMESTAMPTZ,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ,
	reason     TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX sessions_user ON sessions (tenant, user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Spent tokens are kept until their session is deleted: they are what
-- reuse detection recognises.
CREATE TABLE refresh_tokens (
	tenant     TEXT COLLATE "C" NOT NULL,
	hash       TEXT COLLATE "C" NOT NULL,
	session_id TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	spent_at   TIMESTAMPTZ,
	PRIMARY KEY (tenant, hash),
	FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant, session_id);

-- The revocation feed is not tied to tenants: it is an append-only log that
-- gateways follow by seq. The identity sequence keeps the default CACHE 1:
-- appends are serialised by an advisory lock until commit, so that seq order
-- is commit order and a reader never skips a late-committing seq; a cache per
-- session would hand out seqs out of order.
CREATE TABLE revocations (
	seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant  TEXT COLLATE "C" NOT NULL,
	kind    TEXT COLLATE "C" NOT NULL,
	subject TEXT COLLATE "C" NOT NULL,
	reason  TEXT COLLATE "C" NOT NULL,
	at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE scim_tokens (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	name       TEXT COLLATE "C" NOT NULL,
	hash       TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, name),
	UNIQUE (tenant, hash)
);

-- tenant is '' for platform-wide events, hence no reference to tenants.
CREATE TABLE audit_log (
	seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at     TIMESTAMPTZ NOT NULL,
	tenant TEXT COLLATE "C" NOT NULL,
	actor  TEXT COLLATE "C" NOT NULL,
	action TEXT COLLATE "C" NOT NULL,
	target TEXT COLLATE "C" NOT NULL,
	detail BYTEA
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
