package identity

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// dialEnv makes the test binary a client instead of running the tests: it
// connects to the address in the variable, prints its own address, and holds
// the connection until its standard input closes. The multi-user test runs it
// as other OS users.
const dialEnv = "VIGIE_IDENTITY_TEST_DIAL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialEnv); addr != "" {
		os.Exit(holdConnection(addr))
	}
	os.Exit(m.Run())
}

func holdConnection(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Println(c.LocalAddr())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// fakeOS stands for an OS lookup: it counts the calls and answers from a
// script.
type fakeOS struct {
	calls, nameCalls int
	answers          []fakeAnswer // consumed in order; the last one repeats
	names            map[string]string
}

type fakeAnswer struct {
	id  string
	err error
}

func (f *fakeOS) lookup(client, server netip.AddrPort) (string, error) {
	f.calls++
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	return a.id, a.err
}

func (f *fakeOS) name(id string) (string, error) {
	f.nameCalls++
	if n, ok := f.names[id]; ok {
		return n, nil
	}
	return "", errors.New("directory unreachable")
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeResolver(ttl time.Duration, f *fakeOS) (*Resolver, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	r := NewResolver(Options{Now: clock.now, CacheTTL: ttl})
	r.lookup = f.lookup
	r.name = f.name
	return r, clock
}

var (
	aClient = netip.MustParseAddrPort("127.0.0.1:50000")
	aServer = netip.MustParseAddrPort("127.0.0.1:3128")
)

func TestCacheExpiresAfterTTL(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, clock := newFakeResolver(0, f) // default TTL

	want := User{ID: "1000", Name: "alice"}
	steps := []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 1},                                 // miss
		{0, 1},                                 // hit
		{DefaultCacheTTL - time.Nanosecond, 1}, // last instant of the entry
		{time.Nanosecond, 2},                   // expired: looked up again
		{time.Second, 2},                       // the new entry
	}
	for i, s := range steps {
		clock.advance(s.advance)
		got, err := r.Owner(aClient, aServer)
		if err != nil || got != want {
			t.Fatalf("step %d: Owner = %+v, %v; want %+v", i, got, err, want)
		}
		if f.calls != s.wantCalls {
			t.Fatalf("step %d: %d lookups, want %d", i, f.calls, s.wantCalls)
		}
	}
}

func TestCacheKeys(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, _ := newFakeResolver(time.Minute, f)

	mustOwner(t, r, aClient, aServer)
	// A dual-stack listener reports the same connection with mapped addresses.
	mustOwner(t, r, netip.MustParseAddrPort("[::ffff:127.0.0.1]:50000"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:3128"))
	if f.calls != 1 {
		t.Errorf("mapped addresses: %d lookups, want 1 (same connection)", f.calls)
	}
	// Another client port, or another listener, is another connection.
	mustOwner(t, r, netip.MustParseAddrPort("127.0.0.1:50001"), aServer)
	mustOwner(t, r, aClient, netip.MustParseAddrPort("127.0.0.1:3129"))
	mustOwner(t, r, netip.MustParseAddrPort("[::1]:50000"), netip.MustParseAddrPort("[::1]:3128"))
	if f.calls != 4 {
		t.Errorf("%d lookups for 4 connections, want 4", f.calls)
	}
	// The name is looked up once per user, not per connection.
	if f.nameCalls != 1 {
		t.Errorf("%d name lookups for one user, want 1", f.nameCalls)
	}
}

func TestForget(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}, {id: "1001"}}, names: map[string]string{"1000": "alice", "1001": "bob"}}
	r, _ := newFakeResolver(time.Minute, f)

	if u := mustOwner(t, r, aClient, aServer); u.ID != "1000" {
		t.Fatalf("first connection: %+v", u)
	}
	// The connection closes and bob's new one reuses the same ports.
	r.Forget(netip.MustParseAddrPort("[::ffff:127.0.0.1]:50000"), aServer)
	if u := mustOwner(t, r, aClient, aServer); u != (User{ID: "1001", Name: "bob"}) {
		t.Fatalf("after Forget: %+v, want bob's", u)
	}
}

func TestForgetDuringLookup(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}, {id: "1001"}}, names: map[string]string{"1000": "alice", "1001": "bob"}}
	r, _ := newFakeResolver(time.Minute, f)
	// The connection closes, and Forget runs, while its lookup is under way.
	r.lookup = func(client, server netip.AddrPort) (string, error) {
		r.Forget(client, server)
		return f.lookup(client, server)
	}
	if u := mustOwner(t, r, aClient, aServer); u.ID != "1000" {
		t.Fatalf("first connection: %+v", u)
	}
	r.lookup = f.lookup
	// A new connection on the same ports must not get the old answer.
	if u := mustOwner(t, r, aClient, aServer); u.ID != "1001" {
		t.Fatalf("next connection: %+v, want bob's (the old answer was cached after Forget)", u)
	}
	// And its answer is cached as usual.
	mustOwner(t, r, aClient, aServer)
	if f.calls != 2 {
		t.Errorf("%d lookups, want 2", f.calls)
	}
}

func TestFailuresAreNotCached(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{
		{err: fmt.Errorf("%w: gone", ErrNotFound)},
		{err: fmt.Errorf("%w: gone", ErrNotFound)},
		{id: "1000"},
	}, names: map[string]string{"1000": "alice"}}
	r, _ := newFakeResolver(time.Minute, f)

	_, err := r.Owner(aClient, aServer)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Owner error = %v, want ErrNotFound", err)
	}
	if f.calls != 2 {
		t.Errorf("%d lookups before giving up, want 2 (one retry)", f.calls)
	}
	mustOwner(t, r, aClient, aServer)
	if f.calls != 3 {
		t.Errorf("%d lookups, want 3: the failure must not be cached", f.calls)
	}
}

func TestRetryFindsLateSocket(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{err: ErrNotFound}, {id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, _ := newFakeResolver(time.Minute, f)
	if u := mustOwner(t, r, aClient, aServer); u.ID != "1000" || f.calls != 2 {
		t.Fatalf("Owner = %+v after %d lookups, want 1000 after 2", u, f.calls)
	}
}

func TestOtherErrorsAreNotRetried(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{err: errors.New("identity: permission denied")}}}
	r, _ := newFakeResolver(time.Minute, f)
	if _, err := r.Owner(aClient, aServer); err == nil || f.calls != 1 {
		t.Fatalf("Owner error %v after %d lookups, want an error after 1", err, f.calls)
	}
}

func TestCacheOff(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, _ := newFakeResolver(-1, f)
	mustOwner(t, r, aClient, aServer)
	mustOwner(t, r, aClient, aServer)
	if f.calls != 2 {
		t.Errorf("%d lookups with the cache off, want 2", f.calls)
	}
}

func TestNames(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, clock := newFakeResolver(time.Second, f)

	mustOwner(t, r, aClient, aServer)
	clock.advance(nameTTL - time.Second)
	mustOwner(t, r, aClient, aServer)
	if f.nameCalls != 1 {
		t.Errorf("%d name lookups within nameTTL, want 1", f.nameCalls)
	}
	clock.advance(time.Second)
	mustOwner(t, r, aClient, aServer)
	if f.nameCalls != 2 {
		t.Errorf("%d name lookups after nameTTL, want 2", f.nameCalls)
	}

	// A directory that cannot answer leaves the name empty, and is asked
	// again next time; the ID is still given.
	f.answers = []fakeAnswer{{id: "1001"}}
	clock.advance(time.Hour)
	for range 2 {
		if u := mustOwner(t, r, netip.MustParseAddrPort("127.0.0.1:50001"), aServer); u != (User{ID: "1001"}) {
			t.Fatalf("Owner = %+v, want ID 1001 without a name", u)
		}
		clock.advance(time.Hour)
	}
	if f.nameCalls != 4 {
		t.Errorf("%d name lookups, want 4: failures are not cached", f.nameCalls)
	}
}

func TestSweep(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}, names: map[string]string{"1000": "alice"}}
	r, clock := newFakeResolver(time.Second, f)
	// 500 connections a second for 20 seconds: the cache follows the live
	// ones (rate × TTL), not the total.
	port := uint16(1024)
	for round := range 20 {
		for range 500 {
			port++
			mustOwner(t, r, netip.AddrPortFrom(aClient.Addr(), port), aServer)
		}
		if n := len(r.conns); n > 2*500+sweepMin {
			t.Fatalf("round %d: %d entries for 500 live connections", round, n)
		}
		clock.advance(time.Second)
	}
}

func TestInvalidConnection(t *testing.T) {
	f := &fakeOS{answers: []fakeAnswer{{id: "1000"}}}
	r, _ := newFakeResolver(time.Second, f)
	for _, c := range []struct{ client, server netip.AddrPort }{
		{netip.AddrPort{}, aServer},
		{aClient, netip.AddrPort{}},
		{netip.AddrPortFrom(aClient.Addr(), 0), aServer},
	} {
		if _, err := r.Owner(c.client, c.server); err == nil {
			t.Errorf("Owner(%v, %v) succeeded", c.client, c.server)
		}
	}
	if f.calls != 0 {
		t.Errorf("%d lookups for invalid connections", f.calls)
	}
}

func TestUnsupportedOS(t *testing.T) {
	r, _ := newFakeResolver(time.Second, &fakeOS{})
	r.lookup = nil // as on a system without owner_<os>.go
	if _, err := r.Owner(aClient, aServer); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Owner error = %v, want ErrUnsupported", err)
	}
}

func mustOwner(t *testing.T, r *Resolver, client, server netip.AddrPort) User {
	t.Helper()
	u, err := r.Owner(client, server)
	if err != nil {
		t.Fatalf("Owner(%v, %v): %v", client, server, err)
	}
	return u
}
