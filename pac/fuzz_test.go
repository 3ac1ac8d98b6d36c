package pac

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fuzzTimeout is the evaluation limit under fuzzing; an evaluation that
// takes many times longer is a hang.
const fuzzTimeout = 200 * time.Millisecond

// allFunctions calls every PAC function with the fuzzed url and host.
const allFunctions = `
function FindProxyForURL(url, host) {
    var r = [isPlainHostName(host), dnsDomainIs(host, ".example.com"), localHostOrDomainIs(host, "www.example.com"),
        isResolvable(host), isInNet(host, "10.0.0.0", "255.0.0.0"), dnsResolve(host), convert_addr(host),
        dnsDomainLevels(host), shExpMatch(url, "*" + host.substring(0, 8) + "*"), isResolvableEx(host),
        isInNetEx(host, "10.0.0.0/8"), isInNetEx("10.1.2.3", host), dnsResolveEx(host), sortIpAddressList(host),
        isValidIpAddress(host), weekdayRange(host), dateRange(host), timeRange(host), myIpAddress(), url];
    return r.join(",");
}`

var fuzzScripts = sync.OnceValues(func() ([]*Script, error) {
	srcs := map[string]string{"all-functions.pac": allFunctions}
	files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "pac-corpus", "*.pac"))
	files = append(files, filepath.Join("testdata", "corporate.pac"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		srcs[filepath.Base(f)] = string(b)
	}
	var scripts []*Script
	for name, src := range srcs {
		opts := corpusOptions()
		opts.Name, opts.Timeout = name, fuzzTimeout
		s, err := New([]byte(src), opts)
		if err != nil {
			return nil, err
		}
		scripts = append(scripts, s)
	}
	return scripts, nil
})

// FuzzEval evaluates the corpus, the example PAC file and a script calling
// every function with random URLs and hosts: no panic, no hang, and every
// answer is either an error or a string.
func FuzzEval(f *testing.F) {
	for _, seed := range [][2]string{
		{"http://www.example.com/", ""}, {"https://10.1.2.3:8443/x?y", ""}, {"http://[::1]/", "::1"},
		{"http://a/'+alert(1)+'", "a'); while(1){} ('"}, {"ftp://x.y.z/", "x.y.z"}, {"http://h/", "*(a|b)?.."},
		{"http://h/", "1.2.3.4;::1;bad"}, {"http://h/", "10.0.0.0/8"}, {"http://h/", "GMT"},
	} {
		f.Add(seed[0], seed[1])
	}
	scripts, err := fuzzScripts()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, url, host string) {
		for _, s := range scripts {
			start := time.Now()
			res, err := s.Eval(context.Background(), url, host)
			if d := time.Since(start); d > 10*fuzzTimeout {
				t.Fatalf("%s: Eval(%q, %q) took %v, limit %v", s.opts.Name, url, host, d, fuzzTimeout)
			}
			if err == nil && res.Routes == nil && res.RouteErr == nil {
				t.Fatalf("%s: Eval(%q, %q) = %+v: no routes and no error", s.opts.Name, url, host, res)
			}
		}
	})
}

// FuzzNew compiles and runs random scripts: New and Eval either succeed or
// fail with an error, never panic or hang.
func FuzzNew(f *testing.F) {
	f.Add("function FindProxyForURL(url, host) { return 'DIRECT'; }")
	f.Add("L: function FindProxyForURL(u, h) { return 'PROXY ' + h + ':80'; }")
	f.Add("<!--\nfunction FindProxyForURL(u, h) { while (true) {} }\n-->")
	f.Add("var FindProxyForURL = function(u, h) { return shExpMatch(u, '(a|b)*') ? 'DIRECT' : null; };")
	f.Add("function FindProxyForURL(u, h) { return f(); } function f() { return f(); }")
	if b, err := os.ReadFile(filepath.Join("testdata", "corporate.pac")); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, src string) {
		opts := testOptions()
		opts.Timeout = fuzzTimeout
		opts.MaxRuntimes = 1
		start := time.Now()
		s, err := New([]byte(src), opts)
		if err == nil {
			_, err = s.Eval(context.Background(), "http://www.example.com/", "")
		}
		if d := time.Since(start); d > 10*fuzzTimeout {
			t.Fatalf("took %v (limit %v), error %v", d, fuzzTimeout, err)
		}
		var se *SyntaxError
		if errors.As(err, &se) && (se.Line < 1 || se.Column < 1) {
			t.Fatalf("syntax error without a position: %+v", se)
		}
	})
}
