package pac

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseStaticResolver(t *testing.T) {
	r, err := ParseStaticResolver("a.test=1.2.3.4, A.Test.=2001:db8::1,a.test=5.6.7.8,b.test=::ffff:9.9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, _ := r.LookupNetIP(ctx, "ip", "a.test")
	if want := []netip.Addr{mustAddr("1.2.3.4"), mustAddr("2001:db8::1"), mustAddr("5.6.7.8")}; !slices.Equal(got, want) {
		t.Errorf("a.test (ip) = %v, want %v", got, want)
	}
	got, _ = r.LookupNetIP(ctx, "ip4", "A.TEST")
	if want := []netip.Addr{mustAddr("1.2.3.4"), mustAddr("5.6.7.8")}; !slices.Equal(got, want) {
		t.Errorf("A.TEST (ip4) = %v, want %v", got, want)
	}
	if got, _ := r.LookupNetIP(ctx, "ip4", "b.test"); !slices.Equal(got, []netip.Addr{mustAddr("9.9.9.9")}) {
		t.Errorf("mapped address not unmapped: %v", got)
	}
	if _, err := r.LookupNetIP(ctx, "ip", "unlisted.test"); err == nil {
		t.Error("an unlisted name resolved")
	}
	for _, bad := range []string{"a.test", "=1.2.3.4", "a.test=1.2.3", "a.test=host.example"} {
		if _, err := ParseStaticResolver(bad); err == nil {
			t.Errorf("ParseStaticResolver(%q) succeeded", bad)
		}
	}
}

// gatedResolver answers after release is closed, counting calls.
type gatedResolver struct {
	calls   atomic.Int32
	release chan struct{}
}

func (r *gatedResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	select {
	case <-r.release:
		return []netip.Addr{mustAddr("192.0.2.7")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestDNSCacheSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &gatedResolver{release: make(chan struct{})}
		c := newDNSCache(r, time.Now, time.Second, time.Minute, 10*time.Second)
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addrs, err := c.LookupNetIP(context.Background(), "ip4", "slow.example")
				if err != nil || len(addrs) != 1 {
					t.Errorf("lookup = %v, %v", addrs, err)
				}
			}()
		}
		synctest.Wait()
		close(r.release)
		wg.Wait()
		if n := r.calls.Load(); n != 1 {
			t.Fatalf("10 concurrent lookups of one name asked %d times, want 1", n)
		}
		// Cached for the TTL, asked again after it.
		c.LookupNetIP(context.Background(), "ip4", "slow.example")
		time.Sleep(61 * time.Second)
		c.LookupNetIP(context.Background(), "ip4", "slow.example")
		if n := r.calls.Load(); n != 2 {
			t.Fatalf("%d calls after the TTL, want 2", n)
		}
	})
}

func TestDNSCacheTimeoutIsCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &gatedResolver{release: make(chan struct{})} // never released: the name hangs
		c := newDNSCache(r, time.Now, 2*time.Second, time.Minute, 10*time.Second)
		start := time.Now()
		_, err := c.LookupNetIP(context.Background(), "ip4", "hang.example")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 2*time.Second {
			t.Fatalf("lookup = %v after %v, want a timeout after 2s", err, time.Since(start))
		}
		// Within the negative TTL the failure is answered at once.
		start = time.Now()
		if _, err := c.LookupNetIP(context.Background(), "ip4", "hang.example"); err == nil || time.Since(start) != 0 {
			t.Fatalf("second lookup = %v after %v, want the cached failure at once", err, time.Since(start))
		}
		if n := r.calls.Load(); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
		time.Sleep(11 * time.Second)
		c.LookupNetIP(context.Background(), "ip4", "hang.example")
		if n := r.calls.Load(); n != 2 {
			t.Fatalf("%d calls after the negative TTL, want 2", n)
		}
	})
}

// TestDNSCacheCallerLeavesEarly: a caller whose context ends returns at
// once; the lookup goes on and its answer serves the next caller.
func TestDNSCacheCallerLeavesEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &gatedResolver{release: make(chan struct{})}
		c := newDNSCache(r, time.Now, 5*time.Second, time.Minute, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := c.LookupNetIP(ctx, "ip4", "late.example"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("lookup = %v, want the caller's deadline", err)
		}
		close(r.release)
		synctest.Wait()
		addrs, err := c.LookupNetIP(context.Background(), "ip4", "late.example")
		if err != nil || len(addrs) != 1 || r.calls.Load() != 1 {
			t.Fatalf("next lookup = %v, %v after %d calls; want the answer of the first lookup", addrs, err, r.calls.Load())
		}
	})
}

func TestDNSCacheBounded(t *testing.T) {
	c := newDNSCache(StaticResolver{}, time.Now, time.Second, time.Minute, time.Minute)
	for i := 0; i < maxDNSEntries+500; i++ {
		c.LookupNetIP(context.Background(), "ip4", "h"+strconv.Itoa(i)+".example")
	}
	if n := len(c.entries); n > maxDNSEntries {
		t.Fatalf("%d entries, limit %d", n, maxDNSEntries)
	}
}
