// Package proxy is the agent's local forward proxy (DESIGN.md flow 4): it
// listens on loopback only, attributes every connection to the OS user who
// owns the client socket, asks the tenant's PAC where each request goes, and
// connects DIRECT, through another proxy, or through the tenant's gateway,
// attaching that user's bearer token for the gateway and for nothing else.
// On the same port it serves the browsers' proxy.pac, the login callback and
// the local status API.
//
// It does not decide who is logged in (package session), whether the
// gateway is up (package health) or what the configuration is (package
// sync): it asks them through Options.
package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"vigie/agent/identity"
	"vigie/pac"
)

// Routing is what the continuity state machine lets the proxy do for a
// user right now.
type Routing int

const (
	UsePAC    Routing = iota // normal: the PAC decides
	AllDirect                // fail-open or captive portal: everything DIRECT
	Refuse                   // fail-closed: nothing leaves
)

// Config is the part of the tenant's signed configuration the proxy uses.
// Immutable once handed over.
type Config struct {
	Tenant  string
	Gateway string      // the tenant gateway's host:port: the only place tokens go
	PAC     *pac.Script // nil: everything to the gateway
}

// Tokens is the session manager, as the proxy needs it.
type Tokens interface {
	// Token returns the user's valid access token, or an error when the
	// user must log in; it never waits on the network.
	Token(userID string) (string, error)
	// BeginLoginReturn starts the user's login and returns the URL to open.
	BeginLoginReturn(userID, returnURL string) (string, error)
	// Callback completes a login for the user who owns the request's socket.
	Callback(w http.ResponseWriter, r *http.Request, userID string)
	// Logout ends the user's session (and revokes it at the platform).
	Logout(ctx context.Context, userID string) error
}

// Options configures a Proxy.
type Options struct {
	// Owner returns the OS user of a client connection (client is the
	// connection's remote address, server the listener's).
	Owner func(client, server netip.AddrPort) (identity.User, error)
	// OnlyUser, when set, is the only user served (--user-mode); connections
	// of anyone else are refused.
	OnlyUser string
	Tokens   Tokens
	// Config returns the current configuration (it changes live).
	Config func() *Config
	// Routing returns what the continuity state allows for a user.
	Routing func(userID string) Routing
	// Status serves GET /status (the local status API); the proxy adds the
	// requesting user's identity to the request context (UserFrom).
	Status http.Handler
	// Dial connects to origins and proxies. Default: net.Dialer, 10 s.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Port is the port the agent serves on, which it tells the gateway
	// (for the sign-in page's link to /login). 0: not told.
	Port int
	// ProxyRoots verifies the certificates of HTTPS proxies (a PAC's
	// "HTTPS host:port"). Default: the system's roots.
	ProxyRoots *x509.CertPool
	// HandshakeTimeout bounds how long a proxy takes to open a tunnel (its
	// TLS handshake, its answer to a CONNECT, a SOCKS exchange): a proxy
	// that accepts connections and answers nothing has failed, and the
	// next route is tried. Default 30 s.
	HandshakeTimeout time.Duration
	// BadProxyTTL is how long a proxy that failed is skipped, as browsers
	// do. Default 5 minutes.
	BadProxyTTL time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Proxy is the local proxy.
type Proxy struct {
	o     Options
	gp    *goproxy.ProxyHttpServer
	local *http.ServeMux

	badMu sync.Mutex
	bad   map[string]time.Time // proxy address → skipped until

	transports   sync.Map // upstream proxy address ("" for DIRECT) → *http.Transport
	counters     Counters
	tunnelAction *goproxy.ConnectAction // handleConnect's answer to the CONNECTs it lets through
}

// New builds the proxy.
func New(o Options) (*Proxy, error) {
	if o.Owner == nil || o.Tokens == nil || o.Config == nil || o.Routing == nil {
		return nil, errors.New("proxy: Owner, Tokens, Config and Routing are required")
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.BadProxyTTL <= 0 {
		o.BadProxyTTL = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Proxy{o: o, bad: map[string]time.Time{}, local: http.NewServeMux()}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)
	gp.KeepAcceptEncoding = true
	// CONNECTs are dialled and relayed by p.tunnel (ConnectHijack); should
	// one ever reach goproxy's own tunnel, it is dialled the same way, and
	// never through $HTTPS_PROXY (goproxy's default ConnectDial).
	p.tunnelAction = &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: p.tunnel}
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = p.dialConnect
	gp.ConnectionErrHandler = p.connectFailed
	gp.OnRequest().HandleConnectFunc(p.handleConnect)
	gp.OnRequest().DoFunc(p.handleRequest)
	gp.NonproxyHandler = p.local
	p.gp = gp
	p.registerLocal()
	return p, nil
}

type userKey struct{}

// UserFrom returns the OS user of a request the proxy handled.
func UserFrom(ctx context.Context) (identity.User, bool) {
	u, ok := ctx.Value(userKey{}).(identity.User)
	return u, ok
}

// ServeHTTP refuses connections whose user is unknown (or, in user mode,
// someone else) and hands the request to goproxy (which sends origin-form
// requests to the local endpoints).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cu, _ := r.Context().Value(connUserKey{}).(*connUser)
	if cu == nil {
		http.Error(w, "Vigie agent: serve with Proxy.ConnContext", http.StatusInternalServerError)
		return
	}
	cu.resolve(p.o.Owner)
	if cu.err != nil {
		p.o.Logger.Warn("proxy: cannot attribute a connection; refused", "remote", r.RemoteAddr, "err", cu.err)
		http.Error(w, "Vigie agent: cannot tell which user this connection belongs to", http.StatusForbidden)
		return
	}
	if p.o.OnlyUser != "" && cu.user.ID != p.o.OnlyUser {
		http.Error(w, "Vigie agent: this agent serves another user (user mode)", http.StatusForbidden)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, cu.user))
	if r.Method == http.MethodConnect {
		p.gp.ServeHTTP(connectWriter{responseWriter{w}}, r)
		return
	}
	p.gp.ServeHTTP(responseWriter{w}, r)
}

// connUser is the owner of a connection, resolved once, on its first
// request: every request on it is that user's. (Resolving by address for
// each request would be open to another user rebinding the port after the
// connection closed; while the agent holds the connection open, its
// addresses are its own.) The lookup is not done when the connection is
// accepted because http.Server calls ConnContext in its accept loop, which
// would make every new connection wait for the lookups of those before it.
type connUser struct {
	once           sync.Once
	client, server netip.AddrPort
	user           identity.User
	err            error
}

func (cu *connUser) resolve(owner func(client, server netip.AddrPort) (identity.User, error)) {
	cu.once.Do(func() {
		if cu.err == nil {
			cu.user, cu.err = owner(cu.client, cu.server)
		}
	})
}

type connUserKey struct{}

// ConnContext records the connection's addresses (for
// http.Server.ConnContext); its owner is looked up on its first request.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	cu := &connUser{}
	client, err1 := netip.ParseAddrPort(c.RemoteAddr().String())
	server, err2 := netip.ParseAddrPort(c.LocalAddr().String())
	if err := errors.Join(err1, err2); err != nil {
		cu.err = fmt.Errorf("proxy: connection addresses: %w", err)
	}
	cu.client, cu.server = unmap(client), unmap(server)
	return context.WithValue(ctx, connUserKey{}, cu)
}

// Serve serves on the listeners (loopback only: the caller opens them with
// Listen) until ctx ends.
func (p *Proxy) Serve(ctx context.Context, lns ...net.Listener) error {
	srv := &http.Server{Handler: p, ConnContext: p.ConnContext, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(p.o.Logger.Handler(), slog.LevelDebug)}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// Listen opens the agent's listeners on 127.0.0.1 and ::1 at port; a
// machine without IPv6 gets the IPv4 one only. Nothing else: the proxy is
// for this machine's users.
func Listen(port int) ([]net.Listener, error) {
	ln4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on 127.0.0.1:%d: %w", port, err)
	}
	lns := []net.Listener{ln4}
	if port == 0 {
		port = ln4.Addr().(*net.TCPAddr).Port
	}
	if ln6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
		lns = append(lns, ln6)
	}
	return lns, nil
}

func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
