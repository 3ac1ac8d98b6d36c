package proxy

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"vigie/pac"
)

// routes returns where a request may go, in order of preference.
//
// Chromium never asks a PAC about localhost, loopback or link-local
// destinations: they go DIRECT. Then the continuity state: fail-open and
// captive portals go DIRECT. Otherwise the PAC decides; without a PAC, or
// when it fails, everything goes to the gateway — never DIRECT by accident,
// which would bypass filtering. Fail-closed refuses what would go to the
// gateway (nil, false when nothing is left) but lets through what the
// tenant's PAC already sends DIRECT, such as the intranet. Proxies that
// failed recently are moved to the end, as browsers do.
func (p *Proxy) routes(ctx context.Context, userID, rawURL, host string) ([]pac.Route, bool) {
	if implicitDirect(host) {
		return []pac.Route{{Kind: pac.Direct}}, true
	}
	mode := p.o.Routing(userID)
	if mode == AllDirect {
		return []pac.Route{{Kind: pac.Direct}}, true
	}
	cfg := p.o.Config()
	var routes []pac.Route
	if cfg != nil && cfg.PAC != nil {
		res, err := cfg.PAC.Eval(ctx, rawURL, host)
		switch {
		case err != nil:
			p.o.Logger.Warn("proxy: PAC evaluation failed; using the gateway", "host", host, "err", err)
		case len(res.Routes) == 0:
			p.o.Logger.Warn("proxy: PAC result names no route; using the gateway", "host", host, "result", res.Raw)
		default:
			routes = res.Routes
		}
	}
	if routes == nil {
		gw, ok := gatewayRoute(cfg)
		if !ok {
			return nil, false
		}
		routes = []pac.Route{gw}
	}
	if mode == Refuse {
		var kept []pac.Route
		for _, r := range routes {
			if !isGateway(r, cfg) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			return nil, false
		}
		routes = kept
	}
	return p.demoteBad(routes), true
}

func gatewayRoute(cfg *Config) (pac.Route, bool) {
	if cfg == nil || cfg.Gateway == "" {
		return pac.Route{}, false
	}
	host, port, err := net.SplitHostPort(cfg.Gateway)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n > 65535 {
		return pac.Route{}, false
	}
	return pac.Route{Kind: pac.HTTP, Host: host, Port: uint16(n)}, true
}

// isGateway says whether a route is the tenant's gateway: the one place a
// user's token may go. Host names compare without case; nothing else (not
// a different port, not an address the name resolves to) counts.
func isGateway(r pac.Route, cfg *Config) bool {
	if cfg == nil || r.Kind != pac.HTTP && r.Kind != pac.HTTPS {
		return false
	}
	gh, gp, err := net.SplitHostPort(cfg.Gateway)
	return err == nil && strings.EqualFold(strings.Trim(gh, "[]"), r.Host) && gp == strconv.Itoa(int(r.Port))
}

// implicitDirect is Chromium's implicit bypass: localhost, *.localhost,
// loopback and link-local literals.
func implicitDirect(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.Unmap()
		return a.IsLoopback() || a.IsLinkLocalUnicast()
	}
	return false
}

func (p *Proxy) demoteBad(routes []pac.Route) []pac.Route {
	now := p.o.Now()
	p.badMu.Lock()
	defer p.badMu.Unlock()
	var good, bad []pac.Route
	for _, r := range routes {
		if until, ok := p.bad[r.Addr()]; ok && r.Kind != pac.Direct && now.Before(until) {
			bad = append(bad, r)
		} else {
			good = append(good, r)
		}
	}
	return append(good, bad...)
}

func (p *Proxy) markBad(r pac.Route) {
	if r.Kind == pac.Direct {
		return
	}
	p.badMu.Lock()
	p.bad[r.Addr()] = p.o.Now().Add(p.o.BadProxyTTL)
	p.badMu.Unlock()
}

func (p *Proxy) markGood(r pac.Route) {
	p.badMu.Lock()
	delete(p.bad, r.Addr())
	p.badMu.Unlock()
}
