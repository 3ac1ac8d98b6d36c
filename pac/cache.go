package pac

import (
	"sync"
	"sync/atomic"
	"time"
)

// resultCache remembers FindProxyForURL results for scripts whose answer is
// a function of their inputs alone (see cachePolicy). The key holds exactly
// what the script can see: the host, plus the URL when the script reads it.
//
// Entries live for a TTL (DNS answers the script used may change) and belong
// to an epoch; Script.Invalidate and a change of the local addresses start a
// new epoch, which empties the cache at once without touching the map.
//
// Two generations bound the size: when the current map is full it becomes the
// previous one and a fresh map starts; a hit in the previous map is promoted.
// Reads are lock-free (sync.Map), so hits scale with cores.
type resultCache struct {
	ttl time.Duration
	max int64

	cur, prev atomic.Pointer[sync.Map]
	n         atomic.Int64
	epoch     atomic.Uint64
	rotate    sync.Mutex
}

type cacheKey struct{ url, host string }

type cacheEntry struct {
	res     Result
	expires time.Time
	epoch   uint64
}

func newResultCache(ttl time.Duration, max int) *resultCache {
	c := &resultCache{ttl: ttl, max: int64(max)}
	c.cur.Store(new(sync.Map))
	c.prev.Store(new(sync.Map))
	return c
}

func (c *resultCache) get(k cacheKey, now time.Time) (Result, bool) {
	v, ok := c.cur.Load().Load(k)
	if !ok {
		if v, ok = c.prev.Load().Load(k); !ok {
			return Result{}, false
		}
		c.store(k, v.(*cacheEntry))
	}
	e := v.(*cacheEntry)
	if e.epoch != c.epoch.Load() || !now.Before(e.expires) {
		return Result{}, false
	}
	return e.res, true
}

func (c *resultCache) put(k cacheKey, res Result, now time.Time, epoch uint64) {
	c.store(k, &cacheEntry{res: res, expires: now.Add(c.ttl), epoch: epoch})
}

func (c *resultCache) store(k cacheKey, e *cacheEntry) {
	if _, loaded := c.cur.Load().Swap(k, e); loaded {
		return
	}
	if c.n.Add(1) <= c.max/2 {
		return
	}
	c.rotate.Lock()
	if c.n.Load() > c.max/2 {
		c.prev.Store(c.cur.Load())
		c.cur.Store(new(sync.Map))
		c.n.Store(0)
	}
	c.rotate.Unlock()
}

// invalidate drops every entry.
func (c *resultCache) invalidate() { c.epoch.Add(1) }
