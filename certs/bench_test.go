package certs

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func nsPerOp(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

// BenchmarkLeaf measures what the leaf cache saves, in one run: cold mints
// a leaf for a new host on every call (key, signature, parse, and a cache
// that is full and evicts), warm returns a cached one. Warm reports
// x-vs-cold, cold ns/op over warm ns/op: how many cache hits cost one mint.
func BenchmarkLeaf(b *testing.B) {
	ca, _ := newCA(b, "bench", time.Now())
	var coldNs float64
	b.Run("cold", func(b *testing.B) {
		m := newMinter(b, ca, MinterOptions{CacheSize: 1000})
		hosts := benchHosts(1 << 16)
		runtime.GC()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := m.Leaf(hosts[i%len(hosts)]); err != nil {
				b.Fatal(err)
			}
		}
		coldNs = nsPerOp(b)
	})
	b.Run("warm", func(b *testing.B) {
		m := newMinter(b, ca, MinterOptions{})
		if _, err := m.Leaf("www.example.com"); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Leaf("www.example.com"); err != nil {
				b.Fatal(err)
			}
		}
		if coldNs > 0 {
			b.ReportMetric(coldNs/nsPerOp(b), "x-vs-cold")
		}
	})
}

// benchHosts is n distinct host names, made before the clock starts.
func benchHosts(n int) []string {
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = "h" + strconv.Itoa(i) + ".bench.example"
	}
	return hosts
}

// BenchmarkHandshake measures full TLS handshakes per second on loopback
// (TLS 1.3, ECDSA P-256, no resumption, the client verifying the chain and
// the name against a pool holding the tenant CA alone), with the leaf cache
// warm (one host) and cold (a new host every time). Warm reports x-vs-cold:
// how much faster a handshake is when its leaf is cached.
func BenchmarkHandshake(b *testing.B) {
	ca, caPEM := newCA(b, "bench", time.Now())
	roots := poolOf(b, caPEM)
	var coldNs float64
	run := func(b *testing.B, host func(i int) string) {
		m := newMinter(b, ca, MinterOptions{CacheSize: 1000})
		addr, _ := serveTLS(b, m.GetCertificate)
		if _, err := dialTLS(addr, host(0), roots); err != nil { // warm what warm needs
			b.Fatal(err)
		}
		runtime.GC()
		for i := 1; b.Loop(); i++ {
			if _, err := dialTLS(addr, host(i), roots); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	}
	b.Run("cold", func(b *testing.B) {
		hosts := benchHosts(1 << 16)
		run(b, func(i int) string { return hosts[i%len(hosts)] })
		coldNs = nsPerOp(b)
	})
	b.Run("warm", func(b *testing.B) {
		run(b, func(int) string { return "www.example.com" })
		if coldNs > 0 {
			b.ReportMetric(coldNs/nsPerOp(b), "x-vs-cold")
		}
	})
}
