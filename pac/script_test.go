package pac

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"too big", "function FindProxyForURL(u,h){return 'DIRECT'}\n//" + strings.Repeat("x", MaxScriptSize), []string{"limit is 1048576"}},
		{"syntax", "function FindProxyForURL(url, host) {\n  if (host == ) return 'DIRECT';\n}", []string{"proxy.pac:2:", "SyntaxError"}},
		{"unterminated", "function FindProxyForURL(url, host) {\n  return 'DIRECT';\n", []string{"proxy.pac:", "SyntaxError"}},
		{"no entry point", "function findProxyForURL(url, host) { return 'DIRECT' }", []string{"defines no function FindProxyForURL"}},
		{"not a function", "var FindProxyForURL = 'DIRECT';", []string{"defines no function FindProxyForURL"}},
		{"empty", "", []string{"defines no function FindProxyForURL"}},
		{"throws at load", "var x = 1;\nundefinedThing.go();\nfunction FindProxyForURL(u,h){return 'DIRECT'}", []string{"proxy.pac:2:", "ReferenceError", "undefinedThing", "while loading"}},
		{"endless at load", "while (true) {}\nfunction FindProxyForURL(u,h){return 'DIRECT'}", []string{"did not finish within", "endless loop"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.Timeout = 200 * time.Millisecond
			_, err := New([]byte(tc.src), opts)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSyntaxErrorSaysWhere(t *testing.T) {
	_, err := New([]byte("function FindProxyForURL(url, host) {\n\tif (host == ) return 'DIRECT';\n}"), testOptions())
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *SyntaxError", err)
	}
	if se.Line != 2 || se.Column != 14 || se.Source != "\tif (host == ) return 'DIRECT';" {
		t.Fatalf("got line %d column %d source %q", se.Line, se.Column, se.Source)
	}
}

// TestAnnexBSyntax loads constructs browsers accept in PAC files and goja's
// parser does not.
func TestAnnexBSyntax(t *testing.T) {
	for name, src := range map[string]string{
		"label before function":   "WPAD:\nfunction FindProxyForURL(url, host) { return 'DIRECT'; }",
		"stacked labels":          "A: B: function FindProxyForURL(url, host) { return 'DIRECT'; }",
		"label on nested":         "function FindProxyForURL(url, host) { L: function f() { return 'DIRECT'; } return f(); }",
		"html comment open":       "<!--\nfunction FindProxyForURL(url, host) { return 'DIRECT'; }\n",
		"html comment both":       "<!-- hide from old browsers\nfunction FindProxyForURL(url, host) { return 'DIRECT'; }\n-->\n",
		"html close after spaces": "function FindProxyForURL(url, host) { return 'DIRECT'; }\n   --> end\n",
	} {
		t.Run(name, func(t *testing.T) {
			s, err := New([]byte(src), testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if res, err := s.Eval(context.Background(), "http://x/", ""); err != nil || res.Raw != "DIRECT" {
				t.Fatalf("Eval = %q, %v", res.Raw, err)
			}
		})
	}
	// Repairs keep positions: an error after a repaired label is on its true line.
	_, err := New([]byte("WPAD:\nfunction FindProxyForURL(url, host) {\n  return ;;);\n}"), testOptions())
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 3 {
		t.Fatalf("error %v, want a SyntaxError on line 3", err)
	}
	// A label in front of something else is still an error.
	if _, err := New([]byte("x: y: z\nfunction FindProxyForURL(url, host) { return 'DIRECT' + ; }"), testOptions()); err == nil {
		t.Fatal("a broken script loaded")
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"throws", "var x = null;\n  return x.y;", []string{"proxy.pac:3:", "TypeError", "(in FindProxyForURL)"}},
		{"throws string", "throw 'crash!';", []string{"crash!"}},
		{"undefined", "if (host == 'never') return 'DIRECT';", []string{"returned undefined", "not a string"}},
		{"number", "return 42;", []string{"returned a number (42)"}},
		{"null", "return null;", []string{"returned null"}},
		{"boolean", "return false;", []string{"returned a boolean (false)"}},
		{"object", "return new String('DIRECT');", []string{"returned an object"}},
		{"non-ASCII", "return 'PROXY pröxy:80';", []string{"non-ASCII"}},
		{"deep recursion", "function f(n) { return f(n+1); } return f(0);", []string{"RangeError"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScript(t, "function FindProxyForURL(url, host) {\n  "+tc.body+"\n}", testOptions())
			_, err := s.Eval(context.Background(), "http://www.example.com/", "")
			if err == nil {
				t.Fatal("Eval succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// The runtime is usable afterwards: a second call fails the same way.
			if _, err2 := s.Eval(context.Background(), "http://www.example.com/", ""); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second call: %v, want %v", err2, err)
			}
		})
	}
}

func TestTimeLimit(t *testing.T) {
	opts := testOptions()
	opts.Timeout = 100 * time.Millisecond
	opts.MaxRuntimes = 1
	s := mustScript(t, "function FindProxyForURL(url, host) { if (host == 'loop') while (true) {} return 'DIRECT'; }", opts)
	_, err := s.Eval(context.Background(), "http://loop/", "")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("endless loop: %v, want ErrTimeout", err)
	}
	// The same (only) runtime serves the next call normally.
	if res, err := s.Eval(context.Background(), "http://ok/", ""); err != nil || res.Raw != "DIRECT" {
		t.Fatalf("after a timeout: %q, %v", res.Raw, err)
	}
	// Cancelling the caller's context stops the script too, with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Eval(ctx, "http://loop/", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}

// TestSlowDNSBoundedByTimeLimit: a resolver that never answers cannot hold
// an evaluation past its limit.
func TestSlowDNSBoundedByTimeLimit(t *testing.T) {
	opts := testOptions()
	opts.Timeout = 100 * time.Millisecond
	opts.DNSTimeout = time.Hour
	opts.Resolver = blockingResolver{}
	s := mustScript(t, "function FindProxyForURL(url, host) { return String(dnsResolve(host)); }", opts)
	if _, err := s.Eval(context.Background(), "http://slow.example/", ""); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Eval = %v, want ErrTimeout", err)
	}
}

type blockingResolver struct{}

func (blockingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestEntryPointEx(t *testing.T) {
	s := mustScript(t, `
function FindProxyForURL(url, host) { return "PROXY v4:80"; }
function FindProxyForURLEx(url, host) { return "PROXY v6:80"; }`, testOptions())
	if res, err := s.Eval(context.Background(), "http://x/", ""); err != nil || res.Raw != "PROXY v6:80" {
		t.Fatalf("Eval = %q, %v; want FindProxyForURLEx's answer", res.Raw, err)
	}
	s = mustScript(t, `function FindProxyForURLEx(url, host) { return "DIRECT"; }`, testOptions())
	if res, err := s.Eval(context.Background(), "http://x/", ""); err != nil || res.Raw != "DIRECT" {
		t.Fatalf("Ex alone: %q, %v", res.Raw, err)
	}
}

// TestScriptArguments checks what the script sees as url and host.
func TestScriptArguments(t *testing.T) {
	s := mustScript(t, `function FindProxyForURL(url, host) { return url + " " + host; }`, testOptions())
	tests := []struct{ url, host, want string }{
		{"http://www.example.com/a/b?c=d#frag", "", "http://www.example.com/a/b?c=d www.example.com"},
		{"https://www.example.com/secret/path?token=abc#x", "", "https://www.example.com/ www.example.com"},
		{"wss://chat.example.com/room?id=1", "", "wss://chat.example.com/ chat.example.com"},
		{"https://user:pass@www.example.com:8443/x", "", "https://www.example.com:8443/ www.example.com"},
		{"http://user:pass@www.example.com/x", "", "http://www.example.com/x www.example.com"},
		{"HTTP://WWW.Example.COM:80", "", "http://www.example.com/ www.example.com"},
		{"http://[2001:db8::1]:8080/x", "", "http://[2001:db8::1]:8080/x 2001:db8::1"},
		{"ftp://files.example.com/pub/", "", "ftp://files.example.com/pub/ files.example.com"},
		{"http://www.example.com/", "Other.Host", "http://www.example.com/ Other.Host"},
		{"http://a.example/it's", "", "http://a.example/it's a.example"}, // a quote is data, not code
	}
	for _, tc := range tests {
		res, err := s.Eval(context.Background(), tc.url, tc.host)
		if err != nil || res.Raw != tc.want {
			t.Errorf("Eval(%q, %q) = %q, %v; want %q", tc.url, tc.host, res.Raw, err, tc.want)
		}
	}
	for _, bad := range []string{"", "www.example.com", "http://", "http://a b/", "::"} {
		if _, err := s.Eval(context.Background(), bad, ""); err == nil || !strings.Contains(err.Error(), "bad URL") {
			t.Errorf("Eval(%q): %v, want a bad URL error", bad, err)
		}
	}
}

func TestCachePolicy(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"host only", `function FindProxyForURL(url, host) { return dnsDomainIs(host, ".x") ? "DIRECT" : "PROXY p:1"; }`, "cached by host"},
		{"url read", `function FindProxyForURL(url, host) { return url.substring(0, 5) == "http:" ? "DIRECT" : "PROXY p:1"; }`, "cached by URL and host"},
		{"url via arguments", `function FindProxyForURL(u, h) { return arguments[0]; }`, "cached by URL and host"},
		{"renamed params", `function FindProxyForURL(a, b) { return b == "x" ? "DIRECT" : "PROXY p:1"; }`, "cached by host"},
		{"assigned function", `var FindProxyForURL = function(url, host) { return "DIRECT"; };`, "cached by host"},
		{"not a literal", `function make() { return function(u, h) { return "DIRECT" }; } var FindProxyForURL = make();`, "cached by URL and host"},
		{"weekdayRange", `function FindProxyForURL(url, host) { return weekdayRange("MON") ? "DIRECT" : "PROXY p:1"; }`, "not cached: script uses weekdayRange: results depend on the time"},
		{"Date", `function FindProxyForURL(url, host) { return new Date().getHours() > 8 ? "DIRECT" : "PROXY p:1"; }`, "not cached: script uses Date"},
		{"random", `function FindProxyForURL(url, host) { return Math.random() > 0.5 ? "PROXY a:1" : "PROXY b:1"; }`, "not cached: script uses random"},
		{"eval", `function FindProxyForURL(url, host) { return eval("'DIRECT'"); }`, "not cached: script uses eval"},
		{"this", `function FindProxyForURL(url, host) { return this["date" + "Range"](1) ? "DIRECT" : "PROXY p:1"; }`, "not cached: script uses this"},
		{"counter", `var n = 0; function FindProxyForURL(url, host) { n++; return n % 2 ? "PROXY a:1" : "PROXY b:1"; }`, "not cached: script assigns global n inside a function"},
		{"implicit global", `function FindProxyForURL(url, host) { h = host.toLowerCase(); return h == "x" ? "DIRECT" : "PROXY p:1"; }`, "not cached: script assigns global h"},
		{"locals are fine", `function FindProxyForURL(url, host) { var h = host; host = h.toLowerCase(); for (var i = 0; i < 2; i++) {} try {} catch (e) { e = 1 } return "DIRECT"; }`, "cached by host"},
		{"top-level setup is fine", `var list = []; list.push("a"); var GW = "PROXY g:1"; function FindProxyForURL(url, host) { return GW; }`, "cached by host"},
		{"myIpAddress", `function FindProxyForURL(url, host) { return isInNet(myIpAddress(), "10.0.0.0", "255.0.0.0") ? "DIRECT" : "PROXY p:1"; }`, "cached by host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScript(t, tc.src, testOptions())
			if got := s.CacheStatus(); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("CacheStatus() = %q, want it to start with %q", got, tc.want)
			}
		})
	}
	s := mustScript(t, `function FindProxyForURL(url, host) { return isInNet(myIpAddress(), "10.0.0.0", "255.0.0.0") ? "DIRECT" : "PROXY p:1"; }`, testOptions())
	if !s.policy.localAddrs {
		t.Error("a script calling myIpAddress is not marked as depending on local addresses")
	}
}

// countingScript returns a script that counts its evaluations through
// alert, under a clock the test moves.
func countingScript(t *testing.T, src string, now *atomic.Pointer[time.Time], addrs *atomic.Pointer[[]netip.Addr]) (*Script, *atomic.Int64) {
	var calls atomic.Int64
	opts := testOptions()
	opts.Alert = func(string) { calls.Add(1) }
	opts.Now = func() time.Time { return *now.Load() }
	opts.CacheTTL = time.Minute
	if addrs != nil {
		opts.LocalAddrs = func() ([]netip.Addr, error) { return *addrs.Load(), nil }
	}
	return mustScript(t, src, opts), &calls
}

func TestResultCache(t *testing.T) {
	var now atomic.Pointer[time.Time]
	start := testNow
	now.Store(&start)
	s, calls := countingScript(t, `function FindProxyForURL(url, host) { alert("eval"); return dnsDomainIs(host, ".corp") ? "DIRECT" : "PROXY gw:3128; DIRECT"; }`, &now, nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		res, err := s.Eval(ctx, fmt.Sprintf("http://www.example.com/page%d", i), "")
		if err != nil || res.Raw != "PROXY gw:3128; DIRECT" || len(res.Routes) != 2 {
			t.Fatalf("Eval = %+v, %v", res, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("5 URLs of one host evaluated the script %d times, want 1 (cached by host)", n)
	}
	s.Eval(ctx, "http://a.corp/", "")
	if n := calls.Load(); n != 2 {
		t.Fatalf("a second host: %d evaluations, want 2", n)
	}
	// These answers did not ask DNS: they cannot go stale and outlive the TTL.
	later := start.Add(time.Hour)
	now.Store(&later)
	s.Eval(ctx, "http://www.example.com/", "")
	if n := calls.Load(); n != 2 {
		t.Fatalf("an hour later: %d evaluations, want 2", n)
	}
	s.Invalidate()
	s.Eval(ctx, "http://www.example.com/", "")
	if n := calls.Load(); n != 3 {
		t.Fatalf("after Invalidate: %d evaluations, want 3", n)
	}
	// An answer that asked DNS lives for the TTL only.
	now.Store(&start)
	d, dcalls := countingScript(t, `function FindProxyForURL(url, host) { alert("eval"); return isResolvable(host) ? "DIRECT" : "PROXY gw:3128"; }`, &now, nil)
	d.Eval(ctx, "http://www.example.com/", "")
	d.Eval(ctx, "http://www.example.com/", "")
	if n := dcalls.Load(); n != 1 {
		t.Fatalf("DNS script: %d evaluations, want 1", n)
	}
	later = start.Add(61 * time.Second)
	now.Store(&later)
	d.Eval(ctx, "http://www.example.com/", "")
	if n := dcalls.Load(); n != 2 {
		t.Fatalf("DNS script after the TTL: %d evaluations, want 2", n)
	}
	// Errors are not cached.
	bad, badCalls := countingScript(t, `function FindProxyForURL(url, host) { alert("eval"); return undefined; }`, &now, nil)
	bad.Eval(ctx, "http://x/", "")
	bad.Eval(ctx, "http://x/", "")
	if n := badCalls.Load(); n != 2 {
		t.Fatalf("failed evaluations were cached: %d calls, want 2", n)
	}
}

func TestResultCacheByURL(t *testing.T) {
	var now atomic.Pointer[time.Time]
	now.Store(&testNow)
	s, calls := countingScript(t, `function FindProxyForURL(url, host) { alert("eval"); return shExpMatch(url, "*/private/*") ? "DIRECT" : "PROXY gw:3128"; }`, &now, nil)
	ctx := context.Background()
	for _, u := range []string{"http://x.example/private/a", "http://x.example/public/b", "http://x.example/private/a"} {
		res, _ := s.Eval(ctx, u, "")
		want := map[bool]string{true: "DIRECT", false: "PROXY gw:3128"}[strings.Contains(u, "private")]
		if res.Raw != want {
			t.Fatalf("%s → %q, want %q: the cache confused two URLs of one host", u, res.Raw, want)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d evaluations, want 2 (the third URL repeats the first)", n)
	}
}

// TestResultCacheFollowsLocalAddrs: results of a script that reads
// myIpAddress are dropped when the machine's addresses change.
func TestResultCacheFollowsLocalAddrs(t *testing.T) {
	var now atomic.Pointer[time.Time]
	var addrs atomic.Pointer[[]netip.Addr]
	t0 := testNow
	now.Store(&t0)
	office := []netip.Addr{mustAddr("10.1.2.3")}
	home := []netip.Addr{mustAddr("192.168.1.20")}
	addrs.Store(&office)
	s, calls := countingScript(t, `function FindProxyForURL(url, host) { alert("eval"); return isInNet(myIpAddress(), "10.0.0.0", "255.0.0.0") ? "PROXY office:3128" : "PROXY roaming:3128"; }`, &now, &addrs)
	ctx := context.Background()
	eval := func() string {
		res, err := s.Eval(ctx, "https://www.example.com/", "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Raw
	}
	if got := eval(); got != "PROXY office:3128" {
		t.Fatalf("at the office: %q", got)
	}
	eval()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d evaluations, want 1", n)
	}
	addrs.Store(&home)
	t1 := t0.Add(3 * time.Second) // past the address re-read interval
	now.Store(&t1)
	if got := eval(); got != "PROXY roaming:3128" {
		t.Fatalf("after moving networks: %q, want the roaming proxy", got)
	}
}

// TestParallel evaluates from many goroutines at once (run with -race).
func TestParallel(t *testing.T) {
	opts := testOptions()
	opts.CacheTTL = -1
	s := mustScript(t, `
var seen = {};
function FindProxyForURL(url, host) {
    if (dnsDomainIs(host, ".corp")) return "DIRECT";
    if (isInNet(host, "10.0.0.0", "255.0.0.0")) return "PROXY ten:80";
    return "PROXY " + host + ":3128";
}`, opts)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				host := fmt.Sprintf("h%d-%d.example", g, i)
				res, err := s.Eval(context.Background(), "http://"+host+"/", "")
				if err != nil || res.Raw != "PROXY "+host+":3128" {
					errs <- fmt.Errorf("%s: %q, %v", host, res.Raw, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.slots); n > s.opts.MaxRuntimes {
		t.Errorf("%d runtimes, limit %d", n, s.opts.MaxRuntimes)
	}
}

func TestCurrentKeepsLastGood(t *testing.T) {
	var c Current
	if c.Get() != nil {
		t.Fatal("zero Current holds a script")
	}
	good, err := c.Load([]byte(`function FindProxyForURL(u, h) { return "PROXY good:1"; }`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"function FindProxyForURL(u, h) { return ", "throw 1;", "var x = 1;"} {
		if _, err := c.Load([]byte(bad), testOptions()); err == nil {
			t.Fatalf("Load(%q) succeeded", bad)
		}
		if c.Get() != good {
			t.Fatalf("a refused script replaced the good one")
		}
	}
	res, err := c.Get().Eval(context.Background(), "http://x/", "")
	if err != nil || res.Raw != "PROXY good:1" {
		t.Fatalf("Eval = %q, %v", res.Raw, err)
	}
}

func TestLookupBudget(t *testing.T) {
	table := StaticResolver{}
	for i := 0; i < 30; i++ {
		table[fmt.Sprintf("h%d.example", i)] = []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}
	}
	opts := testOptions()
	opts.Resolver = table
	s := mustScript(t, `function FindProxyForURL(url, host) {
    var ok = 0;
    for (var i = 0; i < 30; i++) if (dnsResolve("h" + i + ".example") != null) ok++;
    for (var i = 0; i < 30; i++) if (isResolvable("h0.example")) ok++;
    return String(ok);
}`, opts)
	res, err := s.Eval(context.Background(), "http://x/", "")
	if err != nil || res.Raw != "50" {
		t.Fatalf("resolved %q (%v), want 50: 20 distinct names, then the first one again 30 times", res.Raw, err)
	}
}

// TestInterfaceAddrs checks the default address list on this machine: no
// loopback, no duplicates.
func TestInterfaceAddrs(t *testing.T) {
	addrs, err := interfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a.IsLoopback() || seen[a] || a.Is4In6() {
			t.Errorf("address list %v holds %v", addrs, a)
		}
		seen[a] = true
	}
}
