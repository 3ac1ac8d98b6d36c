package pac

import (
	"strings"
	"testing"
)

// TestFunctions checks every PAC function from JavaScript, including the
// cases where browsers disagree (the package documentation lists which side
// we take) and wrong argument types.
func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want string // result, or "throws: <substring>" for an exception
	}{
		// isPlainHostName: native in Chromium; IP literals are not plain.
		{`isPlainHostName("www")`, "true"},
		{`isPlainHostName("www.example.com")`, "false"},
		{`isPlainHostName("")`, "true"},
		{`isPlainHostName("192.168.1.1")`, "false"},
		{`isPlainHostName("1234")`, "false"}, // an IPv4 literal in URL syntax
		{`isPlainHostName("0x7f")`, "false"},
		{`isPlainHostName("::1")`, "false"},
		{`isPlainHostName("::ffff:1.2.3.4")`, "false"},
		{`isPlainHostName("foo:112")`, "true"}, // not an IP literal (Firefox: false)
		{`isPlainHostName("[::1]")`, "true"},
		{`isPlainHostName("www", "extra", 3)`, "true"}, // extra arguments ignored
		{`isPlainHostName()`, "throws: TypeError"},
		{`isPlainHostName(null)`, "throws: TypeError"},
		{`isPlainHostName(1)`, "throws: TypeError"},

		// dnsDomainIs: a case-sensitive suffix test, no dot boundary.
		{`dnsDomainIs("www.example.com", ".example.com")`, "true"},
		{`dnsDomainIs("www.example.com", "example.com")`, "true"},
		{`dnsDomainIs("notexample.com", "example.com")`, "true"},
		{`dnsDomainIs("www.example.com", ".EXAMPLE.com")`, "false"},
		{`dnsDomainIs("www.adobe.com", ".ad")`, "false"},
		{`dnsDomainIs("a", "")`, "true"},
		{`dnsDomainIs("com", ".com")`, "false"},
		{`dnsDomainIs(123, "3")`, "false"}, // no length: false, as in browsers
		{`dnsDomainIs(undefined, "x")`, "throws: TypeError"},
		{`dnsDomainIs("x")`, "throws: TypeError"},

		// localHostOrDomainIs
		{`localHostOrDomainIs("www", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www.example.com", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www.goo", "www.goo.x")`, "true"},
		{`localHostOrDomainIs("maps.example.com", "www.example.com")`, "false"},
		{`localHostOrDomainIs("www.example.org", "www.example.com")`, "false"},
		{`localHostOrDomainIs("WWW", "www.example.com")`, "false"},
		{`localHostOrDomainIs("www", null)`, "throws: TypeError"},

		// dnsDomainLevels
		{`dnsDomainLevels("www")`, "0"},
		{`dnsDomainLevels("www.example.com")`, "2"},
		{`dnsDomainLevels("192.168.1.1")`, "3"},
		{`dnsDomainLevels("")`, "0"},
		{`dnsDomainLevels(5)`, "throws: TypeError"},

		// shExpMatch: globs, and the regexp characters browsers let through.
		{`shExpMatch("foo.jpg", "*.jpg")`, "true"},
		{`shExpMatch("foo5.jpg", "*o?.jpg")`, "true"},
		{`shExpMatch("foo.jpg", ".jpg")`, "false"},
		{`shExpMatch("foo.jpg", "foo")`, "false"},
		{`shExpMatch("fooXjpg", "foo.jpg")`, "false"}, // '.' is literal
		{`shExpMatch("http://www.example.com/x", "http://*.example.com/*")`, "true"},
		{`shExpMatch("", "*")`, "true"},
		{`shExpMatch("", "?")`, "false"},
		{`shExpMatch("é", "?")`, "true"},
		{`shExpMatch("abc", "a*b*c*")`, "true"},
		{`shExpMatch("ABC", "abc")`, "false"}, // case-sensitive
		{`shExpMatch("www.b.com", "*.(a|b).com")`, "true"},
		{`shExpMatch("www.c.com", "*.(a|b).com")`, "false"},
		{`shExpMatch("host7", "host[0-9]")`, "true"},
		{`shExpMatch("a+b", "a+b")`, "false"}, // '+' is a quantifier
		{`shExpMatch("aab", "a+b")`, "true"},
		{`shExpMatch("a\nb", "a*b")`, "false"}, // '.*' does not cross a newline
		{`shExpMatch(12345, "123*")`, "true"},  // the string is String()ed
		{`shExpMatch(undefined, "undef*")`, "true"},
		{`shExpMatch("x", "(")`, "throws: "},
		{`shExpMatch("x", 1)`, "throws: TypeError"},
		{`shExpMatch("x")`, "throws: TypeError"},

		// isValidIpAddress and convert_addr, from the browsers' library.
		{`isValidIpAddress("10.0.0.1")`, "true"},
		{`isValidIpAddress("10.0.0.256")`, "false"},
		{`isValidIpAddress("10.0.0")`, "false"},
		{`isValidIpAddress("010.0.0.1")`, "true"},
		{`isValidIpAddress("1.2.3.4 ")`, "false"},
		{`convert_addr("104.16.41.2")`, "1745889538"},
		{`convert_addr("255.255.255.255")`, "-1"},
		{`convert_addr("1.2.3.x")`, "16909056"},
		{`convert_addr("1.2.3.260")`, "16909060"}, // 260 & 0xff = 4
		{`convert_addr(5)`, "throws: TypeError"},

		// isInNet: pattern and mask must be dotted quads; hosts resolve (IPv4).
		{`isInNet("198.95.249.79", "198.95.249.79", "255.255.255.255")`, "true"},
		{`isInNet("198.95.249.79", "198.95.0.0", "255.255.0.0")`, "true"},
		{`isInNet("198.96.0.1", "198.95.0.0", "255.255.0.0")`, "false"},
		{`isInNet("192.89.132.a", "192.89.0.0", "255.255.0.0")`, "false"},
		{`isInNet("10.100.9.1", "10.100.265.0", "255.255.255.0")`, "false"}, // invalid pattern
		{`isInNet("10.1.2.3", "10.0.0.0", "255.0.0")`, "false"},
		{`isInNet("intranet.corp", "10.0.0.0", "255.0.0.0")`, "true"},
		{`isInNet("www.example.com", "10.0.0.0", "255.0.0.0")`, "false"},
		{`isInNet("unknown.example", "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet("v6only.example", "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet("::1", "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet(null, "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet("1.2.3.4", "0.0.0.0", "0.0.0.0", "extra")`, "true"},

		// dnsResolve: IPv4 only, first address; null on failure or bad argument.
		{`dnsResolve("www.example.com")`, "93.184.216.34"},
		{`dnsResolve("WWW.Example.COM.")`, "93.184.216.34"},
		{`dnsResolve("two.example")`, "192.0.2.1"},
		{`dnsResolve("v6only.example")`, "null"},
		{`dnsResolve("unknown.example")`, "null"},
		{`dnsResolve("10.0.0.1")`, "10.0.0.1"},
		{`dnsResolve("127.1")`, "127.0.0.1"},
		{`dnsResolve("::1")`, "null"},
		{`dnsResolve("")`, "null"},
		{`dnsResolve()`, "null"},
		{`dnsResolve(1)`, "null"},
		{`dnsResolve("b\u00fccher.ch")`, "192.0.2.99"}, // IDN → punycode
		{`isResolvable("www.example.com")`, "true"},
		{`isResolvable("v6only.example")`, "false"},
		{`isResolvable("unknown.example")`, "false"},
		{`isResolvable(null)`, "false"},

		// The Microsoft IPv6 extensions.
		{`dnsResolveEx("www.example.com")`, "93.184.216.34;2606:2800:220:1:248:1893:25c8:1946"},
		{`dnsResolveEx("v6only.example")`, "2001:db8::1"},
		{`dnsResolveEx("unknown.example")`, ""},
		{`dnsResolveEx("::1")`, "::1"},
		{`dnsResolveEx(1)`, "undefined"},
		{`isResolvableEx("v6only.example")`, "true"},
		{`isResolvableEx("unknown.example")`, "false"},
		{`isResolvableEx(null)`, "true"}, // Chromium's quirk: undefined != ""
		{`myIpAddress()`, "10.9.8.7"},    // the first IPv4 one
		{`myIpAddressEx()`, "2001:db8::42;10.9.8.7"},
		{`isInNetEx("198.95.249.79", "198.95.249.79/32")`, "true"},
		{`isInNetEx("198.95.249.79", "198.95.0.0/16")`, "true"},
		{`isInNetEx("198.95.115.10", "198.95.0.0/34")`, "false"},
		{`isInNetEx("3ffe:8311:ffff::1", "3ffe:8311:fff0::/44")`, "true"},
		{`isInNetEx("3ffe:8312::1", "3ffe:8311:fff0::/44")`, "false"},
		{`isInNetEx("127.0.0.1", "0:0:0:0:0:0:7f00:1/16")`, "true"},
		{`isInNetEx("::ffff:192.168.100.5", "192.168.1.1/16")`, "true"},
		{`isInNetEx("192.168.1.1", "::ffff:192.168.1.1/112")`, "true"},
		{`isInNetEx("127.0.0.1", "127.0.0.1")`, "false"},
		{`isInNetEx("10.1.2.3", " 10.0.0.0 / 8 ")`, "true"},
		{`isInNetEx(" 10.1.2.3", "10.0.0.0/8")`, "false"},
		{`isInNetEx("www.example.com", "0.0.0.0/0")`, "false"}, // never resolves
		{`isInNetEx("10.1.2.3")`, "null"},
		{`isInNetEx(1, "10.0.0.0/8")`, "null"},
		{`sortIpAddressList("10.2.3.9;2001:4898:28:3:201:2ff:feea:fc14;::1;127.0.0.1;::9")`, "::1;::9;2001:4898:28:3:201:2ff:feea:fc14;10.2.3.9;127.0.0.1"},
		{`sortIpAddressList("2001:4898:28:3:201:2ff:feea:fc14;fe80::5efe:157:9d3b:8b16;10.2.3.9")`, "2001:4898:28:3:201:2ff:feea:fc14;fe80::5efe:157:9d3b:8b16;10.2.3.9"},
		{`sortIpAddressList("0::1;::1;0:0::1")`, "0::1;::1;0:0::1"}, // stable, as written
		{`sortIpAddressList(" 127.0.0.1 ; 10.0.0.1 ")`, "10.0.0.1;127.0.0.1"},
		{`sortIpAddressList(";127.0.0.1;")`, "127.0.0.1"},
		{`sortIpAddressList("127.1;::2")`, "::2;127.1"},
		{`sortIpAddressList("")`, "false"},
		{`sortIpAddressList(";")`, "false"},
		{`sortIpAddressList("256.0.0.1")`, "false"},
		{`sortIpAddressList("www.example.com")`, "false"},
		{`sortIpAddressList()`, "null"},
		{`getClientVersion()`, "1.0"},

		// The date and time functions at Monday 2026-11-23 10:30:15 UTC
		// (datetime_test.go covers them in depth).
		{`weekdayRange("MON")`, "true"},
		{`weekdayRange("SAT", "WED")`, "true"},
		{`weekdayRange("FRI", "SUN")`, "false"},
		{`weekdayRange("mon")`, "false"},
		{`dateRange("NOV")`, "true"},
		{`dateRange(23)`, "true"},
		{`dateRange(2026)`, "true"},
		{`timeRange(10)`, "true"},
		{`timeRange(9, 17)`, "true"},
		{`timeRange(1, 2, 3)`, "throws: timeRange: bad number of arguments"},
		{`timeRange("GMT")`, "throws: timeRange: bad number of arguments"},

		// alert returns undefined.
		{`alert("hello")`, "undefined"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := evalExpr(t, testOptions(), tc.expr)
			if want, ok := strings.CutPrefix(tc.want, "throws: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s = %q, %v; want an exception containing %q", tc.expr, got, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%s = %q, %v; want %q", tc.expr, got, err, tc.want)
			}
		})
	}
}

func TestAlert(t *testing.T) {
	var got []string
	opts := testOptions()
	opts.Alert = func(msg string) { got = append(got, msg) }
	for _, expr := range []string{`alert("hi")`, `alert()`, `alert(null)`, `alert({})`, `alert(1, 2)`} {
		if _, err := evalExpr(t, opts, expr); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"hi", "undefined", "null", "[object Object]", "1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("alerts = %q, want %q", got, want)
	}
}

func TestMyIpAddressFallback(t *testing.T) {
	opts := testOptions()
	opts.LocalAddrs = func() ([]netipAddr, error) { return nil, nil }
	for expr, want := range map[string]string{`myIpAddress()`: "127.0.0.1", `myIpAddressEx()`: "127.0.0.1"} {
		if got, err := evalExpr(t, opts, expr); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", expr, got, err, want)
		}
	}
	opts.LocalAddrs = func() ([]netipAddr, error) { return []netipAddr{mustAddr("2001:db8::7")}, nil }
	if got, _ := evalExpr(t, opts, `myIpAddress()`); got != "2001:db8::7" {
		t.Errorf("myIpAddress() with only IPv6 = %q, want 2001:db8::7", got)
	}
}
