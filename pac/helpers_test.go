package pac

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// testNow is the fixed clock of most tests: Monday 23 November 2026,
// 10:30:15.250 UTC.
var testNow = time.Date(2026, time.November, 23, 10, 30, 15, 250e6, time.UTC)

// testOptions pins everything outside the script: clock, zone, DNS and
// local addresses.
func testOptions() Options {
	return Options{
		Now:      func() time.Time { return testNow },
		Location: time.UTC,
		Resolver: StaticResolver{
			"www.example.com":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1:248:1893:25c8:1946")},
			"intranet.corp":    {netip.MustParseAddr("10.1.2.3")},
			"v6only.example":   {netip.MustParseAddr("2001:db8::1")},
			"two.example":      {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
			"xn--bcher-kva.ch": {netip.MustParseAddr("192.0.2.99")},
		},
		LocalAddrs: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("2001:db8::42"), netip.MustParseAddr("10.9.8.7")}, nil
		},
		Timeout: 2 * time.Second,
		Alert:   func(string) {},
	}
}

// mustScript compiles src with opts or fails the test.
func mustScript(t testing.TB, src string, opts Options) *Script {
	t.Helper()
	s, err := New([]byte(src), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// evalExpr evaluates a JavaScript expression inside FindProxyForURL and
// returns String(result), or the error.
func evalExpr(t testing.TB, opts Options, expr string) (string, error) {
	t.Helper()
	s, err := New([]byte("function FindProxyForURL(url, host) { return String("+expr+"); }"), opts)
	if err != nil {
		t.Fatalf("New(%s): %v", expr, err)
	}
	res, err := s.Eval(context.Background(), "http://www.example.com/", "")
	return res.Raw, err
}

type netipAddr = netip.Addr

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
