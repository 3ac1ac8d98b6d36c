package admin

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"vigie/platform/distrib"
	"vigie/platform/distrib/artifact"
	"vigie/platform/store"
)

// registerAgents adds what operators need for agents: the distribution key
// installers pin, enrolment secrets, devices, and what agents fetch (PAC,
// configuration, release manifest).
func (a *API) registerAgents(route func(string, func(http.ResponseWriter, *http.Request) error)) {
	route("GET /api/v1/tenants/{tenant}/distribution-key", a.distributionKey)
	route("POST /api/v1/tenants/{tenant}/enrollment-secrets", a.createEnrollmentSecret)
	route("GET /api/v1/tenants/{tenant}/enrollment-secrets", a.listEnrollmentSecrets)
	route("DELETE /api/v1/tenants/{tenant}/enrollment-secrets/{name}", a.deleteEnrollmentSecret)
	route("GET /api/v1/tenants/{tenant}/devices", a.listDevices)
	route("POST /api/v1/tenants/{tenant}/devices/{id}/revoke", a.revokeDevice)
	route("GET /api/v1/tenants/{tenant}/pac", a.getPAC)
	route("PUT /api/v1/tenants/{tenant}/pac", a.putPAC)
	route("GET /api/v1/tenants/{tenant}/agent-config", a.getAgentArtifact(artifact.KindConfig))
	route("PUT /api/v1/tenants/{tenant}/agent-config", a.putAgentConfig)
	route("GET /api/v1/tenants/{tenant}/release", a.getAgentArtifact(artifact.KindRelease))
	route("PUT /api/v1/tenants/{tenant}/release", a.putRelease)
}

// distribError turns distrib's refusals into 400s naming what is wrong.
func distribError(err error) error {
	var inv *distrib.InvalidError
	switch {
	case errors.As(err, &inv):
		return badRequest("%v", err)
	case errors.Is(err, distrib.ErrNoGateway):
		return &httpError{http.StatusServiceUnavailable, err.Error()}
	}
	return err
}

func (a *API) distributionKey(w http.ResponseWriter, r *http.Request) error {
	pub, err := a.Distrib.EnsureKey(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"public_key": base64.StdEncoding.EncodeToString(pub),
		"note": "give this to installers: agents apply only what this key signed"})
	return nil
}

func (a *API) createEnrollmentSecret(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	tenantID := r.PathValue("tenant")
	sec, err := a.Distrib.CreateEnrollmentSecret(r.Context(), tenantID, req.Name)
	if err != nil {
		return distribError(err)
	}
	a.audit(r.Context(), tenantID, "enrollment_secret.create", req.Name, nil)
	writeJSON(w, http.StatusCreated, map[string]string{"name": req.Name, "secret": sec,
		"note": "shown once: give it to the installer (it enrols any number of devices until deleted)"})
	return nil
}

func (a *API) listEnrollmentSecrets(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	list, err := a.Store.EnrollmentSecrets(r.Context(), t.ID)
	if err != nil {
		return err
	}
	type view struct {
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"created_at"`
	}
	out := make([]view, len(list))
	for i, e := range list {
		out[i] = view{e.Name, e.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"enrollment_secrets": out})
	return nil
}

func (a *API) deleteEnrollmentSecret(w http.ResponseWriter, r *http.Request) error {
	tenantID, name := r.PathValue("tenant"), r.PathValue("name")
	if err := a.Store.DeleteEnrollmentSecret(r.Context(), tenantID, name); err != nil {
		return err
	}
	a.audit(r.Context(), tenantID, "enrollment_secret.delete", name, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeviceView is an enrolled device as the admin API shows it.
type DeviceView struct {
	ID        string     `json:"id"`
	Hostname  string     `json:"hostname"`
	OS        string     `json:"os"`
	PublicKey string     `json:"public_key"` // standard base64
	Secret    string     `json:"enrollment_secret"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	devices, err := a.Store.Devices(r.Context(), t.ID)
	if err != nil {
		return err
	}
	out := make([]DeviceView, len(devices))
	for i, d := range devices {
		out[i] = DeviceView{ID: d.ID, Hostname: d.Hostname, OS: d.OS, PublicKey: base64.StdEncoding.EncodeToString(d.PublicKey), Secret: d.Secret, CreatedAt: d.CreatedAt}
		if !d.RevokedAt.IsZero() {
			out[i].RevokedAt = &d.RevokedAt
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request) error {
	tenantID, id := r.PathValue("tenant"), r.PathValue("id")
	if err := a.Distrib.RevokeDevice(r.Context(), tenantID, id); err != nil {
		return err
	}
	a.audit(r.Context(), tenantID, "device.revoke", id, nil)
	writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
	return nil
}

// ArtifactView is the answer to a change of what agents fetch.
type ArtifactView struct {
	Kind      string    `json:"kind"`
	Version   int64     `json:"version"`
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"created_at"`
	Changed   bool      `json:"changed"` // false when the document was already the current one
}

func artifactView(art *store.Artifact, changed bool) ArtifactView {
	return ArtifactView{Kind: art.Kind, Version: art.Version, Author: art.Author, CreatedAt: art.CreatedAt, Changed: changed}
}

// getPAC returns the PAC file agents get now (the default one until an
// administrator sets one), as a PAC file.
func (a *API) getPAC(w http.ResponseWriter, r *http.Request) error {
	art, err := a.current(r, artifact.KindPAC)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Vigie-Version", strconv.FormatInt(art.Version, 10))
	w.Write(art.Payload)
	return nil
}

// getAgentArtifact returns the JSON document of kind agents get now.
func (a *API) getAgentArtifact(kind string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		art, err := a.current(r, kind)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Vigie-Version", strconv.FormatInt(art.Version, 10))
		w.Write(art.Payload)
		return nil
	}
}

func (a *API) current(r *http.Request, kind string) (*store.Artifact, error) {
	t, err := a.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return nil, err
	}
	art, err := a.Distrib.Current(r.Context(), t.ID, kind)
	return art, distribError(err)
}

// putAgentArtifact reads the body and hands it to set; the body is the
// document itself (a PAC file, or JSON).
func (a *API) putAgentArtifact(w http.ResponseWriter, r *http.Request, action string,
	set func(r *http.Request, tenantID string, body []byte) (*store.Artifact, bool, error)) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("body: %v", err)
	}
	tenantID := r.PathValue("tenant")
	art, changed, err := set(r, tenantID, body)
	if err != nil {
		return distribError(err)
	}
	if changed {
		a.audit(r.Context(), tenantID, action, strconv.FormatInt(art.Version, 10), distrib.AuditDetail(art))
	}
	writeJSON(w, http.StatusOK, artifactView(art, changed))
	return nil
}

func (a *API) putPAC(w http.ResponseWriter, r *http.Request) error {
	return a.putAgentArtifact(w, r, "pac.update", func(r *http.Request, tenantID string, body []byte) (*store.Artifact, bool, error) {
		return a.Distrib.SetPAC(r.Context(), tenantID, body)
	})
}

func (a *API) putAgentConfig(w http.ResponseWriter, r *http.Request) error {
	return a.putAgentArtifact(w, r, "agent_config.update", func(r *http.Request, tenantID string, body []byte) (*store.Artifact, bool, error) {
		return a.Distrib.SetConfig(r.Context(), tenantID, body)
	})
}

func (a *API) putRelease(w http.ResponseWriter, r *http.Request) error {
	return a.putAgentArtifact(w, r, "release.update", func(r *http.Request, tenantID string, body []byte) (*store.Artifact, bool, error) {
		return a.Distrib.SetRelease(r.Context(), tenantID, body)
	})
}
