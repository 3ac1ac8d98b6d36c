package pactester

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePAC(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "proxy.pac")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

const echoPAC = `function FindProxyForURL(url, host) {
  return [url, host, myIpAddress(), myIpAddressEx(), String(dnsResolve("a.test")), dnsResolveEx("a.test"),
          String(dnsResolve("real.example.com")), weekdayRange("MON"), timeRange(10), timeRange(9, "GMT")].join(" | ");
}`

func TestFlags(t *testing.T) {
	pac := writePAC(t, echoPAC)
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"defaults from the URL", []string{"-p", pac, "-u", "https://www.example.com/x?y", "-c", "10.0.0.5", "--dns", "a.test=1.2.3.4", "--now", "2026-11-23T10:30:00Z"},
			"UTC", "https://www.example.com/ | www.example.com | 10.0.0.5 | 10.0.0.5 | 1.2.3.4 | 1.2.3.4 | null | true | true | false"},
		{"explicit host", []string{"-p", pac, "-u", "http://www.example.com/", "-h", "other", "-c", "10.0.0.5", "--dns", "a.test=1.2.3.4", "--now", "2026-11-23T10:30:00Z"},
			"UTC", "http://www.example.com/ | other | 10.0.0.5 | 10.0.0.5 | 1.2.3.4 | 1.2.3.4 | null | true | true | false"},
		{"several addresses and names", []string{"-p", pac, "-u", "http://x/", "-c", "2001:db8::5,10.0.0.5,10.0.0.6", "--dns", "a.test=1.2.3.4,a.test=2001:db8::1,a.test=5.6.7.8", "--now", "2026-11-23T10:30:00Z"},
			"UTC", "http://x/ | x | 10.0.0.5 | 2001:db8::5;10.0.0.5;10.0.0.6 | 1.2.3.4 | 1.2.3.4;2001:db8::1;5.6.7.8 | null | true | true | false"},
		{"--now in the local zone", []string{"-p", pac, "-u", "http://x/", "-c", "10.0.0.5", "--dns", "a.test=1.2.3.4", "--now", "2026-11-23T09:30:00Z"},
			"Europe/Paris", "http://x/ | x | 10.0.0.5 | 10.0.0.5 | 1.2.3.4 | 1.2.3.4 | null | true | true | true"},
		{"--now without offset is local", []string{"-p", pac, "-u", "http://x/", "-c", "10.0.0.5", "--dns", "a.test=1.2.3.4", "--now", "2026-11-23T10:30:00"},
			"Europe/Paris", "http://x/ | x | 10.0.0.5 | 10.0.0.5 | 1.2.3.4 | 1.2.3.4 | null | true | true | true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TZ", tc.env)
			reloadLocal(t)
			code, out, errOut := runMain(tc.args...)
			if code != 0 || out != tc.want+"\n" {
				t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %s", code, out, tc.want+"\n", errOut)
			}
		})
	}
}

func TestOutputIsExactlyTheResult(t *testing.T) {
	pac := writePAC(t, `function FindProxyForURL(url, host) { return "  PROXY a:1 ;  DIRECT  "; }`)
	code, out, errOut := runMain("-p", pac, "-u", "http://x/")
	if code != 0 || out != "  PROXY a:1 ;  DIRECT  \n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		src  string
		args []string
		want []string // substrings of stderr
	}{
		{"missing -p", "", []string{"-u", "http://x/"}, []string{"missing -p FILE", "Usage:"}},
		{"missing -u", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{}, []string{"missing -u URL"}},
		{"no such file", "", []string{"-p", filepath.Join(dir, "nope.pac"), "-u", "http://x/"}, []string{"nope.pac", "no such file"}},
		{"syntax error", "function FindProxyForURL(url, host) {\n\tif (host == ) return 'DIRECT';\n}", []string{"-u", "http://x/"},
			[]string{"proxy.pac:2:14: SyntaxError", "  2 | \tif (host == ) return 'DIRECT';", "\n      \t            ^"}},
		{"throws", "function FindProxyForURL(url, host) {\n  return host.nope.x;\n}", []string{"-u", "http://x/"},
			[]string{"proxy.pac:2:", "TypeError", "(in FindProxyForURL)", "  2 |   return host.nope.x;"}},
		{"not a string", "function FindProxyForURL(url, host) { if (host == 'y') return 'DIRECT'; }", []string{"-u", "http://x/"},
			[]string{"returned undefined", "not a string"}},
		{"bad URL", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{"-u", "www.example.com"}, []string{"bad URL", "absolute URL"}},
		{"bad -c", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{"-u", "http://x/", "-c", "10.0.0"}, []string{"-c:", "not an IP address"}},
		{"bad --dns", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{"-u", "http://x/", "--dns", "a.test"}, []string{"want NAME=IP"}},
		{"bad --now", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{"-u", "http://x/", "--now", "yesterday"}, []string{"--now", "RFC 3339"}},
		{"unknown flag", "function FindProxyForURL(u,h){return 'DIRECT'}", []string{"-u", "http://x/", "-x"}, []string{"flag provided but not defined: -x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.src != "" {
				args = append([]string{"-p", writePAC(t, tc.src)}, args...)
			}
			code, out, errOut := runMain(args...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q; want exit 1 and no output", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestWarnsAboutBadRoutes(t *testing.T) {
	pac := writePAC(t, `function FindProxyForURL(url, host) { return "PROXY a:1; PRXY b:2"; }`)
	code, out, errOut := runMain("-p", pac, "-u", "http://x/")
	if code != 0 || out != "PROXY a:1; PRXY b:2\n" || !strings.Contains(errOut, `warning: `) || !strings.Contains(errOut, `element 2 "PRXY b:2"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runMain("--help")
	if code != 0 || !strings.Contains(out, "Usage: agent pac") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
}

func TestAlertsGoToStderr(t *testing.T) {
	pac := writePAC(t, `function FindProxyForURL(url, host) { alert("checking " + host); return "DIRECT"; }`)
	code, out, errOut := runMain("-p", pac, "-u", "http://x/")
	if code != 0 || out != "DIRECT\n" || errOut != "alert: checking x\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
