package proxy

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"vigie/agent/identity"
	"vigie/agent/session"
	"vigie/pac"
)

// connectPlan rides on a CONNECT request's context from handleConnect to
// dialConnect.
type connectPlan struct {
	user   identity.User
	routes []pac.Route
}

type planKey struct{}

func (p *Proxy) handleConnect(host string, pctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := pctx.Req
	u, _ := UserFrom(r.Context())
	name := hostOnly(host)
	routes, ok := p.routes(r.Context(), u.ID, "https://"+host+"/", name)
	if !ok {
		p.counters.Refused.Add(1)
		pctx.Resp = goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusBadGateway,
			"Vigie: the gateway is unreachable and your organisation's policy blocks traffic until it is back.\n")
		return goproxy.RejectConnect, host
	}
	pctx.Req = r.WithContext(context.WithValue(r.Context(), planKey{}, &connectPlan{user: u, routes: routes}))
	return p.tunnelAction, host
}

// connectEstablished opens a tunnel for the client.
const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// tunnel opens and relays the tunnel of a CONNECT that handleConnect let
// through (goproxy's ConnectHijack: the client's connection is the
// agent's from here). The answer to the CONNECT, a 200 or connectFailed's
// refusal, is the first thing written to the client. goproxy's own tunnel
// (ConnectAccept) is not used for its relay: see relay.
//
// The agent serves HTTP/1.1 only, so the connection is a hijacked socket
// (goproxy would give an HTTP/2 stream otherwise).
func (p *Proxy) tunnel(_ *http.Request, client net.Conn, pctx *goproxy.ProxyCtx) {
	target, err := p.dialConnect(pctx.Req, "tcp", withPort(pctx.Req.URL.Host))
	if err != nil {
		p.connectFailed(client, pctx, err)
		client.Close()
		return
	}
	if _, err := io.WriteString(client, connectEstablished); err != nil {
		client.Close()
		target.Close()
		return
	}
	relay(client, target)
}

// withPort adds port 80 to a CONNECT target without a port, as goproxy
// does.
func withPort(hostport string) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil && port != "" {
		return hostport
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
}

// dialConnect opens the tunnel of a CONNECT over the first route that
// works, trying the next on failure. Its errors are dialErrors, which
// connectFailed answers.
func (p *Proxy) dialConnect(r *http.Request, network, addr string) (net.Conn, error) {
	plan, _ := r.Context().Value(planKey{}).(*connectPlan)
	if plan == nil {
		return nil, &dialError{addr, errors.New("proxy: CONNECT without a route")}
	}
	var errs []error
	for _, route := range plan.routes {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.o.HandshakeTimeout)
		c, err := p.dialRoute(ctx, route, addr, p.upstreamHeader(p.o.Config(), route, plan.user))
		cancel()
		if err == nil {
			p.markGood(route)
			p.count(route, true)
			return c, nil
		}
		var rf *refusal
		if errors.As(err, &rf) {
			// The proxy answered: it is up, and its answer stands (a block
			// is not a reason to try DIRECT).
			if rf.code == http.StatusProxyAuthRequired {
				p.startLogin(plan.user, "")
			}
			p.counters.Failed.Add(1)
			return nil, &dialError{addr, err}
		}
		p.markBad(route)
		errs = append(errs, fmt.Errorf("%v: %w", route, err))
	}
	p.counters.Failed.Add(1)
	return nil, &dialError{addr, errors.Join(errs...)}
}

// signInNeeded answers a request the gateway refused for want of a valid
// token.
const signInNeeded = "Vigie: sign-in required. Your Vigie agent has started the sign-in; if no sign-in page opened, open the agent's /login page.\n"

// dialError is a CONNECT that no route could open.
type dialError struct {
	target string
	err    error
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// connectFailed answers a CONNECT that dialConnect could not open. (It is
// also goproxy's ConnectionErrHandler, which goproxy would call for errors
// inside tunnels it relays: those get nothing written, the tunnel's bytes
// are not HTTP.) An upstream proxy's refusal is passed on with its
// explanation, a gateway's 407 as a 403 (the client has nothing to
// authenticate to the agent with; the agent has started the user's
// sign-in), anything else is a 502 saying what failed.
func (p *Proxy) connectFailed(w io.Writer, _ *goproxy.ProxyCtx, err error) {
	var de *dialError
	if !errors.As(err, &de) {
		return
	}
	code, body := http.StatusBadGateway, "Vigie could not reach "+de.target+": "+de.err.Error()+"\n"
	var rf *refusal
	if errors.As(err, &rf) {
		code, body = rf.code, string(rf.body)
		if code == http.StatusProxyAuthRequired {
			code, body = http.StatusForbidden, signInNeeded
		}
	}
	if rw, ok := w.(http.ResponseWriter); ok {
		http.Error(rw, strings.TrimSuffix(body, "\n"), code)
		return
	}
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// upstreamHeader is what a CONNECT or request to a proxy carries: for the
// tenant's gateway in cfg, the user's token (when there is one) and the
// tenant's name; for any other proxy, nothing of the user's.
func (p *Proxy) upstreamHeader(cfg *Config, route pac.Route, u identity.User) http.Header {
	h := http.Header{}
	if !isGateway(route, cfg) {
		return h
	}
	h.Set("X-Vigie-Tenant", cfg.Tenant)
	if p.o.Port != 0 {
		h.Set("X-Vigie-Agent-Port", strconv.Itoa(p.o.Port))
	}
	switch tok, err := p.o.Tokens.Token(u.ID); {
	case err == nil:
		h.Set("Proxy-Authorization", "Bearer "+tok)
	case errors.Is(err, session.ErrRefreshing):
		// The platform is unreachable but the login is not over: asking
		// the user to sign in again would not help.
	default:
		p.startLogin(u, "")
	}
	return h
}

func (p *Proxy) startLogin(u identity.User, ret string) {
	p.counters.LoginsStarted.Add(1)
	if _, err := p.o.Tokens.BeginLoginReturn(u.ID, ret); err != nil {
		p.o.Logger.Warn("proxy: cannot start the login", "user", u.ID, "err", err)
	}
}

// handleRequest routes an absolute-form request.
func (p *Proxy) handleRequest(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	u, _ := UserFrom(r.Context())
	routes, ok := p.routes(r.Context(), u.ID, r.URL.String(), hostOnly(r.URL.Host))
	if !ok {
		p.counters.Refused.Add(1)
		return r, failClosedPage(r)
	}
	pctx.RoundTripper = goproxy.RoundTripperFunc(func(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
		return p.roundTrip(req, u, routes)
	})
	return r, nil
}

// roundTrip sends a plain-HTTP request over the first route that works. A
// request with a body goes on to the next route only when the failed one
// never read any of it: a body cannot be replayed.
func (p *Proxy) roundTrip(r *http.Request, u identity.User, routes []pac.Route) (*http.Response, error) {
	hasBody := r.Body != nil && r.Body != http.NoBody
	var errs []error
	for i, route := range routes {
		// One configuration for the attempt: a token goes on the user's
		// own connections to the gateway it names, even while it changes.
		// What the gateway gets goes on a copy of the request, never on
		// to the next route.
		cfg := p.o.Config()
		req := r
		if up := p.upstreamHeader(cfg, route, u); len(up) > 0 || i > 0 || hasBody {
			req = r.Clone(r.Context())
			maps.Copy(req.Header, up)
		}
		var body *attemptBody
		if hasBody {
			body = &attemptBody{rc: r.Body}
			req.Body = body
		}
		resp, err := p.transport(cfg, route, u.ID).RoundTrip(req)
		if err == nil {
			p.markGood(route)
			p.count(route, false)
			if resp.StatusCode == http.StatusProxyAuthRequired && isGateway(route, cfg) {
				// As for CONNECT: the user signs in to the gateway through
				// the agent, not to the agent.
				resp.Body.Close()
				p.startLogin(u, "")
				return goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusForbidden, signInNeeded), nil
			}
			return resp, nil
		}
		p.markBad(route)
		errs = append(errs, fmt.Errorf("%v: %w", route, err))
		if body != nil && body.end() {
			break
		}
	}
	p.counters.Failed.Add(1)
	return goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusBadGateway,
		"Vigie could not reach "+r.URL.Host+": "+errors.Join(errs...).Error()+"\n"), nil
}

// attemptBody is a request body as one route's attempt sees it. When the
// attempt fails, end tells whether it read any of the body, and stops it
// from reading more (its transport may still hold the request). Close is
// left to the server, which closes every request body: the transport
// closes the body of each request it fails, and the next route needs it.
type attemptBody struct {
	rc io.ReadCloser

	mu   sync.Mutex
	read bool // some of the body was read
	over bool // the attempt failed: no more reads
}

func (b *attemptBody) Read(buf []byte) (int, error) {
	b.mu.Lock()
	if b.over {
		b.mu.Unlock()
		return 0, errAttemptOver
	}
	b.read = true
	b.mu.Unlock()
	return b.rc.Read(buf)
}

func (b *attemptBody) Close() error { return nil }

// end ends a failed attempt and reports whether it read some of the body,
// which then cannot go to another route.
func (b *attemptBody) end() (read bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.over = true
	return b.read
}

var errAttemptOver = errors.New("proxy: the request body went to a route that failed")

// transport returns the pooled transport of a route; for the tenant's
// gateway in cfg, the user's own. A connection to the gateway thus carries one
// user's requests only: the gateway files each connection under the users
// it served, and closes it when one of them is revoked, which must not cut
// another user's requests; and no connection carries two users' tokens.
func (p *Proxy) transport(cfg *Config, route pac.Route, userID string) *http.Transport {
	key := route.String()
	if isGateway(route, cfg) {
		key += " for " + userID
	}
	if t, ok := p.transports.Load(key); ok {
		return t.(*http.Transport)
	}
	t := &http.Transport{DialContext: p.o.Dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 60 * time.Second, DisableCompression: true}
	switch route.Kind {
	case pac.HTTP:
		t.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: route.Addr()})
	case pac.HTTPS:
		t.Proxy = http.ProxyURL(&url.URL{Scheme: "https", Host: route.Addr()})
		// Its TLS dial is to the proxy only: an https origin through it
		// gets its TLS inside the tunnel.
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, p.o.HandshakeTimeout)
			defer cancel()
			return p.dialTLS(ctx, network, addr)
		}
	case pac.SOCKS4, pac.SOCKS5:
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, p.o.HandshakeTimeout)
			defer cancel()
			return p.dialRoute(ctx, route, addr, nil)
		}
	}
	actual, _ := p.transports.LoadOrStore(key, t)
	return actual.(*http.Transport)
}

// failClosedPage explains a fail-closed refusal to a person.
func failClosedPage(r *http.Request) *http.Response {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusBadGateway, "Vigie: gateway unreachable; traffic blocked by policy\n")
	}
	var b strings.Builder
	failClosedTmpl.Execute(&b, r.URL.Host)
	resp := goproxy.NewResponse(r, goproxy.ContentTypeHtml, http.StatusBadGateway, b.String())
	resp.Header.Set("Content-Type", "text/html; charset=utf-8")
	resp.Header.Set("Cache-Control", "no-store")
	return resp
}

var failClosedTmpl = template.Must(template.New("closed").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie — web access paused</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#222}</style></head>
<body><h1>Web access is paused</h1>
<p>Your computer cannot reach your organisation's web gateway right now, and your organisation's policy
is to block web traffic until it can (so that nothing goes out unfiltered).</p>
<p>Vigie checks again every few seconds and <strong>{{.}}</strong> will open as soon as the gateway is back.
If you are on a hotel or guest network, its sign-in page should still open.</p>
</body></html>
`))

// Counters count what the proxy did since it started, for the status API.
type Counters struct {
	Requests      atomic.Uint64 // plain-HTTP requests sent on
	Tunnels       atomic.Uint64 // CONNECT tunnels opened
	Direct        atomic.Uint64 // requests and tunnels that went DIRECT
	Gateway       atomic.Uint64 // … through the tenant's gateway
	OtherProxy    atomic.Uint64 // … through another proxy the PAC named
	Refused       atomic.Uint64 // refused by the fail-closed policy
	Failed        atomic.Uint64 // no route worked, or the proxy refused
	LoginsStarted atomic.Uint64 // logins started for users without a token
}

// CounterValues is a copy of Counters, for JSON.
type CounterValues struct {
	Requests      uint64 `json:"requests"`
	Tunnels       uint64 `json:"tunnels"`
	Direct        uint64 `json:"direct"`
	Gateway       uint64 `json:"gateway"`
	OtherProxy    uint64 `json:"other_proxy"`
	Refused       uint64 `json:"refused"`
	Failed        uint64 `json:"failed"`
	LoginsStarted uint64 `json:"logins_started"`
}

// Counters returns the counts so far.
func (p *Proxy) Counters() CounterValues {
	c := &p.counters
	return CounterValues{c.Requests.Load(), c.Tunnels.Load(), c.Direct.Load(), c.Gateway.Load(), c.OtherProxy.Load(),
		c.Refused.Load(), c.Failed.Load(), c.LoginsStarted.Load()}
}

func (p *Proxy) count(route pac.Route, tunnel bool) {
	if tunnel {
		p.counters.Tunnels.Add(1)
	} else {
		p.counters.Requests.Add(1)
	}
	switch {
	case route.Kind == pac.Direct:
		p.counters.Direct.Add(1)
	case isGateway(route, p.o.Config()):
		p.counters.Gateway.Add(1)
	default:
		p.counters.OtherProxy.Add(1)
	}
}
