package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vigie/platform/policy"
	"vigie/platform/secret"
	"vigie/platform/store"
)

// Options configures a Gateway.
type Options struct {
	Store  store.Store
	Sealer *secret.Sealer // opens the tenants' CA keys
	// BaseURL is the platform's public URL: tokens' issuer and audience
	// derive from it, and sign-in redirects point at it.
	BaseURL string
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
	// RootCAs verifies origin certificates. Default: the system's.
	RootCAs *x509.CertPool
	// Dial connects to origins. Default: a net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Leeway tolerates clock skew on token expiry. Default 30 s.
	Leeway time.Duration
	// FeedInterval is how often the node reads the revocation feed: the
	// bound on how long a revocation or a policy change takes to apply.
	// Default 500 ms.
	FeedInterval time.Duration
	// AuthCacheSize bounds the verified-token cache. Default 100,000.
	AuthCacheSize int
	// LogQueue, LogBatch and LogFlush shape the access-log writer: at most
	// LogQueue records wait (beyond, they are dropped and counted); they are
	// written LogBatch at a time, or every LogFlush. Defaults 20,000, 500, 1 s.
	LogQueue int
	LogBatch int
	LogFlush time.Duration
	// RequestTimeout bounds waiting for an origin's response headers.
	// Default 60 s.
	RequestTimeout time.Duration
	// SilentTimeout is how long a client may stay silent after the gateway
	// accepts its CONNECT: net/http clears deadlines when the tunnel takes
	// the connection over, and a client that never speaks would hold it
	// forever. Default 30 s.
	SilentTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's header section (inside
	// an inspected tunnel, the TLS handshake too). Default 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a client's keep-alive connection, or an
	// inspected tunnel, may wait for its next request. Default 2 min.
	IdleTimeout time.Duration
	// UnauthenticatedForBenchmarks serves everyone as an anonymous user of
	// BenchmarkTenant without looking at tokens: the benchmarks compare the
	// cost of authentication with it. Never set it in a deployment.
	UnauthenticatedForBenchmarks bool
	BenchmarkTenant              string
}

// Gateway is one gateway node.
type Gateway struct {
	st        store.Store
	seal      *secret.Sealer
	base      string
	now       func() time.Time
	log       *slog.Logger
	leeway    time.Duration
	feedEvery time.Duration

	proxy     *goproxy.ProxyHttpServer
	transport *http.Transport
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)

	authCache     *authCache
	revs          *revocations
	tenants       tenantCache
	minters       minterCache
	cats          atomic.Pointer[policy.Categories]
	cursor        atomic.Int64 // feed position
	conns         *connTracker
	access        *accessLog
	names         *userNames
	m             *metrics
	reg           *prometheus.Registry
	anonymous     *identity // UnauthenticatedForBenchmarks
	silentTimeout time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
}

// New builds a gateway node; Run must run for it to follow the feed and
// write its access log.
func New(o Options) (*Gateway, error) {
	if o.Store == nil || o.Sealer == nil || o.BaseURL == "" {
		return nil, errors.New("gateway: Store, Sealer and BaseURL are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	if o.FeedInterval <= 0 {
		o.FeedInterval = 500 * time.Millisecond
	}
	if o.AuthCacheSize <= 0 {
		o.AuthCacheSize = 100_000
	}
	if o.LogQueue <= 0 {
		o.LogQueue = 20_000
	}
	if o.LogBatch <= 0 {
		o.LogBatch = 500
	}
	if o.LogFlush <= 0 {
		o.LogFlush = time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.SilentTimeout <= 0 {
		o.SilentTimeout = 30 * time.Second
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	g := &Gateway{st: o.Store, seal: o.Sealer, base: o.BaseURL, now: o.Now, log: o.Logger, leeway: o.Leeway,
		feedEvery: o.FeedInterval, dial: o.Dial, authCache: newAuthCache(o.AuthCacheSize), revs: newRevocations(),
		tenants: tenantCache{m: map[string]*tenantState{}}, minters: minterCache{m: map[string]*tenantMinter{}},
		conns: newConnTracker(), names: newUserNames(o.Store), reg: prometheus.NewRegistry(), silentTimeout: o.SilentTimeout,
		headerTimeout: o.ReadHeaderTimeout, idleTimeout: o.IdleTimeout}
	g.m = newMetrics(g.reg)
	if o.UnauthenticatedForBenchmarks {
		g.anonymous = &identity{tenant: o.BenchmarkTenant, user: "anonymous", session: "anonymous"}
	}
	g.access = newAccessLog(o.Store, o.LogQueue, o.LogBatch, o.LogFlush, o.Logger, g.m, o.Now)
	g.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigie_gateway_log_queue_depth",
		Help: "Access-log records waiting to be written."}, func() float64 { return float64(len(g.access.ch)) }))
	g.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigie_gateway_open_connections",
		Help: "Client connections open, tunnels included."}, func() float64 { return float64(g.conns.open()) }))

	// Origins are verified against the system roots (goproxy's default
	// transport skips verification: never for a gateway).
	g.transport = &http.Transport{
		DialContext:           g.dial,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   32,
		ForceAttemptHTTP2:     false,
		Proxy:                 nil, // origins directly: the gateway is the proxy
	}
	p := goproxy.NewProxyHttpServer()
	p.Logger = slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)
	p.Tr = g.transport
	p.KeepAcceptEncoding = true
	p.ConnectDial = nil
	p.ConnectDialWithReq = g.dialTunnel
	p.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "This is the Vigie gateway, a forward proxy: send absolute-form requests or CONNECT.", http.StatusBadRequest)
	})
	p.OnRequest().HandleConnectFunc(g.handleConnect)
	p.OnRequest().DoFunc(g.handleRequest)
	p.OnResponse().DoFunc(g.handleResponse)
	g.proxy = p
	return g, nil
}

// Handler is the proxy, for an http.Server whose ConnContext is
// g.ConnContext and whose listener is wrapped by g.Listener.
func (g *Gateway) Handler() http.Handler { return g.proxy }

// MetricsHandler serves the node's Prometheus metrics.
func (g *Gateway) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{})
}

// maxHeaderBytes bounds a request's header section; beyond, net/http
// answers 431.
const maxHeaderBytes = 32 << 10

// httpServer serves h with the limits on header size and slow or idle
// clients that every request gets: on the gateway's listener and inside
// inspected tunnels.
func (g *Gateway) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: g.headerTimeout,
		IdleTimeout:       g.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// Serve runs the proxy on ln until ctx ends, with limits on header size and
// slow clients, then shuts down, closing tunnels.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := g.httpServer(g.Handler())
	srv.ConnContext = g.ConnContext
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(g.Listener(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
		g.conns.closeAll() // hijacked tunnels are not the server's to close
		<-errc
		return nil
	}
}

// Run follows the revocation feed and writes the access log until ctx
// ends; then it flushes what is queued.
func (g *Gateway) Run(ctx context.Context) error {
	go g.access.run(ctx)
	if err := g.catchUp(ctx); err != nil {
		g.log.Error("gateway: reading the feed", "err", err)
	}
	t := time.NewTicker(g.feedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.access.wait()
			return nil
		case <-t.C:
			if err := g.follow(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("gateway: reading the feed", "err", err)
			}
		}
	}
}

// hostOnly lower-cases a host[:port] and drops the port and brackets.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// isNavigation says whether a request is a page load, which gets a redirect
// to sign in rather than a 407 the browser would show as an error.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (g *Gateway) decide(ctx context.Context, ts *tenantState, id *identity, host string) policy.Decision {
	var groups []string
	if id != nil {
		groups = id.groups
	}
	return ts.policy.Decide(policy.Request{Host: host, Groups: groups, Categories: g.categories(ctx).Of(host)})
}

// record fills the fields of an access-log record that every kind shares.
func (g *Gateway) record(id *identity, r *http.Request, host string) *store.AccessRecord {
	rec := &store.AccessRecord{At: g.now(), Host: host, Method: r.Method, Client: r.RemoteAddr}
	if id != nil {
		rec.Tenant, rec.UserID, rec.Device, rec.SessionID = id.tenant, id.user, id.device, id.session
	}
	return rec
}

// countingConn counts the bytes of an uninspected tunnel and logs the
// tunnel when it closes.
type countingConn struct {
	net.Conn
	in, out atomic.Int64 // in: from the client (written to the origin)
	closed  atomic.Bool
	done    func(c *countingConn)
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.done(c)
	}
	return err
}

type tunnelKey struct{}

// tunnelInfo rides on the CONNECT request's context from the CONNECT
// handler to the dialer of an uninspected tunnel.
type tunnelInfo struct {
	rec   *store.AccessRecord
	start time.Time
}

// dialTunnel connects an uninspected tunnel to its origin, counting bytes.
func (g *Gateway) dialTunnel(r *http.Request, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := g.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	info, _ := r.Context().Value(tunnelKey{}).(*tunnelInfo)
	if info == nil {
		return conn, nil
	}
	g.m.tunnels.Inc()
	return &countingConn{Conn: conn, done: func(c *countingConn) {
		g.m.tunnels.Dec()
		info.rec.BytesIn, info.rec.BytesOut = c.in.Load(), c.out.Load()
		info.rec.Duration = g.now().Sub(info.start)
		g.access.add(info.rec)
	}}, nil
}

// upgradeCounter is the body of a 101 (WebSocket) response: the
// connection to the origin, which goproxy reads (to the client) and writes
// (from the client) until either side ends. It counts both ways and calls
// done once, when reading ends (an error: goproxy closes the connection
// under it rather than call Close) or at Close.
type upgradeCounter struct {
	rwc  io.ReadWriteCloser
	out  int64 // only the goroutine that copies to the client reads
	in   atomic.Int64
	done func(out, in int64)
	once atomic.Bool
}

func (u *upgradeCounter) Read(p []byte) (int, error) {
	n, err := u.rwc.Read(p)
	u.out += int64(n)
	if err != nil {
		u.finish()
	}
	return n, err
}

func (u *upgradeCounter) Write(p []byte) (int, error) {
	n, err := u.rwc.Write(p)
	u.in.Add(int64(n))
	return n, err
}

func (u *upgradeCounter) Close() error {
	err := u.rwc.Close()
	u.finish()
	return err
}

func (u *upgradeCounter) finish() {
	if u.once.CompareAndSwap(false, true) {
		u.done(u.out, u.in.Load())
	}
}

// bodyCounter counts a body's bytes and calls done once, at EOF or Close.
type bodyCounter struct {
	io.ReadCloser
	n    int64
	done func(n int64)
	once atomic.Bool
}

func (b *bodyCounter) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

func (b *bodyCounter) Close() error {
	err := b.ReadCloser.Close()
	b.finish()
	return err
}

func (b *bodyCounter) finish() {
	if b.once.CompareAndSwap(false, true) {
		b.done(b.n)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf("gateway: "+format, args...) }
