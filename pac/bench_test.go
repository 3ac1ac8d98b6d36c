package pac

import (
	"context"
	"net/url"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchURLs are the lookups of the benchmarks: one per rule group of
// testdata/corporate.pac, most of them late in the script, as most real
// traffic is (the fall-through to the gateway comes last).
var benchURLs = []string{
	"https://www.example.com/",
	"https://news.example.org/article",
	"https://cdn.assets.example.net/app.js",
	"https://api.saas.example/v1/items",
	"https://mail.example.com/inbox",
	"https://www.example.fr/",
	"https://shop.example.jp/",
	"https://bank.example/login",
	"https://api2.payments.example/",
	"https://teams.microsoft.com.example/",
	"http://intranet/",
	"http://git.corp.example.com/",
	"http://10.20.30.40/",
	"http://198.51.100.7/",
	"http://wiki.example.com/",
	"https://printer.local/",
}

type benchCase struct{ url, host string }

func benchCases(tb testing.TB) []benchCase {
	cases := make([]benchCase, len(benchURLs))
	for i, raw := range benchURLs {
		u, err := url.Parse(raw)
		if err != nil {
			tb.Fatal(err)
		}
		cases[i] = benchCase{raw, u.Hostname()}
	}
	return cases
}

func benchSource(tb testing.TB) string {
	b, err := os.ReadFile("testdata/corporate.pac")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func nsPerOp(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

// BenchmarkFindProxy measures the engine on a realistic 40-rule PAC file
// against a naive engine (one goja runtime behind a mutex, helpers in
// JavaScript) in the same run:
//
//	naive/serial     the baseline
//	uncached/serial  our engine, result cache off: x-vs-naive is the speed-up
//	cached/serial    cache hits (ns/op is the hit cost)
//	*/parallel       b.RunParallel: x-vs-serial is the throughput gain from more cores
func BenchmarkFindProxy(b *testing.B) {
	src := benchSource(b)
	cases := benchCases(b)
	ctx := context.Background()
	opts := corpusOptions()
	opts.Now = time.Now

	naive, err := newNaiveEngine(src, opts.Resolver, mustAddr("10.1.2.3"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	uncachedOpts := opts
	uncachedOpts.CacheTTL = -1
	uncached := mustScript(b, src, uncachedOpts)
	cached := mustScript(b, src, opts)
	if got := cached.CacheStatus(); got != "cached by host" {
		b.Fatalf("benchmark PAC is %s", got)
	}
	// Every engine must agree before being timed.
	for _, c := range cases {
		want, err := naive.findProxy(c.url, c.host)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range []*Script{uncached, cached} {
			if res, err := s.Eval(ctx, c.url, c.host); err != nil || res.Raw != want {
				b.Fatalf("%s: %q, %v; naive engine says %q", c.url, res.Raw, err, want)
			}
		}
	}

	engines := []struct {
		name string
		eval func(benchCase) error
	}{
		{"naive", func(c benchCase) error { _, err := naive.findProxy(c.url, c.host); return err }},
		{"uncached", func(c benchCase) error { _, err := uncached.Eval(ctx, c.url, c.host); return err }},
		{"cached", func(c benchCase) error { _, err := cached.Eval(ctx, c.url, c.host); return err }},
	}
	serialNs := map[string]float64{}
	for _, e := range engines {
		b.Run(e.name+"/serial", func(b *testing.B) {
			runtime.GC() // start without the garbage of the previous benchmark
			for i := 0; b.Loop(); i++ {
				if err := e.eval(cases[i%len(cases)]); err != nil {
					b.Fatal(err)
				}
			}
			serialNs[e.name] = nsPerOp(b)
			if e.name != "naive" {
				b.ReportMetric(serialNs["naive"]/serialNs[e.name], "x-vs-naive")
			}
		})
	}
	for _, e := range engines {
		b.Run(e.name+"/parallel", func(b *testing.B) {
			runtime.GC()
			b.ResetTimer()
			var start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(7)) // each goroutine its own walk through the cases
				for pb.Next() {
					if err := e.eval(cases[i%len(cases)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.ReportMetric(serialNs[e.name]/nsPerOp(b), "x-vs-serial")
		})
	}
}

// BenchmarkCacheHitURLOnly is a cache hit when the caller passes only the
// URL, so the host is parsed from it each time.
func BenchmarkCacheHitURLOnly(b *testing.B) {
	opts := corpusOptions()
	opts.Now = time.Now
	s := mustScript(b, benchSource(b), opts)
	ctx := context.Background()
	s.Eval(ctx, "https://www.example.com/", "")
	for b.Loop() {
		if _, err := s.Eval(ctx, "https://www.example.com/", ""); err != nil {
			b.Fatal(err)
		}
	}
}
