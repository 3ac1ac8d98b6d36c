// Package admin is the platform's admin API: JSON over HTTPS with an admin
// bearer token. Tenants (create, configure the IdP, settings), the
// directory (read), revocation of a user or a session, signing-key rotation,
// SCIM tokens, the gateway's policy and CAs, what agents fetch (enrolment
// secrets, devices, PAC, agent configuration, releases), and the audit log,
// where every admin action is written.
//
// It is the operator's interface, not a tenant administrator's console
// (that comes with per-tenant admin identities).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"vigie/certs"
	"vigie/platform/auth"
	"vigie/platform/distrib"
	"vigie/platform/secret"
	"vigie/platform/store"
	"vigie/platform/tenant"
	"vigie/platform/token"
)

// API serves /api/v1/ for operators.
type API struct {
	Store  store.Store
	Auth   *auth.Service
	Tokens *token.Issuer
	Sealer *secret.Sealer
	// Distrib makes each tenant's distribution key and changes what its
	// agents fetch.
	Distrib *distrib.Service
	// TokenSHA256 is the hex SHA-256 of the admin bearer token.
	TokenSHA256 string
	BaseURL     string
	Now         func() time.Time
	Log         *slog.Logger
}

// Register adds the admin routes to mux, behind the admin token.
func (a *API) Register(mux *http.ServeMux) {
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !secret.BearerMatches(r.Header.Get("Authorization"), a.TokenSHA256) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vigie-admin"`)
				writeError(w, http.StatusUnauthorized, "admin token required")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
			if err := h(w, r); err != nil {
				a.fail(w, err)
			}
		})
	}
	route("POST /api/v1/tenants", a.createTenant)
	route("GET /api/v1/tenants", a.listTenants)
	route("GET /api/v1/tenants/{tenant}", a.getTenant)
	route("PATCH /api/v1/tenants/{tenant}/settings", a.patchSettings)
	route("PUT /api/v1/tenants/{tenant}/idp", a.putIdP)
	route("GET /api/v1/tenants/{tenant}/users", a.listUsers)
	route("GET /api/v1/tenants/{tenant}/users/{id}", a.getUser)
	route("GET /api/v1/tenants/{tenant}/groups", a.listGroups)
	route("POST /api/v1/tenants/{tenant}/users/{id}/revoke", a.revokeUser)
	route("POST /api/v1/tenants/{tenant}/sessions/{id}/revoke", a.revokeSession)
	route("POST /api/v1/tenants/{tenant}/keys/rotate", a.rotateKeys)
	route("POST /api/v1/tenants/{tenant}/scim-tokens", a.createSCIMToken)
	route("DELETE /api/v1/tenants/{tenant}/scim-tokens/{name}", a.deleteSCIMToken)
	route("GET /api/v1/tenants/{tenant}/audit", a.listAudit)
	a.registerGateway(route)
	a.registerAgents(route)
}

// NewToken returns a random bearer token.
func NewToken() string { return secret.NewToken() }

// httpError is an error with the status and message the client sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail maps errors to HTTP in one place.
func (a *API) fail(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrStale):
		writeError(w, http.StatusConflict, "changed meanwhile; retry: "+err.Error())
	default:
		a.Log.Error("admin: request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (see the platform log)")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decode reads a JSON body strictly: unknown fields are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}

func (a *API) audit(ctx context.Context, tenantID, action, target string, detail any) {
	raw, _ := json.Marshal(detail)
	if err := a.Store.Audit(ctx, &store.AuditEvent{At: a.Now(), Tenant: tenantID, Actor: "admin", Action: action, Target: target, Detail: raw}); err != nil {
		a.Log.Error("admin: audit", "action", action, "err", err)
	}
}

// TenantView is a tenant as the admin API shows it.
type TenantView struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Settings  tenant.Settings   `json:"settings"`
	IdP       *IdPView          `json:"idp"`
	Endpoints map[string]string `json:"endpoints"`
	CreatedAt time.Time         `json:"created_at"`
}

// IdPView is a tenant's configured identity provider.
type IdPView struct {
	EntityID    string    `json:"entity_id"`
	MetadataURL string    `json:"metadata_url,omitempty"`
	FetchedAt   time.Time `json:"fetched_at"`
}

func (a *API) view(t *store.Tenant) (*TenantView, error) {
	st, err := tenant.Parse(t.Settings)
	if err != nil {
		return nil, err
	}
	base := token.IssuerURL(a.BaseURL, t.ID)
	v := &TenantView{ID: t.ID, Name: t.Name, Settings: st, CreatedAt: t.CreatedAt, Endpoints: map[string]string{
		"saml_metadata":  base + "/saml/metadata",
		"saml_acs":       base + "/saml/acs",
		"authorize":      base + "/oauth/authorize",
		"token":          base + "/oauth/token",
		"jwks":           base + "/.well-known/jwks.json",
		"oauth_metadata": a.BaseURL + "/.well-known/oauth-authorization-server/t/" + t.ID,
		"scim":           base + "/scim/v2",
	}}
	var idp auth.IdPConfig
	if len(t.IdP) > 0 && json.Unmarshal(t.IdP, &idp) == nil && idp.EntityID != "" {
		v.IdP = &IdPView{EntityID: idp.EntityID, MetadataURL: idp.MetadataURL, FetchedAt: idp.FetchedAt}
	}
	return v, nil
}

// CreateTenantRequest is the body of POST /api/v1/tenants.
type CreateTenantRequest struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

// CreateTenant provisions a tenant: its record with default (or given)
// settings, a SAML SP key and certificate, a first signing key, an
// inspection CA and its distribution key.
func (a *API) CreateTenant(ctx context.Context, req CreateTenantRequest) (*store.Tenant, error) {
	if err := tenant.ValidID(req.ID); err != nil {
		return nil, badRequest("id: %v", err)
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	st, err := tenant.Parse(req.Settings)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	sp, err := a.Auth.NewSPConfig(req.ID)
	if err != nil {
		return nil, err
	}
	now := a.Now()
	t := &store.Tenant{ID: req.ID, Name: req.Name, Settings: st.JSON(), SP: sp, IdP: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now}
	if err := a.Store.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	if err := a.Tokens.EnsureKey(ctx, t.ID); err != nil {
		return nil, err
	}
	if _, err := a.CreateCA(ctx, t.ID, certs.DefaultSchedule); err != nil {
		return nil, err
	}
	if _, err := a.Distrib.EnsureKey(ctx, t.ID); err != nil {
		return nil, err
	}
	a.audit(ctx, t.ID, "tenant.create", t.ID, map[string]any{"name": t.Name})
	return t, nil
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req CreateTenantRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	t, err := a.CreateTenant(r.Context(), req)
	if err != nil {
		return err
	}
	v, err := a.view(t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.Store.Tenants(r.Context())
	if err != nil {
		return err
	}
	out := []*TenantView{}
	for _, t := range ts {
		v, err := a.view(t)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	v, err := a.view(t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// update applies f to a tenant and stores it, retrying once if it changed
// meanwhile.
func (a *API) update(r *http.Request, id string, f func(t *store.Tenant) error) (*store.Tenant, error) {
	for attempt := 0; ; attempt++ {
		t, err := a.Store.Tenant(r.Context(), id)
		if err != nil {
			return nil, err
		}
		if err := f(t); err != nil {
			return nil, err
		}
		t.UpdatedAt = a.Now()
		err = a.Store.UpdateTenant(r.Context(), t)
		if errors.Is(err, store.ErrStale) && attempt == 0 {
			continue
		}
		return t, err
	}
}

func (a *API) patchSettings(w http.ResponseWriter, r *http.Request) error {
	var patch json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
		return badRequest("body: %v", err)
	}
	t, err := a.update(r, r.PathValue("tenant"), func(t *store.Tenant) error {
		st, err := tenant.Parse(t.Settings)
		if err != nil {
			return err
		}
		if st, err = st.Merge(patch); err != nil {
			return badRequest("%v", err)
		}
		t.Settings = st.JSON()
		return nil
	})
	if err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "tenant.settings", t.ID, patch)
	v, err := a.view(t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// IdPRequest is the body of PUT /api/v1/tenants/{tenant}/idp: the IdP's
// metadata, by URL (fetched now) or as XML.
type IdPRequest struct {
	MetadataURL string `json:"metadata_url,omitempty"`
	MetadataXML string `json:"metadata_xml,omitempty"`
}

func (a *API) putIdP(w http.ResponseWriter, r *http.Request) error {
	var req IdPRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var idp json.RawMessage
	var err error
	switch {
	case (req.MetadataURL == "") == (req.MetadataXML == ""):
		return badRequest("give exactly one of metadata_url and metadata_xml")
	case req.MetadataURL != "":
		idp, err = a.Auth.FetchIdPMetadata(r.Context(), req.MetadataURL)
	default:
		idp, err = auth.ParseIdPMetadata([]byte(req.MetadataXML), "", a.Now())
	}
	if err != nil {
		return badRequest("%v", err)
	}
	t, err := a.update(r, r.PathValue("tenant"), func(t *store.Tenant) error { t.IdP = idp; return nil })
	if err != nil {
		return err
	}
	v, err := a.view(t)
	if err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "tenant.idp", t.ID, v.IdP)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// page reads start and count query parameters (1-based; count ≤ 1000).
func page(r *http.Request) (store.ListQuery, error) {
	q := store.ListQuery{Start: 1, Count: 100}
	for name, dst := range map[string]*int{"start": &q.Start, "count": &q.Count} {
		if s := r.URL.Query().Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return q, badRequest("%s: want a non-negative number", name)
			}
			*dst = n
		}
	}
	q.Start = max(q.Start, 1)
	q.Count = min(q.Count, 1000)
	return q, nil
}

// UserView is a directory user as the admin API shows it.
type UserView struct {
	ID          string    `json:"id"`
	UserName    string    `json:"user_name"`
	ExternalID  string    `json:"external_id,omitempty"`
	DisplayName string    `json:"display_name"`
	Active      bool      `json:"active"`
	Groups      []string  `json:"groups,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func userView(u *store.User) *UserView {
	return &UserView{ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, DisplayName: u.DisplayName, Active: u.Active, UpdatedAt: u.UpdatedAt}
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	q, err := page(r)
	if err != nil {
		return err
	}
	users, total, err := a.Store.ListUsers(r.Context(), r.PathValue("tenant"), q)
	if err != nil {
		return err
	}
	out := make([]*UserView, len(users))
	for i, u := range users {
		out[i] = userView(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "start": q.Start, "users": out})
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.Store.User(r.Context(), r.PathValue("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	groups, err := a.Store.GroupsOfUser(r.Context(), u.Tenant, u.ID)
	if err != nil {
		return err
	}
	v := userView(u)
	for _, g := range groups {
		v.Groups = append(v.Groups, g.DisplayName)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	q, err := page(r)
	if err != nil {
		return err
	}
	groups, total, err := a.Store.ListGroups(r.Context(), r.PathValue("tenant"), q)
	if err != nil {
		return err
	}
	type groupView struct {
		ID          string   `json:"id"`
		DisplayName string   `json:"display_name"`
		Members     []string `json:"members"`
	}
	out := make([]groupView, len(groups))
	for i, g := range groups {
		out[i] = groupView{g.ID, g.DisplayName, g.Members}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "start": q.Start, "groups": out})
	return nil
}

func (a *API) revokeUser(w http.ResponseWriter, r *http.Request) error {
	tenantID, id := r.PathValue("tenant"), r.PathValue("id")
	if _, err := a.Store.User(r.Context(), tenantID, id); err != nil {
		return err
	}
	n, err := a.Store.RevokeUserSessions(r.Context(), tenantID, id, "revoked by an administrator", a.Now())
	if err != nil {
		return err
	}
	a.audit(r.Context(), tenantID, "user.revoke", id, map[string]int{"sessions": n})
	writeJSON(w, http.StatusOK, map[string]int{"sessions_revoked": n})
	return nil
}

func (a *API) revokeSession(w http.ResponseWriter, r *http.Request) error {
	tenantID, id := r.PathValue("tenant"), r.PathValue("id")
	if _, err := a.Store.Session(r.Context(), tenantID, id); err != nil {
		return err
	}
	if err := a.Store.RevokeSession(r.Context(), tenantID, id, "revoked by an administrator", a.Now()); err != nil {
		return err
	}
	a.audit(r.Context(), tenantID, "session.revoke", id, nil)
	writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
	return nil
}

func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Lead *string `json:"lead,omitempty"` // default: the tenant's key_publish_lead; "0s" after a compromise
	}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	st, err := tenant.Parse(t.Settings)
	if err != nil {
		return err
	}
	lead := st.KeyPublishLead.D()
	if req.Lead != nil {
		if lead, err = time.ParseDuration(*req.Lead); err != nil || lead < 0 || lead > 24*time.Hour {
			return badRequest("lead: want a duration from 0s to 24h")
		}
	}
	k, err := a.Tokens.Rotate(r.Context(), t.ID, lead)
	if err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "keys.rotate", k.KID, map[string]any{"active_at": k.ActiveAt})
	writeJSON(w, http.StatusOK, map[string]any{"kid": k.KID, "active_at": k.ActiveAt})
	return nil
}

func (a *API) createSCIMToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 64 {
		return badRequest("name: 1 to 64 characters, to tell tokens apart (for example \"entra\")")
	}
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	tok := NewToken()
	if err := a.Store.AddSCIMToken(r.Context(), t.ID, req.Name, secret.HashToken(tok), a.Now()); err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "scim_token.create", req.Name, nil)
	writeJSON(w, http.StatusCreated, map[string]string{"name": req.Name, "token": tok,
		"note": "shown once: store it in the provisioning client now"})
	return nil
}

func (a *API) deleteSCIMToken(w http.ResponseWriter, r *http.Request) error {
	tenantID, name := r.PathValue("tenant"), r.PathValue("name")
	if err := a.Store.DeleteSCIMToken(r.Context(), tenantID, name); err != nil {
		return err
	}
	a.audit(r.Context(), tenantID, "scim_token.delete", name, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	events, err := a.Store.AuditEvents(r.Context(), r.PathValue("tenant"), after, limit)
	if err != nil {
		return err
	}
	type eventView struct {
		Seq    int64           `json:"seq"`
		At     time.Time       `json:"at"`
		Actor  string          `json:"actor"`
		Action string          `json:"action"`
		Target string          `json:"target,omitempty"`
		Detail json.RawMessage `json:"detail,omitempty"`
	}
	out := make([]eventView, len(events))
	for i, e := range events {
		out[i] = eventView{e.Seq, e.At, e.Actor, e.Action, e.Target, e.Detail}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}
