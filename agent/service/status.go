package service

import (
	"encoding/json"
	"net/http"
	"time"

	"vigie/agent/health"
	"vigie/agent/proxy"
	"vigie/agent/session"
)

// Status is what GET /status answers (and `agent status` prints): the
// requesting OS user's own state and the machine's. It never holds a token.
type Status struct {
	Tenant      string              `json:"tenant"`
	Device      string              `json:"device"`
	PlatformURL string              `json:"platform_url"`
	Gateway     string              `json:"gateway,omitempty"`
	Continuity  string              `json:"continuity"`
	Started     time.Time           `json:"started"`
	User        *UserStatus         `json:"user,omitempty"`
	Probe       *ProbeReport        `json:"probe,omitempty"`
	Sync        map[string]Sync     `json:"sync"`
	Counters    proxy.CounterValues `json:"counters"`
	// FailOpen lists the recent periods traffic went around the gateway.
	FailOpen []health.Period `json:"fail_open,omitempty"`
}

// UserStatus is the requesting user's state.
type UserStatus struct {
	Name  string `json:"name,omitempty"`
	State string `json:"state"` // connected, needs-login, fail-open, …
	session.UserStatus
}

// ProbeReport is the gateway probe's view.
type ProbeReport struct {
	Target              string    `json:"target"`
	Up                  bool      `json:"up"`
	Portal              bool      `json:"captive_portal,omitempty"`
	LastProbe           time.Time `json:"last_probe,omitzero"`
	LastChange          time.Time `json:"last_change,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
	LastError           string    `json:"last_error,omitempty"`
}

// Sync is where one kind of signed artifact stands.
type Sync struct {
	Version     int64     `json:"version"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// Report builds the status as seen by userID ("" for none).
func (a *Agent) Report(userID, userName string) Status {
	snap := a.syncer.Current()
	st := Status{Tenant: a.cfg.Tenant, Device: a.device, PlatformURL: a.cfg.PlatformURL, Gateway: snap.Config.Gateway,
		Continuity: string(snap.Config.Continuity), Started: a.started, Sync: map[string]Sync{}, Counters: a.px.Counters()}
	for kind, s := range snap.Status {
		ks := Sync{Version: s.Version, LastSuccess: s.LastSuccess}
		if s.LastError != nil {
			ks.LastError = s.LastError.Error()
		}
		st.Sync[kind] = ks
	}
	if p := a.prober.Load(); p != nil {
		ps := p.Status()
		st.Probe = &ProbeReport{Target: ps.Target, Up: ps.GatewayUp, Portal: ps.Portal, LastProbe: ps.LastProbe,
			LastChange: ps.LastChange, ConsecutiveFailures: ps.ConsecutiveFailures, LastError: ps.LastError}
	}
	if userID != "" {
		u := &UserStatus{Name: userName, State: a.state(userID).String()}
		u.UserID = userID
		for _, s := range a.sessions.Status() {
			if s.UserID == userID {
				u.UserStatus = s
			}
		}
		st.User = u
	}
	periods := a.journal.Periods()
	if len(periods) > 20 {
		periods = periods[len(periods)-20:]
	}
	st.FailOpen = periods
	return st
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	u, _ := proxy.UserFrom(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.Report(u.ID, u.Name))
}
