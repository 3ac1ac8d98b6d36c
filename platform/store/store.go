// Package store is the platform's persistence: tenants, the SCIM directory,
// signing keys, the login flow's single-use records, login sessions and
// refresh tokens, the revocation feed, SCIM tokens, what gateways apply,
// what agents fetch (distribution keys, enrolled devices, versioned
// artifacts) and the audit log.
//
// Two implementations share one interface and one test suite (storetest):
// SQLite (modernc.org/sqlite, the embedded default, one file) and
// PostgreSQL (pgx), for when one machine is not enough. Both apply versioned
// schema migrations on Open.
//
// The store keeps data; it does not decide. Token hashing, key encryption,
// SCIM semantics and policy live in the packages that use it. Every method
// is scoped by tenant where the data is, and safe for concurrent use.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors callers branch on. Implementations wrap them with detail.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")        // a unique value (tenant id, userName, group displayName) is taken
	ErrStale    = errors.New("store: version changed") // optimistic concurrency: the record changed since it was read
	ErrReplay   = errors.New("store: already seen")    // an assertion ID used before
	ErrReused   = errors.New("store: refresh token reused")
	ErrExpired  = errors.New("store: expired")
	ErrRevoked  = errors.New("store: revoked")
)

// Tenant is one customer organisation.
type Tenant struct {
	ID        string // URL slug: [a-z0-9-], 1 to 63 characters; immutable
	Name      string
	Settings  json.RawMessage // tenant settings, owned by the platform package that reads them
	IdP       json.RawMessage // IdP configuration (metadata XML or URL, fetched copy), owned by auth
	SP        json.RawMessage // SAML SP key and certificate, encrypted by the caller, owned by auth
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   int64 // incremented on every update; UpdateTenant checks it
}

// User is a directory user, as SCIM provisions it.
type User struct {
	Tenant      string
	ID          string // assigned by the platform (UUID); immutable
	UserName    string // unique per tenant, case-insensitively (SCIM: caseExact false)
	ExternalID  string // the provisioning client's id, may be empty
	DisplayName string
	Active      bool
	Attributes  json.RawMessage // the whole SCIM resource as last written (names, emails, extensions…)
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Version     int64 // incremented on every update; UpdateUser checks it (SCIM ETag)
}

// Group is a directory group. Members are user IDs of the same tenant.
type Group struct {
	Tenant      string
	ID          string
	DisplayName string // unique per tenant, case-insensitively
	ExternalID  string
	Members     []string // user IDs, no duplicates, order not significant
	Attributes  json.RawMessage
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Version     int64
}

// ListQuery selects directory entries: an optional equality on one indexed
// attribute, then 1-based pagination in a stable order (creation, then id).
type ListQuery struct {
	Attr  string // "", "userName", "externalId" or "displayName" (users); "", "displayName" or "externalId" (groups)
	Value string // compared case-insensitively for userName and displayName, exactly for externalId
	Start int    // 1-based index of the first result; 0 means 1
	Count int    // maximum number of results; 0 means none (only the total), negative means all
}

// SigningKey is a tenant's token signing key (Ed25519).
type SigningKey struct {
	Tenant    string
	KID       string
	Private   []byte    // encrypted by the caller
	Public    []byte    // raw Ed25519 public key
	CreatedAt time.Time // published in the JWKS from here
	ActiveAt  time.Time // signs from here (after a publication lead)
	RetiredAt time.Time // zero while it may sign; set when a newer key takes over
	RemoveAt  time.Time // zero until retired; unpublished from here (last token it signed has expired)
}

// AuthRequest is a login in progress: the native app's parameters, kept
// while the browser is at the IdP. ID is the SAML AuthnRequest ID; the
// RelayState names it.
type AuthRequest struct {
	Tenant        string
	ID            string
	RedirectURI   string
	CodeChallenge string // S256
	State         string
	Device        string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// AuthCode is a single-use authorization code, stored by hash.
type AuthCode struct {
	Tenant        string
	Hash          string // hex SHA-256 of the code
	UserID        string
	SessionID     string // the login session the code starts
	RedirectURI   string
	CodeChallenge string
	Device        string
	ExpiresAt     time.Time
}

// Session is one login: it ends at ExpiresAt (the absolute lifetime from
// the IdP login) or when revoked.
type Session struct {
	Tenant    string
	ID        string // the tokens' sid claim
	UserID    string
	Device    string
	AuthTime  time.Time // when the IdP authenticated the user
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while active
	Reason    string    // why it was revoked
}

// RefreshToken is one refresh token of a session, stored by hash. Each is
// spent by one use, which issues its successor.
type RefreshToken struct {
	Tenant    string
	Hash      string // hex SHA-256 of the token
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time // the session's absolute end
	SpentAt   time.Time // zero until used
}

// Revocation kinds on the feed. Besides revocations, the feed tells
// gateway nodes of every change they must apply within seconds.
const (
	RevokeSession     = "session"    // Subject is a session ID
	RevokeUser        = "user"       // Subject is a user ID: all its sessions
	RotateKeys        = "keys"       // Subject is a key ID: the tenant's key set changed
	PolicyChanged     = "policy"     // Subject is the new policy version
	CAChanged         = "ca"         // Subject is a CA ID: the tenant's CA set changed
	CategoriesChanged = "categories" // Subject is the new list version; Tenant is ""
)

// CA is a tenant's certificate authority for TLS inspection (ECDSA P-256).
type CA struct {
	Tenant    string
	ID        string
	CertPEM   string
	Key       []byte    // PKCS #8, sealed by the caller
	CreatedAt time.Time // published in the CA bundle from here
	ActiveAt  time.Time // signs leaf certificates from here
	RetiredAt time.Time // zero while it may sign
	RemoveAt  time.Time // zero until retired; unpublished from here
}

// Policy is a version of a tenant's filtering policy. The document is
// package policy's; the store keeps every version.
type Policy struct {
	Tenant    string
	Version   int64 // 1, 2, …
	Doc       json.RawMessage
	Author    string
	CreatedAt time.Time
}

// AccessRecord is one line of the gateway's access log: one request, or
// one tunnel that was not inspected.
type AccessRecord struct {
	Seq       int64 // set by AppendAccess
	At        time.Time
	Tenant    string
	UserID    string
	Device    string
	SessionID string
	Client    string // client address as the gateway saw it
	Method    string
	Host      string
	Path      string // inspected traffic only
	Status    int
	BytesIn   int64 // from the client
	BytesOut  int64 // to the client
	Duration  time.Duration
	Decision  string // "allow", "block", "tunnel", "auth", "error"
	Rule      string // the rule (or category, or default) that decided
	Ref       string // the reference shown on the block page
}

// AccessQuery selects access-log records of a tenant, oldest first.
type AccessQuery struct {
	Tenant   string
	UserID   string    // "" for all
	Host     string    // "" for all; exact match
	From, To time.Time // zero for unbounded; From inclusive, To exclusive
	After    int64     // Seq cursor
	Limit    int       // at most this many; 0 or less means 1000
}

// Revocation is one event of the revocation feed. Seq orders the feed
// across all tenants and is the cursor a gateway resumes from.
type Revocation struct {
	Seq     int64
	Tenant  string
	Kind    string
	Subject string
	Reason  string
	At      time.Time
}

// AuditEvent is one line of the audit log.
type AuditEvent struct {
	Seq    int64
	At     time.Time
	Tenant string // "" for platform-wide events
	Actor  string // "admin", "scim:<token name>", "user:<id>", "system"
	Action string // for example "tenant.create", "login.success", "token.reuse"
	Target string
	Detail json.RawMessage
}

// What agents fetch from the platform (package distrib), per tenant.
const (
	ArtifactConfig  = "config"  // the agent configuration (JSON)
	ArtifactPAC     = "pac"     // the tenant's proxy.pac
	ArtifactCA      = "ca"      // the inspection CA bundle (PEM)
	ArtifactRelease = "release" // the release manifest (JSON)
)

// DistributionKey is a tenant's Ed25519 key that signs what agents fetch.
// Installers pin its public half, so it is created once and never replaced.
type DistributionKey struct {
	Tenant    string
	Private   []byte // the Ed25519 seed, sealed by the caller
	Public    []byte // raw Ed25519 public key
	CreatedAt time.Time
}

// EnrollmentSecret is a secret installers hand to agents so that they can
// enrol; stored by hash, usable by any number of devices until deleted.
type EnrollmentSecret struct {
	Tenant    string
	Name      string
	Hash      string // hex SHA-256 of the secret
	CreatedAt time.Time
}

// Device is an enrolled agent: the public half of the key it signs its
// requests with, and what it said about itself when it enrolled.
type Device struct {
	Tenant    string
	ID        string // assigned by the platform; immutable
	PublicKey []byte // raw Ed25519 public key, unique per tenant
	Hostname  string
	OS        string
	Secret    string // the name of the enrolment secret it enrolled with
	CreatedAt time.Time
	RevokedAt time.Time // zero while it may fetch
}

// Artifact is one version of something a tenant's agents fetch (kind
// Artifact*). Versions count from 1 per tenant and kind, without gaps,
// and are never changed: agents refuse a version lower than the one they
// have, so a rollback is a new version with old content.
type Artifact struct {
	Tenant    string
	Kind      string
	Version   int64
	Payload   []byte
	Author    string // "admin", or "platform" for a version the platform derived (defaults, CA bundle)
	CreatedAt time.Time
}

// Store is implemented by the SQLite and PostgreSQL stores.
type Store interface {
	// Tenants.
	CreateTenant(ctx context.Context, t *Tenant) error // ErrConflict when the ID is taken; sets Version 1
	Tenant(ctx context.Context, id string) (*Tenant, error)
	Tenants(ctx context.Context) ([]*Tenant, error)
	UpdateTenant(ctx context.Context, t *Tenant) error // ErrStale unless t.Version is current; increments it

	// Users.
	CreateUser(ctx context.Context, u *User) error // ErrConflict on a taken userName; sets Version 1
	User(ctx context.Context, tenant, id string) (*User, error)
	UserByName(ctx context.Context, tenant, userName string) (*User, error)
	ListUsers(ctx context.Context, tenant string, q ListQuery) (users []*User, total int, err error)
	UpdateUser(ctx context.Context, u *User) error           // ErrStale, ErrConflict, ErrNotFound; increments Version
	DeleteUser(ctx context.Context, tenant, id string) error // also removes it from every group

	// Groups.
	CreateGroup(ctx context.Context, g *Group) error // ErrConflict on a taken displayName; ErrNotFound for an unknown member
	Group(ctx context.Context, tenant, id string) (*Group, error)
	ListGroups(ctx context.Context, tenant string, q ListQuery) (groups []*Group, total int, err error)
	UpdateGroup(ctx context.Context, g *Group) error // replaces attributes and members; ErrStale, ErrConflict, ErrNotFound
	DeleteGroup(ctx context.Context, tenant, id string) error
	GroupsOfUser(ctx context.Context, tenant, userID string) ([]*Group, error) // ordered by displayName; Members not filled in

	// Signing keys.
	AddSigningKey(ctx context.Context, k *SigningKey) error
	SigningKeys(ctx context.Context, tenant string) ([]*SigningKey, error) // oldest first
	UpdateSigningKey(ctx context.Context, k *SigningKey) error             // RetiredAt and RemoveAt only
	DeleteSigningKey(ctx context.Context, tenant, kid string) error

	// The login flow's single-use records. Take* return the record and
	// delete it in one step, so that two concurrent takers cannot both
	// succeed; an expired record is deleted and reported as ErrExpired.
	PutAuthRequest(ctx context.Context, r *AuthRequest) error
	TakeAuthRequest(ctx context.Context, tenant, id string, now time.Time) (*AuthRequest, error)
	PutAuthCode(ctx context.Context, c *AuthCode) error
	TakeAuthCode(ctx context.Context, tenant, hash string, now time.Time) (*AuthCode, error)
	// SeeAssertion records a SAML assertion ID until expires; ErrReplay if
	// it was recorded before and has not expired at now.
	SeeAssertion(ctx context.Context, tenant, id string, expires, now time.Time) error

	// Sessions and refresh tokens.
	CreateSession(ctx context.Context, s *Session, first *RefreshToken) error
	Session(ctx context.Context, tenant, id string) (*Session, error)
	// RotateRefreshToken spends the token with oldHash and stores next in the
	// same session, atomically. It fails with ErrNotFound (unknown token),
	// ErrExpired (session past its end), ErrRevoked (session revoked), or
	// ErrReused: the token was already spent, and the whole session has now
	// been revoked, with its revocation event.
	RotateRefreshToken(ctx context.Context, tenant, oldHash string, next *RefreshToken, now time.Time) (*Session, error)
	// RefreshTokenSession returns the session of a token, spent or not.
	RefreshTokenSession(ctx context.Context, tenant, hash string) (*Session, error)
	// RevokeSession and RevokeUserSessions revoke and append the revocation
	// event in one transaction. Revoking a revoked session is not an error.
	RevokeSession(ctx context.Context, tenant, id, reason string, now time.Time) error
	RevokeUserSessions(ctx context.Context, tenant, userID, reason string, now time.Time) (int, error)
	// DeleteExpired removes expired auth requests, codes, assertion IDs, and
	// sessions (with their tokens) that ended before cutoff.
	DeleteExpired(ctx context.Context, now, cutoff time.Time) error

	// The revocation feed, across tenants, in Seq order.
	AddRevocation(ctx context.Context, r *Revocation) error // sets Seq
	Revocations(ctx context.Context, after int64, limit int) ([]*Revocation, error)
	LastRevocation(ctx context.Context) (int64, error)

	// SCIM bearer tokens, by hash.
	AddSCIMToken(ctx context.Context, tenant, name, hash string, now time.Time) error
	SCIMTokenName(ctx context.Context, tenant, hash string) (string, error) // ErrNotFound when unknown
	DeleteSCIMToken(ctx context.Context, tenant, name string) error

	// Tenant CAs for TLS inspection. Adding, updating or deleting one
	// appends a CAChanged event in the same transaction.
	AddCA(ctx context.Context, ca *CA) error
	CAs(ctx context.Context, tenant string) ([]*CA, error) // oldest first
	UpdateCA(ctx context.Context, ca *CA) error            // RetiredAt and RemoveAt only
	DeleteCA(ctx context.Context, tenant, id string) error

	// Policies. PutPolicy stores p as the tenant's next version: p.Version
	// must be the current version plus one (1 for the first), else
	// ErrStale; it appends a PolicyChanged event in the same transaction.
	PutPolicy(ctx context.Context, p *Policy) error
	Policy(ctx context.Context, tenant string) (*Policy, error)                     // the current version; ErrNotFound if none
	PolicyHistory(ctx context.Context, tenant string, limit int) ([]*Policy, error) // newest first

	// The URL-category list the platform ships (one document for all
	// tenants). PutCategories appends a CategoriesChanged event.
	PutCategories(ctx context.Context, version string, data []byte, now time.Time) error
	Categories(ctx context.Context) (version string, data []byte, err error) // ErrNotFound if none

	// The access log, written in batches by gateway nodes.
	AppendAccess(ctx context.Context, records []*AccessRecord) error // sets Seq
	AccessLog(ctx context.Context, q AccessQuery) ([]*AccessRecord, error)

	// Agent distribution: the tenant's distribution key, enrolment
	// secrets, devices, and the versions of what agents fetch.
	PutDistributionKey(ctx context.Context, k *DistributionKey) error             // ErrConflict when the tenant has one
	DistributionKey(ctx context.Context, tenant string) (*DistributionKey, error) // ErrNotFound when it has none
	AddEnrollmentSecret(ctx context.Context, s *EnrollmentSecret) error           // ErrConflict on a taken name or hash
	EnrollmentSecrets(ctx context.Context, tenant string) ([]*EnrollmentSecret, error)
	DeleteEnrollmentSecret(ctx context.Context, tenant, name string) error
	// EnrollDevice stores d if the tenant has an enrolment secret with
	// secretHash, checked in the transaction that inserts d; it sets
	// d.Secret to the secret's name. ErrNotFound when there is no such
	// secret (or tenant), ErrConflict when the ID or the public key is
	// taken.
	EnrollDevice(ctx context.Context, d *Device, secretHash string) error
	Device(ctx context.Context, tenant, id string) (*Device, error)
	Devices(ctx context.Context, tenant string) ([]*Device, error) // oldest first
	// RevokeDevice sets RevokedAt; revoking a revoked device keeps the
	// first time and is not an error.
	RevokeDevice(ctx context.Context, tenant, id string, now time.Time) error
	// PutArtifact stores a as the next version of its tenant and kind:
	// a.Version must be the current version plus one (1 for the first),
	// else ErrStale.
	PutArtifact(ctx context.Context, a *Artifact) error
	Artifact(ctx context.Context, tenant, kind string) (*Artifact, error)                     // the current version; ErrNotFound if none
	ArtifactHistory(ctx context.Context, tenant, kind string, limit int) ([]*Artifact, error) // newest first

	// The audit log.
	Audit(ctx context.Context, e *AuditEvent) error // sets Seq
	AuditEvents(ctx context.Context, tenant string, after int64, limit int) ([]*AuditEvent, error)

	Close() error
}

// Drivers accepted by Open.
const (
	SQLite   = "sqlite"   // dsn: a file path (created if missing)
	Postgres = "postgres" // dsn: a postgres:// URL or key=value string
)
