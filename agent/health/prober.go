package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Prober. Zero values take the defaults.
type Options struct {
	// Target is the gateway's TCP address, host:port with a numeric port
	// (the platform's gateway listens on :3128). Required; change it at run
	// time with SetTarget.
	Target string
	// Interval is the time between probes, up or down: the "retries every
	// 10 seconds" of the design. Default 10 s.
	Interval time.Duration
	// Timeout bounds one TCP connect, and one portal check. At most
	// Interval. Default 3 s, or Interval if that is shorter.
	Timeout time.Duration
	// DownAfter is how many consecutive failed probes take the gateway
	// down; UpAfter how many consecutive successes bring it back. The first
	// result after start or after SetTarget decides alone. Defaults 3 and 2.
	DownAfter int
	UpAfter   int
	// Confirm is the time between probes while the last result disagrees
	// with the verdict: the hysteresis is settled in quick probes rather
	// than whole intervals. Default 500 ms (at most Interval). With the
	// defaults the gateway is declared down at most 11 s (plus the timeout,
	// if its packets are dropped) after it stops answering, and up at most
	// 10.5 s after it answers again.
	Confirm time.Duration
	// PortalURL is fetched, directly and without following redirects, while
	// the gateway is down: an answer of 204 with an empty body means no
	// captive portal; any other answer, a redirect included, means a portal
	// intercepts; a network error means no portal, just no network. Use a
	// plain http:// URL: a portal cannot answer for an https one without a
	// certificate error, which would read as "offline". Empty: no portal
	// detection.
	PortalURL string
	// HTTPClient fetches PortalURL; the Prober uses a copy that does not
	// follow redirects. Default: a client that connects directly with Dial
	// (never through a proxy: the OS proxy settings point at the agent
	// itself), without keep-alives, so that each check sees the network as
	// it is now.
	HTTPClient *http.Client
	// Dial opens the probes' TCP connections (and the default HTTPClient's).
	// Default: a net.Dialer; the Prober bounds each call with Timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger gets one line per transition, nothing per probe. Default
	// slog.Default().
	Logger *slog.Logger
	// Now stamps LastProbe and LastChange. Default time.Now.
	Now func() time.Time
}

// Counters count what a Prober did since it was made.
type Counters struct {
	Probes          uint64 // TCP probes completed, successful or not
	ProbeFailures   uint64 // of those, failed
	Downs           uint64 // verdict changes to down, a first failing result included
	Ups             uint64 // verdict changes from down to up
	PortalChecks    uint64 // fetches of the portal-detection URL
	PortalsDetected uint64 // captive portal flag set
	PortalsCleared  uint64 // captive portal flag cleared
	TargetChanges   uint64 // SetTarget calls that changed the target
}

// ProbeStatus is a snapshot of a Prober's view of the gateway.
type ProbeStatus struct {
	// Target is the address probed.
	Target string
	// GatewayUp is the debounced verdict. Before the first result it is
	// true (see LastProbe), so that the agent routes by the PAC, not DIRECT,
	// while the first probe runs.
	GatewayUp bool
	// Portal is true while a captive portal intercepts the network. It is
	// only looked for while the gateway is down, and false while it is up.
	Portal bool
	// LastProbe is when the last probe result counted; zero before the
	// first one.
	LastProbe time.Time
	// LastChange is when GatewayUp or Portal last changed, or when the
	// first result confirmed GatewayUp; zero before that.
	LastChange time.Time
	// ConsecutiveFailures and ConsecutiveSuccesses are the hysteresis
	// counts: failed (successful) probes in a row up to the last one.
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	// LastError is the error of the most recent failed probe, kept after
	// later successes for diagnostics; "" if no probe has failed yet.
	LastError string
	Counters  Counters
}

// Reason says why traffic bypasses the gateway, in the words the fail-open
// journal records: "" while the gateway is up, "captive portal", or
// "gateway unreachable: <the last probe error>".
func (s ProbeStatus) Reason() string {
	switch {
	case s.GatewayUp:
		return ""
	case s.Portal:
		return "captive portal"
	case s.LastError == "":
		return "gateway unreachable"
	default:
		return "gateway unreachable: " + s.LastError
	}
}

// Prober probes the gateway with TCP connects and keeps a debounced
// verdict, plus the captive-portal flag while the gateway is down. Make one
// with New, start it with Run; Status, Changes and SetTarget are safe to
// call from any goroutine, before, during and after Run.
type Prober struct {
	interval, timeout  time.Duration
	confirm            time.Duration
	downAfter, upAfter int
	portalURL          string
	client             *http.Client
	dial               func(ctx context.Context, network, addr string) (net.Conn, error)
	log                *slog.Logger
	now                func() time.Time

	changes chan struct{} // capacity 1: coalesces notifications
	kick    chan struct{} // capacity 1: SetTarget asks Run for a probe now
	running atomic.Bool

	mu        sync.Mutex
	target    string
	gen       uint64 // counts target changes; a result for an older one is dropped
	v         verdict
	portal    bool
	lastProbe time.Time
	changed   time.Time
	lastErr   string
	counters  Counters
}

// New validates o and returns a Prober that has not probed yet.
func New(o Options) (*Prober, error) {
	if err := checkTarget(o.Target); err != nil {
		return nil, err
	}
	p := &Prober{
		interval:  orDefault(o.Interval, 10*time.Second),
		timeout:   o.Timeout,
		downAfter: orDefault(o.DownAfter, 3),
		upAfter:   orDefault(o.UpAfter, 2),
		confirm:   orDefault(o.Confirm, 500*time.Millisecond),
		portalURL: o.PortalURL,
		dial:      o.Dial,
		log:       o.Logger,
		now:       o.Now,
		changes:   make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		target:    o.Target,
		v:         verdict{up: true},
	}
	if p.timeout == 0 {
		p.timeout = min(3*time.Second, p.interval)
	}
	p.confirm = min(p.confirm, p.interval)
	switch {
	case p.interval < 0 || p.timeout < 0 || p.confirm < 0:
		return nil, errors.New("health: negative interval or timeout")
	case p.timeout > p.interval:
		return nil, fmt.Errorf("health: timeout %v longer than the interval %v", p.timeout, p.interval)
	case p.downAfter < 0 || p.upAfter < 0:
		return nil, errors.New("health: negative DownAfter or UpAfter")
	}
	if p.portalURL != "" {
		if err := parsePortalURL(p.portalURL); err != nil {
			return nil, err
		}
	}
	if p.dial == nil {
		p.dial = (&net.Dialer{}).DialContext
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           p.dial,
			DisableKeepAlives:     true,
			TLSHandshakeTimeout:   p.timeout,
			ResponseHeaderTimeout: p.timeout,
		}}
	}
	p.client = noRedirects(client)
	return p, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// checkTarget accepts host:port with a non-empty host and a numeric port.
func checkTarget(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("health: gateway address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("health: gateway address %q: no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("health: gateway address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

// Kick asks for a probe now (after a network change): the schedule
// restarts from it.
func (p *Prober) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// SetTarget changes the address probed, when the configuration changes it.
// The verdict stays as it is until the first probe of the new address,
// which runs at once and decides alone; the hysteresis counts start again.
// Setting the current target again does nothing.
func (p *Prober) SetTarget(addr string) error {
	if err := checkTarget(addr); err != nil {
		return err
	}
	p.mu.Lock()
	old := p.target
	if addr == old {
		p.mu.Unlock()
		return nil
	}
	p.target = addr
	p.gen++
	p.v = verdict{up: p.v.up}
	p.counters.TargetChanges++
	p.mu.Unlock()
	p.log.Info("health: gateway address changed", "from", old, "to", addr)
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// Changes returns a channel that receives a value after GatewayUp or Portal
// changes (and after the first result). Notifications coalesce: a reader
// that was busy finds one value for any number of changes, and must read
// Status for the current state. It is meant for one reader.
func (p *Prober) Changes() <-chan struct{} { return p.changes }

// Status returns a snapshot of the Prober's view.
func (p *Prober) Status() ProbeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeStatus{
		Target:               p.target,
		GatewayUp:            p.v.up,
		Portal:               p.portal,
		LastProbe:            p.lastProbe,
		LastChange:           p.changed,
		ConsecutiveFailures:  p.v.fails,
		ConsecutiveSuccesses: p.v.oks,
		LastError:            p.lastErr,
		Counters:             p.counters,
	}
}

// Run probes at once, then every Interval (every Confirm while a change
// is pending), and at once after SetTarget, until ctx ends; then it
// returns nil. One Run at a time.
func (p *Prober) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("health: prober already running")
	}
	defer p.running.Store(false)
	t := time.NewTimer(p.interval)
	defer t.Stop()
	for {
		start := p.now()
		p.round(ctx)
		wait := p.interval
		if p.pending() {
			wait = p.confirm
		}
		// Probes start Interval apart, however long one took.
		t.Reset(max(0, wait-p.now().Sub(start)))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
		}
	}
}

// pending reports whether the last result disagrees with the verdict.
func (p *Prober) pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return (p.v.up && p.v.fails > 0) || (!p.v.up && p.v.oks > 0)
}

// round is one probe and, when the gateway is down, one portal check.
func (p *Prober) round(ctx context.Context) {
	p.mu.Lock()
	target, gen := p.target, p.gen
	p.mu.Unlock()

	err := p.probe(ctx, target)
	if ctx.Err() != nil {
		return // stopping: the failure is ours, not the gateway's
	}
	if !p.settle(gen, err) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	ans, desc := checkPortal(cctx, p.client, p.portalURL)
	cancel()
	if ctx.Err() != nil {
		return
	}
	p.settlePortal(gen, ans, desc)
}

// probe opens and closes one TCP connection to target.
func (p *Prober) probe(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := p.dial(ctx, "tcp", target)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// settle applies one probe result for target generation gen. It reports
// whether the portal should be checked now: the gateway is down and
// detection is on.
func (p *Prober) settle(gen uint64, err error) (checkNow bool) {
	now := p.now()
	p.mu.Lock()
	p.counters.Probes++
	if err != nil {
		p.counters.ProbeFailures++
	}
	if gen != p.gen {
		p.mu.Unlock()
		return false // a probe of the address before SetTarget
	}
	before := p.v
	p.v = step(p.v, err == nil, p.downAfter, p.upAfter)
	p.lastProbe = now
	if err != nil {
		p.lastErr = err.Error()
	}
	flipped := p.v.up != before.up
	first := !before.probed
	portalGone := p.v.up && p.portal
	if flipped {
		if p.v.up {
			p.counters.Ups++
		} else {
			p.counters.Downs++
		}
	}
	if portalGone {
		p.portal = false
		p.counters.PortalsCleared++
	}
	if flipped || first || portalGone {
		p.changed = now
	}
	v, target, lastErr := p.v, p.target, p.lastErr
	p.mu.Unlock()

	switch {
	case flipped && v.up:
		p.log.Info("health: gateway reachable again", "target", target)
	case flipped:
		p.log.Warn("health: gateway unreachable", "target", target, "failures", v.fails, "err", lastErr)
	case first && v.up:
		p.log.Info("health: gateway reachable", "target", target)
	}
	if portalGone {
		p.log.Info("health: captive portal cleared", "by", "gateway reachable")
	}
	if flipped || first || portalGone {
		p.notify()
	}
	return !v.up && p.portalURL != ""
}

// settlePortal applies one portal check made while the gateway was down.
func (p *Prober) settlePortal(gen uint64, ans portalAnswer, desc string) {
	now := p.now()
	p.mu.Lock()
	p.counters.PortalChecks++
	if gen != p.gen || p.v.up {
		p.mu.Unlock()
		return
	}
	was := p.portal
	p.portal = ans == portalIntercepted
	changed := p.portal != was
	if changed {
		p.changed = now
		if p.portal {
			p.counters.PortalsDetected++
		} else {
			p.counters.PortalsCleared++
		}
	}
	p.mu.Unlock()

	if !changed {
		return
	}
	if ans == portalIntercepted {
		p.log.Warn("health: captive portal detected", "url", p.portalURL, "answer", desc)
	} else {
		p.log.Info("health: captive portal cleared", "by", desc)
	}
	p.notify()
}

func (p *Prober) notify() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}
