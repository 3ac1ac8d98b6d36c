package proxy

import (
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
)

// LocalHeader must be on the local API's state-changing requests (the
// agent CLI sends it): browsers do not send it cross-origin unasked.
const LocalHeader = "X-Vigie-Local"

// registerLocal sets up what the agent serves to the machine's browsers
// and tools on its own port.
func (p *Proxy) registerLocal() {
	p.local.HandleFunc("GET /proxy.pac", p.servePAC)
	p.local.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		p.o.Tokens.Callback(w, r, u.ID)
	})
	p.local.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		to, err := p.o.Tokens.BeginLoginReturn(u.ID, r.URL.Query().Get("return"))
		if err != nil {
			http.Error(w, "Vigie agent: cannot start the sign-in: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, to, http.StatusFound)
	})
	// Logout asks for a header no cross-origin page can send without a
	// CORS preflight the agent never answers: a web page must not be able
	// to sign the user out.
	p.local.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(LocalHeader) == "" {
			http.Error(w, "Vigie agent: POST /logout needs the "+LocalHeader+" header", http.StatusForbidden)
			return
		}
		u, _ := UserFrom(r.Context())
		if err := p.o.Tokens.Logout(r.Context(), u.ID); err != nil {
			http.Error(w, "Vigie agent: signing out: "+err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if p.o.Status != nil {
		p.local.Handle("GET /status", p.o.Status)
	}
	p.local.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		homeTmpl.Execute(w, nil)
	})
}

// servePAC gives browsers a PAC that sends everything to the agent on the
// port they fetched it from, except what Chromium never proxies anyway.
// There is no DIRECT fallback: if the agent stops, traffic must not go out
// unfiltered behind its back.
func (p *Proxy) servePAC(w http.ResponseWriter, r *http.Request) {
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		port = "3129"
	}
	host := "127.0.0.1"
	if h, _, _ := net.SplitHostPort(r.Host); strings.Trim(h, "[]") == "::1" {
		host = "[::1]"
	}
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, `// Vigie agent: every request goes through the local agent, which applies
// your organisation's routing.
function FindProxyForURL(url, host) {
  if (host == "localhost" || shExpMatch(host, "*.localhost") || shExpMatch(host, "127.*") || host == "::1" || host == "[::1]")
    return "DIRECT";
  return "PROXY %s:%s";
}
`, host, port)
}

var homeTmpl = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie agent</title></head>
<body><h1>Vigie agent</h1><p>This is your computer's Vigie agent. <a href="/login">Sign in</a> · <a href="/status">Status</a> · <a href="/proxy.pac">proxy.pac</a></p></body></html>
`))
