// Package service assembles the agent: enrolment and signed configuration
// (sync), per-user sessions, gateway health and continuity, the local proxy,
// the OS proxy settings and the trust store, and the local status API. Run
// blocks until its context ends, then undoes what it changed on the OS.
//
// It holds no logic of its own beyond wiring and the status report; each
// concern lives in its package.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"vigie/agent/health"
	"vigie/agent/identity"
	"vigie/agent/proxy"
	"vigie/agent/session"
	agentsync "vigie/agent/sync"
	"vigie/agent/sysproxy"
	"vigie/agent/truststore"
	"vigie/pac"
	"vigie/platform/distrib/artifact"
)

// Options are how Run is started.
type Options struct {
	// UserMode serves the current OS user only and changes nothing on the
	// OS: no proxy settings, no trust store.
	UserMode bool
	Logger   *slog.Logger
	Now      func() time.Time
	// HTTPClient talks to the platform. Default: direct (never through the
	// OS proxy, which is the agent itself), one-minute timeout.
	HTTPClient *http.Client
	// OpenBrowser opens a login page for a user (the tray's job; in user
	// mode the desktop's opener).
	OpenBrowser func(userID, url string) error
	// LeaveOS changes nothing on the OS (proxy settings, trust store)
	// while serving every user: for tests, and for machines whose proxy
	// settings are managed otherwise. UserMode implies it.
	LeaveOS bool
	// Dial connects the proxy to origins and proxies. Default net.Dialer;
	// tests send origins to loopback with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Ready, when set, is called with the agent once it serves.
	Ready func(*Agent)
}

// Agent is a running agent, for Ready callers and tests.
type Agent struct {
	cfg      *Config
	o        Options
	syncer   *agentsync.Syncer
	sessions *session.Manager
	prober   atomic.Pointer[health.Prober]
	journal  *health.Journal
	px       *proxy.Proxy
	started  time.Time
	device   string
	// configChanged and netChanged tell keepOS of a new configuration and
	// of a network change.
	configChanged, netChanged chan struct{}
	addr                      string
}

// Addr is the proxy's address on 127.0.0.1.
func (a *Agent) Addr() string { return a.addr }

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg *Config, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil}}
	}
	log := o.Logger
	if err := cfg.validate(o.UserMode); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("agent: state directory: %w", err)
	}
	a := &Agent{cfg: cfg, o: o, started: o.Now(), configChanged: make(chan struct{}, 1), netChanged: make(chan struct{}, 1)}

	// Enrolment, then the signed configuration (from the cache at once, so
	// the agent starts offline).
	dev, err := agentsync.LoadOrEnroll(ctx, cfg.StateDir, cfg.PlatformURL, cfg.Tenant, cfg.EnrollmentSecret, o.HTTPClient)
	if err != nil {
		return fmt.Errorf("agent: enrolment: %w", err)
	}
	a.device = dev.ID
	a.syncer, err = agentsync.New(agentsync.Options{PlatformURL: cfg.PlatformURL, Tenant: cfg.Tenant, DistributionKey: cfg.distributionKey(),
		Device: dev, CacheDir: filepath.Join(cfg.StateDir, "cache"), HTTPClient: o.HTTPClient, Now: o.Now, Logger: log,
		PACOptions: pac.Options{Name: "tenant.pac", Logger: log}})
	if err != nil {
		return err
	}
	lns, err := proxy.Listen(cfg.Port)
	if err != nil {
		return err
	}
	port := lns[0].Addr().(*net.TCPAddr).Port
	a.sessions, err = session.New(session.Options{PlatformURL: cfg.PlatformURL, Tenant: cfg.Tenant, Device: dev.ID,
		RedirectURL: fmt.Sprintf("http://127.0.0.1:%d/callback", port), StateDir: filepath.Join(cfg.StateDir, "sessions"),
		KeyFile: filepath.Join(cfg.StateDir, "session.key"), HTTPClient: o.HTTPClient, Now: o.Now, Logger: log, OpenBrowser: o.OpenBrowser})
	if err != nil {
		return err
	}
	if a.journal, err = health.OpenJournal(filepath.Join(cfg.StateDir, "fail-open.jsonl"), health.JournalOptions{}); err != nil {
		return err
	}
	defer a.journal.Close()

	owner := identity.NewResolver(identity.Options{Now: o.Now, CacheTTL: -1})
	only := ""
	if o.UserMode {
		only = strconv.Itoa(os.Getuid())
		if u, err := user.Current(); err == nil {
			only = u.Uid
		}
	}
	px, err := proxy.New(proxy.Options{
		Owner: owner.Owner, OnlyUser: only, Tokens: a.sessions, Config: a.proxyConfig, Routing: a.routing,
		Status: http.HandlerFunc(a.serveStatus), Now: o.Now, Logger: log, Dial: o.Dial, Port: port,
	})
	if err != nil {
		return err
	}
	a.px = px

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.syncer.Run(gctx) })
	g.Go(func() error { return a.sessions.Run(gctx) })
	g.Go(func() error { return a.follow(gctx) })
	g.Go(func() error { return px.Serve(gctx, lns...) })
	if !o.UserMode && !o.LeaveOS {
		g.Go(func() error { return a.keepOS(gctx, port) })
	}
	log.Info("agent: serving", "addr", lns[0].Addr().String(), "tenant", cfg.Tenant, "device", dev.ID, "user_mode", o.UserMode)
	a.addr = lns[0].Addr().String()
	if o.Ready != nil {
		o.Ready(a)
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// proxyConfig hands the proxy the current signed configuration.
func (a *Agent) proxyConfig() *proxy.Config {
	snap := a.syncer.Current()
	return &proxy.Config{Tenant: a.cfg.Tenant, Gateway: snap.Config.Gateway, PAC: snap.PAC}
}

// routing is the continuity state machine's answer for one user.
func (a *Agent) routing(userID string) proxy.Routing {
	switch a.state(userID).Route() {
	case health.RouteDirect:
		return proxy.AllDirect
	case health.RouteRefuse:
		return proxy.Refuse
	default:
		return proxy.UsePAC
	}
}

func (a *Agent) state(userID string) health.State {
	_, err := a.sessions.Token(userID)
	return health.Compute(a.inputs(err == nil || errors.Is(err, session.ErrRefreshing)))
}

func (a *Agent) inputs(loggedIn bool) health.Inputs {
	in := health.Inputs{GatewayUp: true, LoggedIn: loggedIn, Policy: health.PolicyFailOpen}
	if a.syncer.Current().Config.Continuity == artifact.FailClosed {
		in.Policy = health.PolicyFailClosed
	}
	if p := a.prober.Load(); p != nil {
		st := p.Status()
		in.GatewayUp, in.Portal = st.GatewayUp, st.Portal
	}
	return in
}

// follow keeps the prober on the configured gateway (a new prober when
// the gateway, the probe interval or the portal URL changes) and records,
// in the journal, the periods traffic bypasses it.
func (a *Agent) follow(ctx context.Context) error {
	type probeSpec struct {
		target, portal string
		interval       time.Duration
	}
	var (
		probeChanges <-chan struct{}
		running      probeSpec
		stopProbe    = func() {}
	)
	defer func() { stopProbe() }()
	network := health.NetworkChanges(ctx)
	last := health.State(0)
	for {
		snap := a.syncer.Current()
		want := probeSpec{snap.Config.Gateway, snap.Config.PortalCheckURL, snap.Config.ProbeInterval.D()}
		if want.target != "" && want != running {
			np, err := health.New(health.Options{Target: want.target, Interval: want.interval, PortalURL: want.portal,
				Dial: a.o.Dial, Logger: a.o.Logger, Now: a.o.Now})
			if err != nil {
				a.o.Logger.Error("agent: gateway probe", "err", err)
			} else {
				stopProbe()
				pctx, cancel := context.WithCancel(ctx)
				go np.Run(pctx)
				stopProbe, running = cancel, want
				a.prober.Store(np)
				probeChanges = np.Changes()
			}
		}
		// The journal records the machine-wide state (as for a logged-in
		// user): whether traffic goes to the gateway or around it.
		if st := health.Compute(a.inputs(true)); st != last {
			reason := ""
			if p := a.prober.Load(); p != nil {
				reason = p.Status().Reason()
			}
			if err := a.journal.Record(st, reason, a.o.Now()); err != nil {
				a.o.Logger.Warn("agent: fail-open journal", "err", err)
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.syncer.Changes():
			// The syncer has one reader; pass the news on to keepOS.
			notify(a.configChanged)
		case <-network:
			// Probe now, and check the OS proxy settings (a network
			// change is when other software rewrites them).
			if p := a.prober.Load(); p != nil {
				p.Kick()
			}
			notify(a.netChanged)
		case <-probeChanges:
		}
	}
}

// keepOS points the OS at the agent and installs the tenant CA, keeping
// both applied, and undoes them when the agent stops.
func (a *Agent) keepOS(ctx context.Context, port int) error {
	sp := sysproxy.New(sysproxy.Options{StateDir: filepath.Join(a.cfg.StateDir, "sysproxy"), Logger: a.o.Logger, Now: a.o.Now})
	settings := sysproxy.Settings{PACURL: fmt.Sprintf("http://127.0.0.1:%d/proxy.pac", port), ProxyAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	ts := truststore.Options{StateFile: filepath.Join(a.cfg.StateDir, "truststore.json"), Logger: a.o.Logger}
	install := func() {
		if b := a.syncer.Current().CABundle; len(b) > 0 {
			if err := truststore.Install(b, ts); err != nil {
				a.o.Logger.Error("agent: installing the tenant CA", "err", err)
			}
		}
	}
	install()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.configChanged:
				install()
			}
		}
	}()
	err := sp.Keep(ctx, settings, time.Minute, a.netChanged)
	restore, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rerr := sp.Restore(restore); rerr != nil {
		a.o.Logger.Error("agent: restoring the OS proxy settings", "err", rerr)
	}
	return err
}

// notify sends on a capacity-1 channel without waiting.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
