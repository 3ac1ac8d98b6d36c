package server

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"vigie/certs"
	"vigie/platform/policy"
	"vigie/platform/secret"
	"vigie/platform/store"
)

// handleCABundle publishes a tenant's inspection CAs (PEM), every one an
// agent must trust now or soon: the agent installs them.
func (s *Server) handleCABundle(w http.ResponseWriter, r *http.Request) {
	cas, err := s.Store.CAs(r.Context(), r.PathValue("tenant"))
	if err != nil || len(cas) == 0 {
		http.Error(w, "no CA for this tenant", http.StatusNotFound)
		return
	}
	recs := make([]certs.Record, len(cas))
	for i, ca := range cas {
		recs[i] = certs.Record{ID: ca.ID, CertPEM: []byte(ca.CertPEM), CreatedAt: ca.CreatedAt, ActiveAt: ca.ActiveAt, RetiredAt: ca.RetiredAt, RemoveAt: ca.RemoveAt}
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(certs.Bundle(recs, s.now()))
}

// handleSignIn is where the gateway sends a page load without a valid
// token: the user's agent does the signing in (it holds the PKCE verifier
// and the loopback callback), so the page hands over to it.
func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.Tenant(r.Context(), r.PathValue("tenant")); err != nil {
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return
	}
	ret := r.URL.Query().Get("return")
	if u, err := url.Parse(ret); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		ret = ""
	}
	// The agent serves on 3129 unless configured otherwise; the gateway
	// passes on the port the agent names (a port number, nothing else: it
	// is checked again here, the query being anyone's to write).
	port := "3129"
	if p := r.URL.Query().Get("agent_port"); p != "" {
		if n, err := strconv.Atoi(p); err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p {
			port = p
		}
	}
	agent := "http://127.0.0.1:" + port + "/login?return=" + url.QueryEscape(ret)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	signInTmpl.Execute(w, struct{ Agent, Return string }{agent, ret})
}

var signInTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie — sign in to continue</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#222}</style>
</head><body><h1>Sign in to continue</h1>
<p>Your organisation protects web access with Vigie, and your sign-in has ended.</p>
<p><a href="{{.Agent}}">Sign in with your organisation's account</a>{{if .Return}}, then you will be taken back to <code>{{.Return}}</code>{{end}}.</p>
</body></html>
`))

// requireToken protects an operator endpoint with the admin token.
func requireToken(hash string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !secret.BearerMatches(r.Header.Get("Authorization"), hash) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigie-admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ensureCategories stores the shipped category list when the store has
// none; a list an operator uploaded is kept.
func ensureCategories(ctx context.Context, st store.Store, now time.Time) error {
	_, _, err := st.Categories(ctx)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	cats, err := policy.ParseCategories(policy.ShippedCategories)
	if err != nil {
		return err
	}
	return st.PutCategories(ctx, cats.Version, policy.ShippedCategories, now)
}
