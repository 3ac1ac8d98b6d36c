// Package demo runs the whole platform on embedded defaults, with nothing
// to install: SQLite in a folder, one tenant ("demo"), a built-in SAML IdP
// with two users in different groups, and every URL and credential a
// newcomer needs printed on start. Run it again on the same folder and it
// picks up where it left off.
package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"vigie/platform/admin"
	"vigie/platform/auth"
	"vigie/platform/config"
	"vigie/platform/demoidp"
	"vigie/platform/secret"
	"vigie/platform/server"
	"vigie/platform/store"
)

// TenantID is the demo tenant.
const TenantID = "demo"

// User is a demo user.
type User struct {
	Login, Email, Password, Group string
}

// Users are the demo's two users, in different groups.
var Users = []User{
	{"alice", "alice@demo.example", "alice-demo-pw", "staff"},
	{"bob", "bob@demo.example", "bob-demo-pw", "contractors"},
}

// Options configure Run.
type Options struct {
	Dir    string // where the database, keys and tokens live; created 0700
	Listen string // default 127.0.0.1:8080; port 0 picks a free one
	// GatewayListen is the filtering proxy's address. Default 127.0.0.1:3128.
	GatewayListen string
	Out           io.Writer
	Logger        *slog.Logger
	Now           func() time.Time
	// Store, if set, is used instead of the SQLite file in Dir (tests run
	// the same flows on PostgreSQL this way).
	Store store.Store
	// Server passes options through to the platform (tests: origin roots
	// and dialer of the gateway).
	Server server.Options
	// Ready, if set, receives the running demo once it serves.
	Ready func(*Demo)
	// AgentPort is the port of the agent the demo's agent.yaml describes.
	// Default 3129.
	AgentPort int
}

// Demo is a running demo platform.
type Demo struct {
	BaseURL string
	// GatewayAddr is the filtering proxy's host:port.
	GatewayAddr string
	AdminToken  string
	FeedToken   string
	SCIMToken   string
	// EnrollmentSecret and DistributionKey (base64) are what an agent
	// needs to join the demo tenant; AgentConfig is the agent.yaml the
	// demo wrote with them.
	EnrollmentSecret string
	DistributionKey  string
	AgentConfig      string
	Server           *server.Server
	IdP              *demoidp.IdP
}

// state is what the demo keeps in Dir between runs.
type state struct {
	AdminToken string           `json:"admin_token"`
	FeedToken  string           `json:"feed_token"`
	SCIMToken  string           `json:"scim_token"`
	IdPKeys    *demoidp.KeyPair `json:"idp_keys"`
	// EnrollmentSecret is kept in clear here (a demo) so that agents can
	// be pointed at the demo again after a restart.
	EnrollmentSecret string `json:"enrollment_secret"`
}

// Run starts the demo and serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.GatewayListen == "" {
		o.GatewayListen = "127.0.0.1:3128"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.AgentPort == 0 {
		o.AgentPort = 3129
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	statePath := filepath.Join(o.Dir, "demo-state.json")
	st, err := loadState(statePath, o.Now())
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("demo: --listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("demo: --listen %s: the demo serves on a loopback address only (it has known passwords)", o.Listen)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer ln.Close()
	gln, err := net.Listen("tcp", o.GatewayListen)
	if err != nil {
		return fmt.Errorf("demo: gateway: %w", err)
	}
	defer gln.Close()
	base := "http://" + ln.Addr().String()
	idp, err := demoidp.New(base+"/idp", st.IdPKeys)
	if err != nil {
		return err
	}
	cfg := &config.Config{
		Listen: ln.Addr().String(), BaseURL: base,
		Database:         config.Database{Driver: store.SQLite, DSN: filepath.Join(o.Dir, "vigie.db")},
		MasterKeyFile:    filepath.Join(o.Dir, "master.key"),
		AdminTokenSHA256: secret.HashToken(st.AdminToken), FeedTokenSHA256: secret.HashToken(st.FeedToken),
		Gateway: &config.Gateway{Listen: gln.Addr().String(), PublicAddr: gln.Addr().String()},
	}
	so := o.Server
	so.Logger, so.Now, so.Store = o.Logger, o.Now, o.Store
	so.Mount = func(mux *http.ServeMux) { mux.Handle("/idp/", http.StripPrefix("/idp", idp.PublicHandler())) }
	srv, err := server.New(ctx, cfg, so)
	if err != nil {
		return err
	}
	defer srv.Close()
	d := &Demo{BaseURL: base, GatewayAddr: gln.Addr().String(), AdminToken: st.AdminToken, FeedToken: st.FeedToken, SCIMToken: st.SCIMToken, Server: srv, IdP: idp}
	if err := d.bootstrap(ctx, o.Now()); err != nil {
		return err
	}
	if err := d.agentAccess(ctx, st, statePath, o.Now()); err != nil {
		return err
	}
	if err := d.writeAgentConfig(o.Dir, o.AgentPort); err != nil {
		return err
	}
	d.print(o.Out, o.Dir, o.AgentPort)
	if o.Ready != nil {
		o.Ready(d)
	}
	return srv.Serve(ctx, ln, gln)
}

// agentAccess makes sure the demo's enrolment secret is valid and learns
// the tenant's distribution key.
func (d *Demo) agentAccess(ctx context.Context, st *state, statePath string, now time.Time) error {
	s := d.Server
	known := false
	if st.EnrollmentSecret != "" {
		secrets, err := s.Store.EnrollmentSecrets(ctx, TenantID)
		if err != nil {
			return err
		}
		for _, e := range secrets {
			known = known || e.Hash == secret.HashToken(st.EnrollmentSecret)
		}
	}
	if !known {
		tok, err := s.Distrib.CreateEnrollmentSecret(ctx, TenantID, fmt.Sprintf("demo-%d", now.UnixNano()))
		if err != nil {
			return fmt.Errorf("demo: enrolment secret: %w", err)
		}
		st.EnrollmentSecret = tok
		if err := saveState(statePath, st); err != nil {
			return err
		}
	}
	key, err := s.Distrib.EnsureKey(ctx, TenantID)
	if err != nil {
		return fmt.Errorf("demo: distribution key: %w", err)
	}
	d.EnrollmentSecret, d.DistributionKey = st.EnrollmentSecret, base64.StdEncoding.EncodeToString(key)
	return nil
}

// writeAgentConfig writes the configuration of an agent for this demo:
// agent run --user-mode --config <dir>/agent.yaml.
func (d *Demo) writeAgentConfig(dir string, port int) error {
	d.AgentConfig = filepath.Join(dir, "agent.yaml")
	abs, err := filepath.Abs(filepath.Join(dir, "agent"))
	if err != nil {
		return err
	}
	body := fmt.Sprintf("# Written by the platform demo: an agent for the demo tenant.\n"+
		"platform_url: %q\ntenant: %q\nenrollment_secret: %q\ndistribution_key: %q\nport: %d\nstate_dir: %q\n",
		d.BaseURL, TenantID, d.EnrollmentSecret, d.DistributionKey, port, abs)
	if err := os.WriteFile(d.AgentConfig, []byte(body), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func saveState(path string, st *state) error {
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func loadState(path string, now time.Time) (*state, error) {
	var st state
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &st); err != nil || st.IdPKeys == nil {
			return nil, fmt.Errorf("demo: %s is damaged (%v); remove the demo folder to start afresh", path, err)
		}
		return &st, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("demo: %w", err)
	}
	kp, err := demoidp.NewKeyPair(now)
	if err != nil {
		return nil, err
	}
	st = state{AdminToken: secret.NewToken(), FeedToken: secret.NewToken(), SCIMToken: secret.NewToken(), IdPKeys: kp}
	if err := saveState(path, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// bootstrap makes sure the demo tenant, its IdP trust both ways, the SCIM
// token and the demo users and groups exist. Every step is idempotent.
func (d *Demo) bootstrap(ctx context.Context, now time.Time) error {
	s := d.Server
	t, err := s.Store.Tenant(ctx, TenantID)
	if errors.Is(err, store.ErrNotFound) {
		t, err = s.Admin.CreateTenant(ctx, admin.CreateTenantRequest{ID: TenantID, Name: "Demo organisation"})
	}
	if err != nil {
		return fmt.Errorf("demo: tenant: %w", err)
	}
	md, err := d.IdP.Metadata()
	if err != nil {
		return err
	}
	idpConf, err := auth.ParseIdPMetadata(md, "", now)
	if err != nil {
		return err
	}
	t.IdP, t.UpdatedAt = idpConf, now
	if err := s.Store.UpdateTenant(ctx, t); err != nil {
		return fmt.Errorf("demo: tenant IdP: %w", err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/t/"+TenantID+"/saml/metadata", nil))
	if rec.Code != http.StatusOK {
		return fmt.Errorf("demo: SP metadata: %d %s", rec.Code, rec.Body)
	}
	if err := d.IdP.AddServiceProvider(TenantID, rec.Body.Bytes()); err != nil {
		return err
	}
	if _, err := s.Store.SCIMTokenName(ctx, TenantID, secret.HashToken(d.SCIMToken)); errors.Is(err, store.ErrNotFound) {
		if err := s.Store.AddSCIMToken(ctx, TenantID, fmt.Sprintf("demo-%d", now.Unix()), secret.HashToken(d.SCIMToken), now); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	for _, u := range Users {
		if err := d.IdP.AddUser(u.Login, u.Email, u.Password, []string{u.Group}); err != nil {
			return err
		}
		if err := ensureDirectoryUser(ctx, s.Store, u, now); err != nil {
			return fmt.Errorf("demo: user %s: %w", u.Email, err)
		}
	}
	return nil
}

func ensureDirectoryUser(ctx context.Context, st store.Store, u User, now time.Time) error {
	du, err := st.UserByName(ctx, TenantID, u.Email)
	if errors.Is(err, store.ErrNotFound) {
		attrs, _ := json.Marshal(map[string]any{"userName": u.Email, "displayName": u.Login, "active": true,
			"emails": []map[string]any{{"value": u.Email, "primary": true}}})
		du = &store.User{Tenant: TenantID, ID: "demo-" + u.Login, UserName: u.Email, DisplayName: u.Login, Active: true,
			Attributes: attrs, CreatedAt: now, UpdatedAt: now}
		err = st.CreateUser(ctx, du)
	}
	if err != nil {
		return err
	}
	groups, _, err := st.ListGroups(ctx, TenantID, store.ListQuery{Attr: "displayName", Value: u.Group, Count: 1})
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return st.CreateGroup(ctx, &store.Group{Tenant: TenantID, ID: "demo-" + u.Group, DisplayName: u.Group,
			Members: []string{du.ID}, Attributes: []byte(`{}`), CreatedAt: now, UpdatedAt: now})
	}
	return nil
}

func (d *Demo) print(w io.Writer, dir string, agentPort int) {
	t := d.BaseURL + "/t/" + TenantID
	fmt.Fprintf(w, "\nVigie platform demo — serving on %s (data in %s)\n\n", d.BaseURL, dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"Tenant", TenantID},
		{"Sign-in (agent starts it)", t + "/oauth/authorize?response_type=code&client_id=" + auth.ClientID + "&redirect_uri=http://127.0.0.1:PORT/callback&code_challenge=…&code_challenge_method=S256&state=…"},
		{"OAuth metadata", d.BaseURL + "/.well-known/oauth-authorization-server/t/" + TenantID},
		{"JWKS", t + "/.well-known/jwks.json"},
		{"SAML SP metadata", t + "/saml/metadata"},
		{"Demo IdP metadata", d.BaseURL + "/idp/metadata"},
		{"SCIM base", t + "/scim/v2  (Authorization: Bearer " + d.SCIMToken + ")"},
		{"Admin API", d.BaseURL + "/api/v1/tenants  (Authorization: Bearer " + d.AdminToken + ")"},
		{"Gateway (proxy)", d.GatewayAddr + "  (Proxy-Authorization: Bearer <access token>; metrics at " + d.BaseURL + "/metrics)"},
		{"CA bundle", t + "/ca.pem  (trust it to accept inspected HTTPS)"},
		{"Revocation feed", d.BaseURL + "/api/v1/revocations?after=0&wait=30s  (Authorization: Bearer " + d.FeedToken + ")"},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nDemo users (sign in at the demo IdP's form):")
	for _, u := range Users {
		fmt.Fprintf(w, "  %-6s password %-14s NameID %-20s group %s\n", u.Login, u.Password, u.Email, u.Group)
	}
	fmt.Fprintf(w, "\nTry: curl -s -H 'Authorization: Bearer %s' %s/api/v1/tenants/%s/users\n", d.AdminToken, d.BaseURL, TenantID)
	agent := fmt.Sprintf("127.0.0.1:%d", agentPort)
	fmt.Fprintf(w, `
The agent (go tool task demo starts one; or: agent run --user-mode --config %s):
  1. Sign in: open http://%s/login and sign in as alice (or bob).
  2. Browse through it: give your browser the PAC URL http://%s/proxy.pac
     (or the proxy %s), or: curl -x http://%s http://example.com/
     The gateway inspects HTTPS with the tenant CA: trust %s/t/%s/ca.pem, or
     curl --cacert <that file> -x http://%s https://example.com/
  3. See yourself in the gateway's access log:
     curl -s -H 'Authorization: Bearer %s' '%s/api/v1/tenants/%s/access?limit=10'
  State: agent status --config %s (or http://%s/status)
`, d.AgentConfig, agent, agent, agent, agent, d.BaseURL, TenantID, agent, d.AdminToken, d.BaseURL, TenantID, d.AgentConfig, agent)
	fmt.Fprintln(w, strings.Repeat("-", 60))
}
