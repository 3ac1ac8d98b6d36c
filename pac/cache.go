package pac

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// resultCache remembers FindProxyForURL results for scripts whose answer is
// a function of their inputs alone (see cachePolicy). The key holds exactly
// what the script can see: the host, plus the URL when the script reads it.
//
// An entry whose evaluation asked DNS lives for a TTL, since the answers may
// change; one that did not cannot go stale (the script is deterministic for
// its key, so it would take the same path again) and lives until evicted, so
// that a hit on it does not even read the clock. Every entry belongs to an
// epoch; Script.Invalidate and a change of the local addresses start a new
// epoch, which empties the cache at once without touching the maps.
//
// Reads are lock-free: a hit is one lookup in an immutable map behind an
// atomic pointer. New entries go to a locked map first and are promoted into
// a fresh immutable map once reads have missed there as often as it has
// entries, which keeps the copying amortised (sync.Map's original design,
// with typed keys so that a hit does not hash an interface). When a
// promotion would exceed the size bound, the old entries are dropped.
type resultCache struct {
	ttl time.Duration
	max int

	read  atomic.Pointer[map[cacheKey]*cacheEntry]
	epoch atomic.Uint64

	mu     sync.Mutex
	dirty  map[cacheKey]*cacheEntry
	misses int
}

type cacheKey struct{ url, host string }

type cacheEntry struct {
	res     Result
	expires time.Time // zero: never
	epoch   uint64
}

func newResultCache(ttl time.Duration, max int) *resultCache {
	c := &resultCache{ttl: ttl, max: max, dirty: map[cacheKey]*cacheEntry{}}
	c.read.Store(&map[cacheKey]*cacheEntry{})
	return c
}

func (c *resultCache) valid(e *cacheEntry, now func() time.Time) bool {
	return e != nil && e.epoch == c.epoch.Load() && (e.expires.IsZero() || now().Before(e.expires))
}

// get returns the entry for k if it is current; now is read only for
// entries that can expire.
func (c *resultCache) get(k cacheKey, now func() time.Time) (Result, bool) {
	if e := (*c.read.Load())[k]; c.valid(e, now) {
		return e.res, true
	}
	c.mu.Lock()
	e := c.dirty[k]
	if e != nil {
		c.misses++
		if c.misses >= len(c.dirty) {
			c.promoteLocked()
		}
	}
	c.mu.Unlock()
	if c.valid(e, now) {
		return e.res, true
	}
	return Result{}, false
}

// put stores res for k, with a TTL when the evaluation asked DNS.
func (c *resultCache) put(k cacheKey, res Result, usedDNS bool, now func() time.Time, epoch uint64) {
	e := &cacheEntry{res: res, epoch: epoch}
	if usedDNS {
		e.expires = now().Add(c.ttl)
	}
	c.mu.Lock()
	c.dirty[k] = e
	if len(c.dirty) >= c.max {
		c.promoteLocked()
	}
	c.mu.Unlock()
}

// promoteLocked publishes the dirty entries in a new read map.
func (c *resultCache) promoteLocked() {
	old := *c.read.Load()
	var next map[cacheKey]*cacheEntry
	if len(old)+len(c.dirty) > c.max {
		next = c.dirty
	} else {
		next = make(map[cacheKey]*cacheEntry, len(old)+len(c.dirty))
		maps.Copy(next, old)
		maps.Copy(next, c.dirty)
	}
	c.read.Store(&next)
	c.dirty = map[cacheKey]*cacheEntry{}
	c.misses = 0
}

// invalidate drops every entry.
func (c *resultCache) invalidate() { c.epoch.Add(1) }
