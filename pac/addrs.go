package pac

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// systemResolver asks the operating system's resolver.
type systemResolver struct{}

func (systemResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// interfaceAddrs lists the addresses of the interfaces that are up: global
// ones first, then link-local, then loopback; IPv4 before IPv6 within each.
// It reads the interface table only: no packet leaves the machine.
func interfaceAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr().Unmap())
			}
		}
	}
	rank := func(a netip.Addr) int {
		r := 0
		switch {
		case a.IsLoopback():
			r = 4
		case a.IsLinkLocalUnicast():
			r = 2
		}
		if a.Is6() {
			r++
		}
		return r
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
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
