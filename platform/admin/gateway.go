package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"vigie/certs"
	"vigie/platform/policy"
	"vigie/platform/store"
	"vigie/platform/tenant"
)

// registerGateway adds what operators need for the gateway: policy,
// inspection CAs, categories and the access log.
func (a *API) registerGateway(route func(string, func(http.ResponseWriter, *http.Request) error)) {
	route("GET /api/v1/tenants/{tenant}/policy", a.getPolicy)
	route("PUT /api/v1/tenants/{tenant}/policy", a.putPolicy)
	route("GET /api/v1/tenants/{tenant}/policy/history", a.policyHistory)
	route("POST /api/v1/tenants/{tenant}/ca/rotate", a.rotateCA)
	route("PUT /api/v1/categories", a.putCategories)
	route("GET /api/v1/tenants/{tenant}/access", a.accessLog)
}

// PolicyView is a tenant's current policy.
type PolicyView struct {
	Version   int64           `json:"version"` // 0: none yet (the defaults apply)
	Policy    json.RawMessage `json:"policy"`
	Author    string          `json:"author,omitempty"`
	CreatedAt time.Time       `json:"created_at,omitempty"`
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	p, err := a.Store.Policy(r.Context(), t.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusOK, PolicyView{Policy: json.RawMessage(`{"rules":[]}`)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PolicyView{Version: p.Version, Policy: p.Doc, Author: p.Author, CreatedAt: p.CreatedAt})
	return nil
}

// PutPolicyRequest replaces a tenant's policy. Version is the version being
// replaced (0 for the first): a policy changed meanwhile is not overwritten.
type PutPolicyRequest struct {
	Version int64           `json:"version"`
	Policy  json.RawMessage `json:"policy"`
}

func (a *API) putPolicy(w http.ResponseWriter, r *http.Request) error {
	var req PutPolicyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := policy.Parse(req.Policy); err != nil {
		return badRequest("%v", err)
	}
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	var compact bytes.Buffer
	json.Compact(&compact, req.Policy)
	p := &store.Policy{Tenant: t.ID, Version: req.Version + 1, Doc: compact.Bytes(), Author: "admin", CreatedAt: a.Now()}
	if err := a.Store.PutPolicy(r.Context(), p); errors.Is(err, store.ErrStale) {
		return &httpError{http.StatusConflict, "the policy changed since version " + strconv.FormatInt(req.Version, 10) + ": read it again, then retry"}
	} else if err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "policy.update", strconv.FormatInt(p.Version, 10), nil)
	writeJSON(w, http.StatusOK, PolicyView{Version: p.Version, Policy: p.Doc, Author: p.Author, CreatedAt: p.CreatedAt})
	return nil
}

func (a *API) policyHistory(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.Store.PolicyHistory(r.Context(), r.PathValue("tenant"), 100)
	if err != nil {
		return err
	}
	out := make([]PolicyView, len(ps))
	for i, p := range ps {
		out[i] = PolicyView{Version: p.Version, Policy: p.Doc, Author: p.Author, CreatedAt: p.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
	return nil
}

// CreateCA gives a tenant a new inspection CA: the first signs at once; a
// later one is published first (the schedule's lead) so that every agent
// installs it before leaves are signed with it.
func (a *API) CreateCA(ctx context.Context, tenantID string, sched certs.Schedule) (*store.CA, error) {
	now := a.Now()
	certPEM, key, err := certs.NewCA(tenantID, now)
	if err != nil {
		return nil, err
	}
	existing, err := a.Store.CAs(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if len(existing) == 0 {
		sched.PublishLead = 0
	}
	recs := make([]certs.Record, len(existing))
	byID := map[string]*store.CA{}
	for i, ca := range existing {
		recs[i] = certs.Record{ID: ca.ID, CertPEM: []byte(ca.CertPEM), CreatedAt: ca.CreatedAt, ActiveAt: ca.ActiveAt, RetiredAt: ca.RetiredAt, RemoveAt: ca.RemoveAt}
		byID[ca.ID] = ca
	}
	id := NewToken()[:16]
	next, retired := sched.Rotate(recs, certs.Record{ID: id, CertPEM: certPEM}, now)
	ca := &store.CA{Tenant: tenantID, ID: id, CertPEM: string(certPEM), Key: a.Sealer.Seal(key, tenant.CAKeyPurpose(tenantID, id)),
		CreatedAt: next.CreatedAt, ActiveAt: next.ActiveAt}
	if err := a.Store.AddCA(ctx, ca); err != nil {
		return nil, err
	}
	for _, r := range retired {
		old := byID[r.ID]
		old.RetiredAt, old.RemoveAt = r.RetiredAt, r.RemoveAt
		if err := a.Store.UpdateCA(ctx, old); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

func (a *API) rotateCA(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Lead *string `json:"lead,omitempty"` // default 24h
		// Compromised switches at once and drops the old CAs from the
		// bundle at once: inspection fails for agents until they fetch the
		// new bundle, which is the price of no longer trusting a leaked key.
		Compromised bool `json:"compromised,omitempty"`
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
	sched := certs.DefaultSchedule
	if req.Compromised {
		sched = certs.Schedule{}
	} else if req.Lead != nil {
		if sched.PublishLead, err = time.ParseDuration(*req.Lead); err != nil || sched.PublishLead < 0 {
			return badRequest("lead: want a duration such as 24h (0s after a compromise)")
		}
	}
	ca, err := a.CreateCA(r.Context(), t.ID, sched)
	if err != nil {
		return err
	}
	a.audit(r.Context(), t.ID, "ca.rotate", ca.ID, map[string]any{"active_at": ca.ActiveAt})
	writeJSON(w, http.StatusOK, map[string]any{"id": ca.ID, "active_at": ca.ActiveAt, "certificate": ca.CertPEM})
	return nil
}

func (a *API) putCategories(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("body: %v", err)
	}
	cats, err := policy.ParseCategories(data)
	if err != nil {
		return badRequest("%v", err)
	}
	if err := a.Store.PutCategories(r.Context(), cats.Version, data, a.Now()); err != nil {
		return err
	}
	a.audit(r.Context(), "", "categories.update", cats.Version, nil)
	writeJSON(w, http.StatusOK, map[string]string{"version": cats.Version})
	return nil
}

// AccessView is one access-log record as the admin API shows it.
type AccessView struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	User       string    `json:"user,omitempty"`
	Device     string    `json:"device,omitempty"`
	Session    string    `json:"session,omitempty"`
	Client     string    `json:"client,omitempty"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path,omitempty"`
	Status     int       `json:"status"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	DurationMS float64   `json:"duration_ms"`
	Decision   string    `json:"decision"`
	Rule       string    `json:"rule,omitempty"`
	Ref        string    `json:"ref,omitempty"`
}

// accessLog answers GET …/access?user=&host=&from=&to=&after=&limit=, as a
// JSON object, or as JSON lines with format=jsonl (for export).
func (a *API) accessLog(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	aq := store.AccessQuery{Tenant: r.PathValue("tenant"), UserID: q.Get("user"), Host: q.Get("host")}
	for name, dst := range map[string]*time.Time{"from": &aq.From, "to": &aq.To} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return badRequest("%s: want an RFC 3339 time such as 2026-11-23T10:00:00Z", name)
			}
			*dst = t
		}
	}
	var err error
	if s := q.Get("after"); s != "" {
		if aq.After, err = strconv.ParseInt(s, 10, 64); err != nil || aq.After < 0 {
			return badRequest("after: want a non-negative cursor")
		}
	}
	if s := q.Get("limit"); s != "" {
		if aq.Limit, err = strconv.Atoi(s); err != nil || aq.Limit <= 0 || aq.Limit > 10000 {
			return badRequest("limit: want 1 to 10000")
		}
	}
	recs, err := a.Store.AccessLog(r.Context(), aq)
	if err != nil {
		return err
	}
	out := make([]AccessView, len(recs))
	for i, rec := range recs {
		out[i] = AccessView{Seq: rec.Seq, At: rec.At, User: rec.UserID, Device: rec.Device, Session: rec.SessionID, Client: rec.Client,
			Method: rec.Method, Host: rec.Host, Path: rec.Path, Status: rec.Status, BytesIn: rec.BytesIn, BytesOut: rec.BytesOut,
			DurationMS: float64(rec.Duration.Microseconds()) / 1000, Decision: rec.Decision, Rule: rec.Rule, Ref: rec.Ref}
	}
	if q.Get("format") == "jsonl" {
		w.Header().Set("Content-Type", "application/jsonl")
		enc := json.NewEncoder(w)
		for _, v := range out {
			enc.Encode(v)
		}
		return nil
	}
	next := aq.After
	if len(out) > 0 {
		next = out[len(out)-1].Seq
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": out, "next": next})
	return nil
}
