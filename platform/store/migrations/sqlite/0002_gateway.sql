-- What the gateways run on, for SQLite: the tenants' TLS-inspection CAs,
-- their filtering policies, the platform's URL-category list, and the access
-- log. Conventions as in 0001 (microsecond INTEGER times, NULL for the zero
-- time, opaque values as BLOBs, STRICT tables).

CREATE TABLE inspection_cas (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	id         TEXT NOT NULL,
	cert_pem   TEXT NOT NULL,
	private    BLOB,
	created_at INTEGER NOT NULL,
	active_at  INTEGER,
	retired_at INTEGER,
	remove_at  INTEGER,
	PRIMARY KEY (tenant, id)
) STRICT;

-- Every version is kept, and never changed: a rollback is a new version
-- with an old document. The primary key is also what makes two concurrent
-- writers of one version collide. Not WITHOUT ROWID: documents can be larger
-- than such a table's rows should be.
CREATE TABLE policies (
	tenant     TEXT NOT NULL REFERENCES tenants (id),
	version    INTEGER NOT NULL CHECK (version > 0),
	doc        BLOB,
	author     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, version)
) STRICT;

-- One row: the list is the platform's, the same for every tenant.
CREATE TABLE url_categories (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	version    TEXT NOT NULL,
	data       BLOB,
	updated_at INTEGER NOT NULL
) STRICT;

-- The access log is append-only and read by tenant, in seq order, with a
-- cursor (after seq N). AUTOINCREMENT: a seq is never handed out twice, even
-- once retention has deleted every row, so a cursor stays valid. No reference
-- to tenants: a batch from a gateway must not fail, and lose its neighbours,
-- for one record's sake. duration_ns is a time.Duration, exact.
--
-- Indexes: (tenant, seq) serves reading a tenant's log by cursor; the
-- (…, at) ones serve time ranges, the whole tenant's, a user's or a host's,
-- so that such a query reads the rows of its range and not the tenant's whole
-- history (the matches are then sorted by seq).
CREATE TABLE access_log (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant      TEXT NOT NULL,
	at          INTEGER NOT NULL,
	user_id     TEXT NOT NULL,
	device      TEXT NOT NULL,
	session_id  TEXT NOT NULL,
	client      TEXT NOT NULL,
	method      TEXT NOT NULL,
	host        TEXT NOT NULL,
	path        TEXT NOT NULL,
	status      INTEGER NOT NULL,
	bytes_in    INTEGER NOT NULL,
	bytes_out   INTEGER NOT NULL,
	duration_ns INTEGER NOT NULL,
	decision    TEXT NOT NULL,
	rule        TEXT NOT NULL,
	ref         TEXT NOT NULL
) STRICT;
CREATE INDEX access_log_tenant ON access_log (tenant, seq);
CREATE INDEX access_log_at ON access_log (tenant, at);
CREATE INDEX access_log_user ON access_log (tenant, user_id, at);
CREATE INDEX access_log_host ON access_log (tenant, host, at);
