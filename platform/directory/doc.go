// Package directory is the platform's SCIM 2.0 service provider (RFC 7643,
// RFC 7644): the endpoint through which a tenant's identity provider —
// Microsoft Entra ID, Okta, or any SCIM client — creates, updates,
// disables and deletes the tenant's users and groups in the platform
// store. A user the IdP disables or deletes loses its sessions at once.
//
// It is not the directory's storage (package store keeps the data; this
// package decides what SCIM means), not a SCIM client, and not the login
// path: SAML and tokens read the directory through the store. Group
// changes reach access tokens at their next refresh, when the token
// service reads GroupsOfUser; nothing here pushes them.
//
// # Mounting and tenants
//
// New builds one Server for all tenants. Handler(tenant) serves one
// tenant's base, BasePath(tenant) = /t/{tenant}/scim/v2, behind
// RequireToken; the platform calls it with the {tenant} of the route. The
// tenant is fixed by the route before authentication and every store call
// is scoped by it, so a token of one tenant can never read or write
// another's directory.
//
// # Authentication
//
// A bearer token per tenant. Tokens are stored as secret.HashToken (hex SHA-256)
// with store.AddSCIMToken; RequireToken looks the presented token up by
// its hash (store.SCIMTokenName), so secrets are never compared or logged
// here. The token's name becomes the audit actor "scim:<name>".
//
// # Protocol
//
//   - /Users and /Groups: POST, GET (one, or a list with filter,
//     startIndex/count and attributes/excludedAttributes), PUT, PATCH,
//     DELETE. /ServiceProviderConfig, /ResourceTypes and /Schemas (User,
//     EnterpriseUser extension, Group) describe exactly what is
//     implemented. /Bulk, /Me, .search and sorting answer 501 or are
//     announced unsupported.
//   - PATCH answers 200 with the resource, always (RFC 7644 §3.5.2 allows
//     200 or 204; a body saves Entra ID and Okta a GET). PUT and POST answer
//     the resource too; DELETE answers 204.
//   - Every resource has id, schemas and meta (resourceType, created,
//     lastModified, location, version). meta.version is the ETag W/"<store
//     version>"; If-Match on PUT, PATCH and DELETE is honoured (412 when
//     stale) and If-None-Match on GET gives 304. Without If-Match a write
//     that lost a race with another is retried on fresh data.
//   - Requests may be application/scim+json or application/json; responses
//     are application/scim+json. Every error is in the SCIM error schema
//     (status as a string, detail, scimType where RFC 7644 §3.12 has one).
//     Bad input is always a 4xx; 500 is only for store failures.
//
// What clients write is normalised against the schemas (see normalize):
// attribute names are case-insensitive, unknown and read-only attributes
// are ignored (Entra ID expects that), a password is never stored, booleans
// may be the strings "True"/"False" (older Entra ID jobs), null or "" clears
// an attribute. A user's userName and a group's displayName are required
// and unique per tenant, case-insensitively (409 uniqueness). Groups hold
// users only; nested groups are refused.
//
// PATCH accepts the shapes Entra ID and Okta send (see applyPatch): op
// names in any case, operations with or without path, paths with value
// filters (members[value eq "…"], emails[type eq "work"].value), member
// removal by value list, Okta's rename that repeats the id.
//
// Filters are parsed by github.com/scim2/filter-parser and evaluated here.
// An equality on userName, externalId or displayName (groups:
// displayName, externalId) is answered by the store's indexed query
// (ListQuery), and id eq by a read of that id; a conjunction that
// contains one of these reads only what it selects and evaluates the rest
// in Go. Every other filter (sw, co, gt, not, or, meta.lastModified gt…)
// reads the tenant's directory page by page and is evaluated in Go: that
// costs O(directory size) per request, and is refused (400 tooMany) above
// Options.MaxScan resources. See find.
//
// # Effects
//
// A user made inactive (PUT or PATCH active=false) has its sessions
// revoked through store.RevokeUserSessions, which also appends the
// revocation-feed event the gateways follow. DELETE of a user makes it
// inactive, revokes, then deletes. Every create, update and delete writes
// an audit event (store.AuditEvent, actor "scim:<token name>").
//
// # Why not github.com/elimity-com/scim
//
// That library is in go.mod and was tried against the checklist first. It
// validates every request against static schemas before our code sees it,
// and in doing so refuses what Entra ID really sends: the string booleans
// "True"/"False" (unless a package-global switch is flipped), a PATCH
// whose path names an attribute it does not know (400 invalidPath where
// Entra ID expects it ignored), a null value to clear an attribute, and
// the manager given as a bare id. It also has no ETag preconditions, gives
// relative meta.location values, and turns any handler error that is not
// its own type into a 500 whose detail is our error text. Applying PATCH
// operations and filters — the bulk of the work — is left to the handler
// either way. So the protocol layer is written here and only its filter
// and path parser, github.com/scim2/filter-parser/v2, is used.
package directory
