package pac

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// systemResolver asks the operating system's resolver.
type systemResolver struct{}

func (systemResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// interfaceAddrs lists the machine's addresses the way Chromium chooses
// myIpAddress's: first the source addresses the routing table picks for the
// public Internet (a UDP "connect" to 8.8.8.8 and to 2001:4860:4860::8888,
// which sends no packet), then the other addresses of the interfaces that are
// up, IPv4 first; link-local addresses only when there is nothing else, and
// loopback never.
func interfaceAddrs() ([]netip.Addr, error) {
	var primary, others, linkLocal []netip.Addr
	for _, probe := range []string{"8.8.8.8:80", "[2001:4860:4860::8888]:80"} {
		if c, err := net.Dial("udp", probe); err == nil {
			if a, ok := netip.AddrFromSlice(c.LocalAddr().(*net.UDPAddr).IP); ok {
				primary = append(primary, a.Unmap())
			}
			c.Close()
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil && len(primary) == 0 {
		return nil, err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			switch addr := p.Addr().Unmap(); {
			case addr.IsLoopback(), slices.Contains(primary, addr):
			case addr.IsLinkLocalUnicast():
				linkLocal = append(linkLocal, addr)
			default:
				others = append(others, addr)
			}
		}
	}
	ipv4First := func(a, b netip.Addr) int {
		switch {
		case a.Is4() && !b.Is4():
			return -1
		case !a.Is4() && b.Is4():
			return 1
		}
		return 0
	}
	slices.SortStableFunc(others, ipv4First)
	slices.SortStableFunc(linkLocal, ipv4First)
	out := append(primary, others...)
	if len(out) == 0 {
		out = linkLocal
	}
	return out, nil
}

// addrWatch keeps the local address list that myIpAddress reads, re-reading
// it at most every addrRecheck, and drops cached results when it changes.
type addrWatch struct {
	read func() ([]netip.Addr, error)
	now  func() time.Time

	mu      sync.Mutex // serialises re-reads
	current atomic.Pointer[addrSnapshot]
}

type addrSnapshot struct {
	addrs []netip.Addr
	at    time.Time
}

func (w *addrWatch) init(read func() ([]netip.Addr, error), now func() time.Time) {
	w.read, w.now = read, now
}

// get returns the current list, re-reading it when stale.
func (w *addrWatch) get(c *resultCache) []netip.Addr {
	return w.refresh(w.now(), c).addrs
}

// refresh re-reads the list when it is older than addrRecheck and, if it
// changed, invalidates c (which may be nil).
func (w *addrWatch) refresh(now time.Time, c *resultCache) *addrSnapshot {
	snap := w.current.Load()
	if snap != nil && now.Sub(snap.at) < addrRecheck && !now.Before(snap.at) {
		return snap
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.current.Load(); s != snap {
		return s // another goroutine re-read it meanwhile
	}
	addrs, err := w.read()
	if err != nil {
		addrs = nil
	}
	next := &addrSnapshot{addrs: addrs, at: now}
	w.current.Store(next)
	if snap != nil && !slices.Equal(snap.addrs, addrs) && c != nil {
		c.invalidate()
	}
	return next
}
