-- What the gateways run on, for PostgreSQL: the tenants' TLS-inspection
-- CAs, their filtering policies, the platform's URL-category list, and the
-- access log. Conventions as in 0001 (TIMESTAMPTZ, NULL for the zero time,
-- opaque values as BYTEA, "C" collation).

CREATE TABLE inspection_cas (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	id         TEXT COLLATE "C" NOT NULL,
	cert_pem   TEXT COLLATE "C" NOT NULL,
	private    BYTEA,
	created_at TIMESTAMPTZ NOT NULL,
	active_at  TIMESTAMPTZ,
	retired_at TIMESTAMPTZ,
	remove_at  TIMESTAMPTZ,
	PRIMARY KEY (tenant, id)
);

-- Every version is kept, and never changed: a rollback is a new version
-- with an old document. The primary key is also what makes two concurrent
-- writers of one version collide.
CREATE TABLE policies (
	tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	version    BIGINT NOT NULL CHECK (version > 0),
	doc        BYTEA,
	author     TEXT COLLATE "C" NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant, version)
);

-- One row: the list is the platform's, the same for every tenant.
CREATE TABLE url_categories (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	version    TEXT COLLATE "C" NOT NULL,
	data       BYTEA,
	updated_at TIMESTAMPTZ NOT NULL
);

-- The access log is append-only and read by tenant, in seq order, with a
-- cursor (after seq N). Appends are serialised by an advisory lock until
-- commit, as for the revocation feed, so that seq order is commit order and
-- a reader following the cursor never skips a late-committing seq; hence the
-- sequence's default CACHE 1. No reference to tenants: a batch from a gateway
-- must not fail, and lose its neighbours, for one record's sake. duration_ns
-- is a time.Duration, exact.
--
-- Indexes: (tenant, seq) serves reading a tenant's log by cursor; the
-- (…, at) ones serve time ranges, the whole tenant's, a user's or a host's,
-- so that such a query reads the rows of its range and not the tenant's whole
-- history (the matches are then sorted by seq).
CREATE TABLE access_log (
	seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant      TEXT COLLATE "C" NOT NULL,
	at          TIMESTAMPTZ NOT NULL,
	user_id     TEXT COLLATE "C" NOT NULL,
	device      TEXT COLLATE "C" NOT NULL,
	session_id  TEXT COLLATE "C" NOT NULL,
	client      TEXT COLLATE "C" NOT NULL,
	method      TEXT COLLATE "C" NOT NULL,
	host        TEXT COLLATE "C" NOT NULL,
	path        TEXT COLLATE "C" NOT NULL,
	status      INTEGER NOT NULL,
	bytes_in    BIGINT NOT NULL,
	bytes_out   BIGINT NOT NULL,
	duration_ns BIGINT NOT NULL,
	decision    TEXT COLLATE "C" NOT NULL,
	rule        TEXT COLLATE "C" NOT NULL,
	ref         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX access_log_tenant ON access_log (tenant, seq);
CREATE INDEX access_log_at ON access_log (tenant, at);
CREATE INDEX access_log_user ON access_log (tenant, user_id, at);
CREATE INDEX access_log_host ON access_log (tenant, host, at);
