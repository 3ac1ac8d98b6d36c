package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"vigie/platform/policy"
	"vigie/platform/store"
)

// tunnel is an inspected CONNECT: every request read inside the tunnel
// carries it in its context (inspectedKey).
type tunnel struct {
	id        *identity    // nil: no valid token; only a sign-in redirect is served
	ts        *tenantState // the tenant (of the token, or of the hint)
	host      string       // the CONNECT host
	target    string       // the CONNECT target, host:port
	client    string
	agentPort string // the agent's port, for the sign-in redirect (agentPort)
}

type inspectedKey struct{}

// exchange is one request and its response, from handleRequest to the end
// of the response body.
type exchange struct {
	tun      *tunnel
	id       *identity
	rec      *store.AccessRecord
	start    time.Time
	bytesIn  *bodyCounter
	decision string
	counted  bool // the origin's body is counted since the round trip (countBody)
}

func newRef() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// respond builds a local response to r.
func respond(r *http.Request, status int, contentType, body string) *http.Response {
	resp := goproxy.NewResponse(r, contentType, status, body)
	resp.Header.Set("Cache-Control", "no-store")
	return resp
}

func (g *Gateway) proxyAuthRequired(r *http.Request, err error) *http.Response {
	resp := respond(r, http.StatusProxyAuthRequired, goproxy.ContentTypeText,
		"Vigie: sign-in required ("+err.Error()+"). Your Vigie agent signs you in; if this persists, restart it.\n")
	resp.Header.Set("Proxy-Authenticate", `Bearer realm="vigie", error="invalid_token"`)
	return resp
}

// signInRedirect sends a page load to the tenant's sign-in page, which
// hands over to the user's agent, and back to the page afterwards.
func (g *Gateway) signInRedirect(r *http.Request, tenantID, agentPort string) *http.Response {
	u := g.base + "/t/" + url.PathEscape(tenantID) + "/signin?return=" + url.QueryEscape(r.URL.String())
	if agentPort != "" {
		u += "&agent_port=" + agentPort
	}
	resp := respond(r, http.StatusFound, goproxy.ContentTypeText, "Sign in to continue: "+u+"\n")
	resp.Header.Set("Location", u)
	return resp
}

// handleConnect decides a CONNECT: refuse (407 or 403), tunnel untouched,
// or inspect (MITM with the tenant's CA).
func (g *Gateway) handleConnect(host string, pctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := pctx.Req
	ctx := r.Context()
	name := hostOnly(host)
	start := g.now()
	id, err := g.authenticate(ctx, r.Header)
	if err != nil {
		g.m.authFailures.WithLabelValues(authFailureLabel(err)).Inc()
		rec := g.record(nil, r, name)
		rec.Tenant, rec.Decision, rec.Rule, rec.Status = tenantHint(r.Header), "auth", authFailureLabel(err), http.StatusProxyAuthRequired
		// With a tenant named and able to inspect, intercept so that page
		// loads can be redirected to sign in; otherwise 407.
		if hint := tenantHint(r.Header); hint != "" {
			if ts, terr := g.tenant(ctx, hint); terr == nil && ts.minter != nil {
				g.access.add(rec)
				g.conns.expectTraffic(ctx, g.silentTimeout)
				return g.mitm(r, &tunnel{ts: ts, host: name, target: host, client: r.RemoteAddr, agentPort: agentPort(r.Header)}), host
			}
		}
		g.finish(rec, start)
		pctx.Resp = g.proxyAuthRequired(r, err)
		return goproxy.RejectConnect, host
	}
	g.attachConn(ctx, id)
	ts, err := g.tenant(ctx, id.tenant)
	if err != nil {
		g.log.Error("gateway: loading tenant", "tenant", id.tenant, "err", err)
		pctx.Resp = respond(r, http.StatusServiceUnavailable, goproxy.ContentTypeText, "Vigie: tenant configuration unavailable\n")
		return goproxy.RejectConnect, host
	}
	dec := g.decide(ctx, ts, id, name)
	if _, port, err := net.SplitHostPort(host); err != nil || !ts.policy.ConnectPortAllowed(port) {
		dec = policy.Decision{Action: policy.Block, Rule: "connect-port", Reason: "CONNECT to port " + port + " is not allowed"}
	}
	inspect := dec.Inspect && ts.minter != nil
	rec := g.record(id, r, name)
	rec.Rule = dec.Rule
	switch {
	case dec.Action == policy.Block && !inspect:
		rec.Decision, rec.Status, rec.Ref = "block", http.StatusForbidden, newRef()
		g.finish(rec, start)
		pctx.Resp = respond(r, http.StatusForbidden, goproxy.ContentTypeText,
			"Vigie blocked "+name+": "+dec.Reason+" (reference "+rec.Ref+")\n")
		return goproxy.RejectConnect, host
	case !inspect:
		rec.Decision, rec.Status = "tunnel", http.StatusOK
		pctx.Req = r.WithContext(context.WithValue(ctx, tunnelKey{}, &tunnelInfo{rec: rec, start: start}))
		g.conns.expectTraffic(ctx, g.silentTimeout)
		g.m.requests.WithLabelValues("tunnel").Inc()
		return goproxy.OkConnect, host
	}
	g.conns.expectTraffic(ctx, g.silentTimeout)
	return g.mitm(r, &tunnel{id: id, ts: ts, host: name, target: host, client: r.RemoteAddr}), host
}

// mitm inspects a tunnel: the gateway accepts the CONNECT, does TLS with a
// leaf of the tenant's CA, and serves the requests inside with net/http, as
// on its own listener (header-size limit, read-header and idle timeouts,
// 100 Continue), handing each to the proxy. goproxy's own loop for
// inspected tunnels has none of these.
func (g *Gateway) mitm(connect *http.Request, tun *tunnel) *goproxy.ConnectAction {
	getCert := tun.ts.minter.ForHost(tun.host)
	// Not the CONNECT's context, which ends when its handler returns: the
	// tunnel, and the client's connection (closed on revocation or after a
	// WebSocket).
	base := context.WithValue(context.WithValue(context.Background(), inspectedKey{}, tun), connKey{}, connect.Context().Value(connKey{}))
	return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: func(_ *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
		if _, err := io.WriteString(client, "HTTP/1.1 200 OK\r\n\r\n"); err != nil {
			client.Close()
			return
		}
		g.m.inspected.Inc()
		client = &closeHook{Conn: client, closed: g.m.inspected.Dec}
		srv := g.httpServer(http.HandlerFunc(g.serveInspected))
		srv.BaseContext = func(net.Listener) context.Context { return base }
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // HTTP/1.1 only, as offered
		tc := tls.Server(client, &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		// Serve returns at once; the connection is served on until it ends.
		srv.Serve(&oneConnListener{conn: tc, addr: client.LocalAddr()})
	}}
}

// serveInspected hands a request read inside an inspected tunnel to the
// proxy, in the absolute form the proxy expects.
func (g *Gateway) serveInspected(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		http.Error(w, "Vigie: CONNECT inside a tunnel is not supported", http.StatusMethodNotAllowed)
		return
	}
	r.URL.Scheme = "https"
	if r.URL.Host == "" {
		r.URL.Host = r.Host
	}
	if r.URL.Host == "" { // HTTP/1.0 need not name it
		r.URL.Host = r.Context().Value(inspectedKey{}).(*tunnel).target
	}
	g.proxy.ServeHTTP(w, r)
}

// closeHook calls closed once, on the first Close.
type closeHook struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *closeHook) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.closed)
	return err
}

// oneConnListener hands out one connection, then says it is closed, so
// that http.Server.Serve returns, leaving the connection to be served on
// its own goroutine until it ends.
type oneConnListener struct {
	conn net.Conn
	addr net.Addr
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	c := l.conn
	if c == nil {
		return nil, net.ErrClosed
	}
	l.conn = nil
	return c, nil
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.addr }

// handleRequest runs for every absolute-form request and every request
// read inside an inspected tunnel.
func (g *Gateway) handleRequest(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ctx := r.Context()
	start := g.now()
	tun, inTunnel := ctx.Value(inspectedKey{}).(*tunnel)
	host := hostOnly(r.URL.Host)
	if host == "" {
		host = hostOnly(r.Host)
	}
	var id *identity
	var ts *tenantState
	switch {
	case inTunnel && tun.id == nil: // a tunnel opened without a valid token
		ex := &exchange{tun: tun, rec: &store.AccessRecord{At: start, Tenant: tun.ts.id, Host: host, Method: r.Method, Client: tun.client,
			Path: r.URL.Path, Decision: "auth", Rule: "no_token"}, start: start}
		pctx.UserData = ex
		if isNavigation(r) {
			return r, g.signInRedirect(r, tun.ts.id, tun.agentPort)
		}
		return r, respond(r, http.StatusForbidden, goproxy.ContentTypeText, "Vigie: sign-in required\n")
	case inTunnel:
		id, ts = tun.id, tun.ts
		if g.revs.revoked(id) {
			g.m.authFailures.WithLabelValues("revoked").Inc()
			resp := respond(r, http.StatusForbidden, goproxy.ContentTypeText, "Vigie: your session has ended; sign in again\n")
			resp.Header.Set("Connection", "close")
			pctx.UserData = &exchange{rec: g.record(id, r, host), start: start, decision: "auth"}
			return r, resp
		}
		// Decide with the tenant's current policy, not the one of the
		// CONNECT: a kept-alive tunnel outlives policy changes.
		if cur, err := g.tenant(ctx, id.tenant); err == nil {
			ts = cur
		}
	default:
		var err error
		if id, err = g.authenticate(ctx, r.Header); err != nil {
			g.m.authFailures.WithLabelValues(authFailureLabel(err)).Inc()
			rec := g.record(nil, r, host)
			rec.Tenant, rec.Rule = tenantHint(r.Header), authFailureLabel(err)
			pctx.UserData = &exchange{rec: rec, start: start, decision: "auth"}
			if hint := tenantHint(r.Header); hint != "" && isNavigation(r) {
				return r, g.signInRedirect(r, hint, agentPort(r.Header))
			}
			return r, g.proxyAuthRequired(r, err)
		}
		g.attachConn(ctx, id)
		if ts, err = g.tenant(ctx, id.tenant); err != nil {
			g.log.Error("gateway: loading tenant", "tenant", id.tenant, "err", err)
			pctx.UserData = &exchange{rec: g.record(id, r, host), start: start, decision: "error"}
			return r, respond(r, http.StatusServiceUnavailable, goproxy.ContentTypeText, "Vigie: tenant configuration unavailable\n")
		}
	}
	rec := g.record(id, r, host)
	rec.Path = r.URL.Path // inspected or plain: the gateway sees it (a tunnel's is never known)
	if inTunnel {
		rec.Client = tun.client
	}
	ex := &exchange{tun: tun, id: id, rec: rec, start: start}
	pctx.UserData = ex
	// Decide on the Host of the request itself: inside a tunnel it may name
	// another host than the CONNECT did.
	dec := g.decide(ctx, ts, id, host)
	rec.Rule = dec.Rule
	if dec.Action == policy.Block {
		ex.decision, rec.Ref = "block", newRef()
		return r, g.blockPage(r, id, host, dec.Reason, rec.Ref)
	}
	if strings.Contains(r.Header.Get("Via"), "vigie") {
		// This request has been through a Vigie gateway already: a loop
		// (RFC 9110 §7.6.3).
		ex.decision = "error"
		return r, respond(r, http.StatusLoopDetected, goproxy.ContentTypeText, "Vigie: request loop (Via names this gateway)\n")
	}
	if mf := r.Header.Get("Max-Forwards"); mf != "" && (r.Method == http.MethodTrace || r.Method == http.MethodOptions) {
		// RFC 9110 §7.6.2: the last hop answers itself; others decrement.
		n, err := strconv.Atoi(mf)
		if err == nil && n <= 0 {
			ex.decision = "allow"
			resp := respond(r, http.StatusOK, goproxy.ContentTypeText, "")
			resp.Header.Set("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE")
			return r, resp
		}
		if err == nil {
			r.Header.Set("Max-Forwards", strconv.Itoa(n-1))
		}
	}
	ex.decision = "allow"
	stripHopByHop(r.Header)
	// What the agent says to the gateway is for the gateway only.
	r.Header.Del("Proxy-Authorization")
	r.Header.Del(tenantHeader)
	r.Header.Del(agentPortHeader)
	r.Header.Add("Via", "1.1 vigie")
	if r.Body != nil && r.Body != http.NoBody {
		ex.bytesIn = &bodyCounter{ReadCloser: r.Body, done: func(int64) {}}
		r.Body = ex.bytesIn
	}
	pctx.RoundTripper = goproxy.RoundTripperFunc(g.roundTrip)
	return r, nil
}

// roundTrip sends a request to its origin. Failures become pages that say
// what went wrong: a certificate that does not verify is never passed
// through silently.
func (g *Gateway) roundTrip(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Response, error) {
	resp, err := g.transport.RoundTrip(r)
	ex, _ := pctx.UserData.(*exchange)
	if err == nil {
		if ex != nil && resp.Body != nil && resp.Body != http.NoBody {
			// Counted here, not in handleResponse: goproxy keeps the
			// origin's Content-Length only if the response handlers leave
			// the body the round trip returned.
			g.countBody(r.Context(), ex, resp)
			ex.counted = true
		}
		return resp, nil
	}
	var certErr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		if ex != nil {
			ex.decision, ex.rec.Rule, ex.rec.Ref = "block", "origin-certificate", newRef()
			return g.blockPage(r, ex.id, hostOnly(r.URL.Host), "the site's certificate is not valid: "+err.Error(), ex.rec.Ref), nil
		}
	}
	if ex != nil {
		ex.decision = "error"
	}
	status := http.StatusBadGateway
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status = http.StatusGatewayTimeout
	}
	return respond(r, status, goproxy.ContentTypeText, "Vigie could not reach "+r.URL.Host+": "+err.Error()+"\n"), nil
}

// handleResponse finishes every exchange: hop-by-hop headers out, Via in,
// and the access-log record written when the body has been sent.
func (g *Gateway) handleResponse(resp *http.Response, pctx *goproxy.ProxyCtx) *http.Response {
	ex, _ := pctx.UserData.(*exchange)
	if resp == nil {
		resp = respond(pctx.Req, http.StatusBadGateway, goproxy.ContentTypeText, "Vigie: no response from the origin\n")
	}
	if ex != nil && ex.decision == "allow" && resp.StatusCode != http.StatusSwitchingProtocols {
		stripHopByHop(resp.Header) // an origin's; the gateway's own answers keep theirs (Proxy-Authenticate)
		if resp.ContentLength < 0 && resp.Body != nil && resp.Body != http.NoBody {
			// goproxy flushes each write to the client only when the
			// response says chunked, which Go's transport never leaves in
			// the header: without it, a stream (a slow download, long
			// polling) waits in net/http's buffer until it ends. A body of
			// unknown length goes to the client chunked anyway.
			resp.Header.Set("Transfer-Encoding", "chunked")
		}
	}
	resp.Header.Add("Via", "1.1 vigie")
	if ex == nil {
		return resp
	}
	ex.rec.Status = resp.StatusCode
	if ex.decision != "" {
		ex.rec.Decision = ex.decision
	}
	switch {
	case ex.counted:
	case resp.Body == nil || resp.Body == http.NoBody:
		g.finishExchange(ex, 0)
	default:
		g.countBody(pctx.Req.Context(), ex, resp)
	}
	return resp
}

// countBody has the exchange logged, with its sizes, once resp's body has
// been relayed (an upgraded connection: once it ends); ctx is the
// request's.
func (g *Gateway) countBody(ctx context.Context, ex *exchange, resp *http.Response) {
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &bodyCounter{ReadCloser: resp.Body, done: func(n int64) { g.finishExchange(ex, n) }}
		return
	}
	// goproxy relays an upgraded connection only if the body is the
	// connection itself, read and written. It takes the client's connection
	// over for it and never closes it: closed here when the relay ends.
	client, _ := ctx.Value(connKey{}).(net.Conn)
	resp.Body = &upgradeCounter{rwc: rwc, done: func(out, in int64) {
		ex.rec.BytesOut, ex.rec.BytesIn = out, in
		g.finish(ex.rec, ex.start)
		if client != nil {
			client.Close()
		}
	}}
}

// finishExchange logs an exchange whose response body was n bytes.
func (g *Gateway) finishExchange(ex *exchange, n int64) {
	ex.rec.BytesOut = n
	if ex.bytesIn != nil {
		ex.rec.BytesIn = ex.bytesIn.n
	}
	g.finish(ex.rec, ex.start)
}

// finish records an access-log line and its metrics.
func (g *Gateway) finish(rec *store.AccessRecord, start time.Time) {
	d := g.now().Sub(start)
	rec.Duration = d
	g.m.requests.WithLabelValues(rec.Decision).Inc()
	g.m.latency.WithLabelValues(rec.Decision).Observe(d.Seconds())
	g.access.add(rec)
}

// hopByHop are the headers that concern one connection only (RFC 9110
// §7.6.1); those named in Connection are dropped too.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

func stripHopByHop(h http.Header) {
	if strings.EqualFold(h.Get("Upgrade"), "websocket") {
		return // goproxy relays WebSocket upgrades with these headers intact
	}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}
