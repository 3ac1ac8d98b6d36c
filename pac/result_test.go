package pac

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseResult(t *testing.T) {
	tests := []struct {
		in   string
		want string // routes joined by "; ", then " !" and the bad elements' indexes
	}{
		{"DIRECT", "DIRECT"},
		{"", "DIRECT"},
		{"  ;  ; ", "DIRECT"},
		{"PROXY proxy.example.com:8080", "PROXY proxy.example.com:8080"},
		{"PROXY a:1; PROXY b:2; DIRECT", "PROXY a:1; PROXY b:2; DIRECT"},
		{"proxy A.Example:1;direct", "PROXY a.example:1; DIRECT"},
		{"   PROXY \t foopy:10   ", "PROXY foopy:10"},
		{"HTTP web:3128", "PROXY web:3128"},
		{"HTTPS secure.example:8443", "HTTPS secure.example:8443"},
		{"SOCKS s:1080", "SOCKS4 s:1080"},
		{"SOCKS4 s:1081; SOCKS5 s:1082", "SOCKS4 s:1081; SOCKS5 s:1082"},
		{"PROXY foopy", "PROXY foopy:80"},
		{"HTTPS foopy", "HTTPS foopy:443"},
		{"SOCKS5 foopy", "SOCKS5 foopy:1080"},
		{"PROXY [2001:db8::1]:3128", "PROXY [2001:db8::1]:3128"},
		{"PROXY [2001:DB8::1]", "PROXY [2001:db8::1]:80"},
		{"PROXY 10.0.0.1:3128", "PROXY 10.0.0.1:3128"},
		{"DIRECT;DIRECT", "DIRECT; DIRECT"},
		{"PROXY foopy1 ; JUNK ; JUNK ; SOCKS5 foopy2 ; ;", "PROXY foopy1:80; SOCKS5 foopy2:1080 !2,3"},
		{"JUNK", " !1"},
		{"PROXY", " !1"},
		{"PROXY foo:", " !1"},
		{"PROXY foo:0", " !1"},
		{"PROXY foo:65536", " !1"},
		{"PROXY foo:http", " !1"},
		{"PROXY u@foo:80", " !1"},
		{"PROXY foo/bar:80", " !1"},
		{"PROXY 2001:db8::1", " !1"},
		{"PROXY [2001:db8::1", " !1"},
		{"PROXY [nothex]:80", " !1"},
		{"PROXY [::1]x", " !1"},
		{"DIRECT foopy:10", " !1"},
		{"PROXY-foopy:10", " !1"},
		{"QUIC q:443", " !1"},
		{"secureUrl", " !1"},
		{"PROXY a:1 extra", " !1"},
	}
	for _, tc := range tests {
		routes, err := ParseResult(tc.in)
		parts := make([]string, len(routes))
		for i, r := range routes {
			parts[i] = r.String()
		}
		got := strings.Join(parts, "; ")
		var rerr *ResultError
		if errors.As(err, &rerr) {
			var idx []string
			for _, b := range rerr.Bad {
				idx = append(idx, strconv.Itoa(b.Index))
			}
			got += " !" + strings.Join(idx, ",")
		} else if err != nil {
			t.Errorf("ParseResult(%q): unexpected error type %T: %v", tc.in, err, err)
		}
		if got != tc.want {
			t.Errorf("ParseResult(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestResultErrorNamesTheElement(t *testing.T) {
	_, err := ParseResult("PROXY good:1; PRXY typo:2; PROXY bad:99999")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`element 2 "PRXY typo:2": unknown keyword "PRXY"`, `element 3 "PROXY bad:99999": port "99999"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestRouteAddr(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		addr string
	}{
		{Route{Kind: Direct}, ""},
		{Route{Kind: HTTP, Host: "p", Port: 3128}, "p:3128"},
		{Route{Kind: SOCKS5, Host: "2001:db8::1", Port: 1080}, "[2001:db8::1]:1080"},
	} {
		if got := tc.r.Addr(); got != tc.addr {
			t.Errorf("%v.Addr() = %q, want %q", tc.r, got, tc.addr)
		}
	}
	if Kind(9).String() != "Kind(9)" {
		t.Error("unknown kind")
	}
}

// FuzzParseResult: any string parses without panic; every route it returns
// formats to an element that parses back to the same route.
func FuzzParseResult(f *testing.F) {
	for _, s := range []string{"DIRECT", "PROXY a:1; DIRECT", "SOCKS5 [::1]:1080", "HTTPS h", ";;", "PROXY [", "proxy A:65535 ; socks b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		routes, err := ParseResult(s)
		if err == nil && len(routes) == 0 {
			t.Fatalf("ParseResult(%q): no routes and no error", s)
		}
		for _, r := range routes {
			back, err := ParseResult(r.String())
			if err != nil || len(back) != 1 || back[0] != r {
				t.Fatalf("route %+v from %q formats as %q, which parses to %+v, %v", r, s, r.String(), back, err)
			}
		}
	})
}
