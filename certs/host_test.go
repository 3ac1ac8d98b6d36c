package certs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCanonicalHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) // 64*3 + 61 = 253
	for _, c := range []struct {
		in, want string
		ip       bool
	}{
		{"example.com", "example.com", false},
		{"WWW.Example.COM", "www.example.com", false},
		{"example.com.", "example.com", false},
		{"localhost", "localhost", false},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", false},
		{"my_host.corp.example", "my_host.corp.example", false},
		{"a-b.example", "a-b.example", false},
		{"1.2.3.4.nip.io", "1.2.3.4.nip.io", false},
		{"123.example", "123.example", false},
		{"ipv6-1", "ipv6-1", false},
		{label63 + ".example", label63 + ".example", false},
		{name253, name253, false},
		{name253 + ".", name253, false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "::1", true},
		{"[::1]", "::1", true},
		{"2001:DB8:0:0::1", "2001:db8::1", true},
		{"::ffff:10.0.0.1", "10.0.0.1", true},
		{"[::ffff:10.0.0.1]", "10.0.0.1", true},
	} {
		got, ip, err := canonicalHost(c.in)
		if err != nil || got != c.want || ip != c.ip {
			t.Errorf("canonicalHost(%q) = %q, %v, %v; want %q, %v", c.in, got, ip, err, c.want, c.ip)
		}
	}

	for _, c := range []struct{ in, why string }{
		{"", "empty"},
		{".", "no name"},
		{"..", "empty label"},
		{"a..b", "empty label"},
		{".a", "empty label"},
		{"a..", "empty label"},
		{"example.com:443", "has a port"},
		{"[::1]:443", "has a port"},
		{"1:2:3", "malformed IPv6"},
		{"[example.com]", "brackets hold an IPv6 address"},
		{"fe80::1%eth0", "zone"},
		{"bücher.example", "not ASCII"},
		{"*.example.com", "wildcard"},
		{"a b.example", `character ' '`},
		{"a/b", `character '/'`},
		{"a\x00b", `character '\x00'`},
		{label63 + "a.example", "label is longer than 63"},
		{name253 + "b", "longer than 253"},
		{"1.2.3.999", "ends in a number"},
		{"256.1.1.1", "ends in a number"},
		{"01.2.3.4", "ends in a number"},
		{"example.123", "ends in a number"},
		{"4294967295", "ends in a number"},
	} {
		_, _, err := canonicalHost(c.in)
		if err == nil {
			t.Errorf("canonicalHost(%q) accepted it", c.in)
			continue
		}
		if !errors.Is(err, ErrBadHost) || !strings.HasPrefix(err.Error(), "certs: malformed host") || !strings.Contains(err.Error(), c.why) {
			t.Errorf("canonicalHost(%q): %q, want ErrBadHost saying %q", c.in, err, c.why)
		}
	}
}

func TestCanonicalHostNoAllocation(t *testing.T) {
	// It runs on every cache hit: a host in canonical form must cost nothing.
	if n := testing.AllocsPerRun(100, func() { canonicalHost("www.example.com") }); n != 0 {
		t.Errorf("%v allocations per canonical name, want 0", n)
	}
}

// FuzzLeafHost checks that every host Leaf accepts gets a certificate that
// verifies for it, and that every host it refuses is refused as a malformed
// host, never with another error or a panic.
func FuzzLeafHost(f *testing.F) {
	ca, _ := newCA(f, "fuzz", t0)
	// A small cache, so that the fuzzer also runs eviction.
	m := newMinter(f, ca, MinterOptions{CacheSize: 8, Now: func() time.Time { return t0 }})
	for _, s := range []string{"example.com", "EXAMPLE.com.", "127.0.0.1", "[::1]", "::ffff:1.2.3.4", "xn--bcher-kva.example",
		"my_host.example", "-lead.example", "a..b", "1.2.3.999", "fe80::1%eth0", "bücher.example", "example.com:443", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		cert, err := m.Leaf(host)
		if err != nil {
			if !errors.Is(err, ErrBadHost) {
				t.Fatalf("Leaf(%q): %v, want ErrBadHost", host, err)
			}
			return
		}
		canon, isIP, err := canonicalHost(host)
		if err != nil {
			t.Fatal(err)
		}
		if again, _, err := canonicalHost(canon); err != nil || again != canon {
			t.Fatalf("canonical form %q of %q is not canonical: %q, %v", canon, host, again, err)
		}
		leaf := cert.Leaf
		if n := len(leaf.DNSNames) + len(leaf.IPAddresses); n != 1 || isIP != (len(leaf.IPAddresses) == 1) {
			t.Fatalf("leaf for %q names %v %v", host, leaf.DNSNames, leaf.IPAddresses)
		}
		if err := leaf.VerifyHostname(canon); err != nil {
			t.Fatalf("leaf for %q: %v", host, err)
		}
		if isIP {
			// IPs verify however the client spelled them.
			if err := leaf.VerifyHostname(host); err != nil {
				t.Fatalf("leaf for %q: %v", host, err)
			}
		}
	})
}
