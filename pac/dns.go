package pac

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Resolver looks up the addresses of a host name. network is "ip4" for the
// IPv4-only functions (dnsResolve, isResolvable, isInNet) and "ip" for the
// Microsoft "Ex" functions. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// errNoSuchHost is what StaticResolver answers for names it does not list.
var errNoSuchHost = errors.New("no such host")

// StaticResolver answers from a fixed table and never asks the network: the
// pactester's --dns flag and tests use it. Names are matched without regard
// to case or a trailing dot; a name with several addresses resolves to all of
// them, in order; unlisted names do not resolve.
type StaticResolver map[string][]netip.Addr

// ParseStaticResolver reads "name=ip[,name=ip…]" as the pactester's --dns
// flag takes it. A name listed more than once resolves to every address given
// for it, in order.
func ParseStaticResolver(spec string) (StaticResolver, error) {
	r := StaticResolver{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, ip, ok := strings.Cut(pair, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("pac: DNS entry %q: want NAME=IP", pair)
		}
		addr, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return nil, fmt.Errorf("pac: DNS entry %q: %q is not an IP address", pair, ip)
		}
		key := canonicalName(name)
		r[key] = append(r[key], addr.Unmap())
	}
	return r, nil
}

func canonicalName(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// LookupNetIP implements Resolver.
func (r StaticResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range r[canonicalName(host)] {
		if network == "ip4" && !a.Is4() || network == "ip6" && !a.Is6() {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: errNoSuchHost.Error(), Name: host, IsNotFound: true}
	}
	return out, nil
}

// DNS cache defaults.
const (
	DefaultDNSTimeout  = 2 * time.Second  // one lookup, before it counts as failed
	DefaultDNSTTL      = time.Minute      // how long an answer is reused, as Chromium's host cache
	DefaultDNSNegative = 10 * time.Second // how long a failure (or timeout) is reused
	maxDNSEntries      = 10000
)

// dnsCache puts a cache, single flight, and a timeout in front of a
// Resolver. PAC files resolve the same few names for every request; a slow
// name must cost one lookup, not one per request, and a caller that runs out
// of time returns while the lookup goes on to fill the cache for the next.
type dnsCache struct {
	next              Resolver
	now               func() time.Time
	timeout, ttl, neg time.Duration

	mu      sync.Mutex
	entries map[dnsKey]*dnsEntry
}

type dnsKey struct{ network, host string }

type dnsEntry struct {
	done    chan struct{} // closed when addrs/err/expires are set
	addrs   []netip.Addr
	err     error
	expires time.Time
}

func newDNSCache(next Resolver, now func() time.Time, timeout, ttl, neg time.Duration) *dnsCache {
	return &dnsCache{next: next, now: now, timeout: timeout, ttl: ttl, neg: neg, entries: map[dnsKey]*dnsEntry{}}
}

// LookupNetIP implements Resolver.
func (c *dnsCache) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return c.lookup(ctx, nil, network, host)
}

// errLookupStopped is returned when stop closes before the answer arrives.
var errLookupStopped = errors.New("pac: DNS lookup abandoned: the evaluation ran out of time")

// lookup answers from the cache or waits for the lookup in flight, until
// ctx ends or stop closes.
func (c *dnsCache) lookup(ctx context.Context, stop <-chan struct{}, network, host string) ([]netip.Addr, error) {
	key := dnsKey{network, canonicalName(host)}
	c.mu.Lock()
	e := c.entries[key]
	if e != nil {
		select {
		case <-e.done:
			if !c.now().Before(e.expires) {
				e = nil // stale: look up again
			}
		default: // in flight: wait for it below
		}
	}
	if e == nil {
		e = &dnsEntry{done: make(chan struct{})}
		c.evictLocked()
		c.entries[key] = e
		go c.resolve(e, key)
	}
	c.mu.Unlock()

	select {
	case <-e.done:
		return e.addrs, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-stop:
		return nil, errLookupStopped
	}
}

func (c *dnsCache) resolve(e *dnsEntry, key dnsKey) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	addrs, err := c.next.LookupNetIP(ctx, key.network, key.host)
	cancel()
	ttl := c.ttl
	if err != nil || len(addrs) == 0 {
		ttl = c.neg
		if err == nil {
			err = &net.DNSError{Err: errNoSuchHost.Error(), Name: key.host, IsNotFound: true}
		}
		addrs = nil
	}
	c.mu.Lock()
	e.addrs, e.err, e.expires = addrs, err, c.now().Add(ttl)
	c.mu.Unlock()
	close(e.done)
}

// evictLocked keeps the table bounded: expired answers go first, then
// arbitrary ones.
func (c *dnsCache) evictLocked() {
	if len(c.entries) < maxDNSEntries {
		return
	}
	now := c.now()
	for k, e := range c.entries {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		default:
		}
	}
	for k := range c.entries {
		if len(c.entries) < maxDNSEntries*3/4 {
			break
		}
		delete(c.entries, k)
	}
}
