package gateway

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"sync"

	"github.com/elazarl/goproxy"

	"vigie/platform/store"
)

// blockPage tells the person what was blocked, why, for whom, and the
// reference that finds the access-log record.
func (g *Gateway) blockPage(r *http.Request, id *identity, host, reason, ref string) *http.Response {
	data := struct{ Host, URL, Reason, User, Device, Ref string }{Host: host, URL: r.URL.String(), Reason: reason, Ref: ref}
	if id != nil {
		data.User, data.Device = g.names.name(r.Context(), id.tenant, id.user), id.device
	}
	var buf bytes.Buffer
	blockTmpl.Execute(&buf, data)
	resp := respond(r, http.StatusForbidden, goproxy.ContentTypeHtml, buf.String())
	resp.Header.Set("Content-Type", "text/html; charset=utf-8")
	resp.Header.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	resp.Header.Set("X-Vigie-Reference", ref)
	return resp
}

var blockTmpl = template.Must(template.New("block").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Blocked by Vigie — {{.Host}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}dt{font-weight:600}code{font-size:1.1em}</style>
</head><body><h1>This page is blocked</h1>
<p>Your organisation's web policy does not allow <strong>{{.Host}}</strong>.</p>
<dl><dt>Address</dt><dd>{{.URL}}</dd><dt>Why</dt><dd>{{.Reason}}</dd>
{{if .User}}<dt>For</dt><dd>{{.User}}{{if .Device}} on device {{.Device}}{{end}}</dd>{{end}}
<dt>Reference</dt><dd><code>{{.Ref}}</code> — give it to your IT team if you think this is a mistake.</dd></dl>
</body></html>
`))

// userNames shows a user's userName on block pages, cached per node.
type userNames struct {
	st store.Store
	m  sync.Map // tenant|id → name
}

func newUserNames(st store.Store) *userNames { return &userNames{st: st} }

func (n *userNames) name(ctx context.Context, tenant, id string) string {
	if v, ok := n.m.Load(tenant + "|" + id); ok {
		return v.(string)
	}
	u, err := n.st.User(ctx, tenant, id)
	if err != nil {
		return id
	}
	n.m.Store(tenant+"|"+id, u.UserName)
	return u.UserName
}
