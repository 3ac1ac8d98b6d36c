package pac

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestCorpus")

// corpusDir finds the shared corpus of real PAC files (../shared/pac-corpus
// next to the repository, or $VIGIE_PAC_CORPUS). They are kept out of the
// repository on purpose: each keeps its own licence.
func corpusDir(t testing.TB) string {
	dir := os.Getenv("VIGIE_PAC_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "pac-corpus")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("PAC corpus not found at %s (set VIGIE_PAC_CORPUS): %v", dir, err)
	}
	return dir
}

// corpusURLs is every URL each corpus file is asked about: the common cases
// of any PAC file, then the names the files test for.
var corpusURLs = []string{
	"http://www.example.com/",
	"https://www.example.com/secret/path?token=1",
	"http://intranet/",
	"http://localhost/",
	"http://10.1.2.3/",
	"http://10.0.3.4/",
	"https://10.1.2.3/",
	"http://172.16.5.5/",
	"http://192.168.1.1/",
	"http://192.168.10.4/",
	"http://192.168.10.5/",
	"http://192.168.10.6/",
	"http://192.168.10.7/",
	"http://192.168.10.8/",
	"http://192.168.10.9/",
	"http://127.0.0.1:8080/",
	"http://[2001:db8::1]/",
	"ftp://ftp.example.org/pub/file",
	"http://www.google.com/",
	"https://mail.google.com/mail/",
	"http://www.manugarg.com/",
	"http://pacparser.manugarg.com/",
	"http://host.externaldomain.com/",
	"http://x.notresolvabledomainxxx.com/",
	"http://www.example.com/it's",
	"http://foo.bar.baz.com/",
	"http://abcdomain.com/folder/page",
	"http://www.abcdomain.com/",
	"http://intranet.domain.com/",
	"http://printer.local/",
	"http://www.regione.emilia-romagna.it/",
	"http://bbcc.ibc.rer.it/",
	"https://195.62.160.214:8181/app",
	"http://www.prefettura.it/",
	"http://ws.ziti.http/",
	"http://www.bloomberg.com/",
	"http://www.nyu.edu/",
	"http://www.lib.ntou.edu.tw/",
	"http://ocean.ntou.edu.tw/",
	"http://www.jstor.org/",
	"http://www.sciencedirect.com/",
	"http://www.bcu.ac.uk/",
	"http://www.brz.gv.at/",
	"http://portal.bmf.gv.at/",
	"http://www.microsoft.com/",
	"http://ipv6.example.net/",
}

// corpusOptions pins the clock (Monday 2026-11-23 10:30 UTC), the machine's
// addresses and DNS.
func corpusOptions() Options {
	dns := StaticResolver{}
	for name, ips := range map[string]string{
		"www.example.com": "93.184.216.34", "www.google.com": "142.250.1.1", "mail.google.com": "142.250.1.2",
		"intranet": "10.0.0.5", "intranet.domain.com": "10.20.0.1", "printer.local": "192.168.1.50",
		"www.manugarg.com": "216.239.32.21", "pacparser.manugarg.com": "216.239.32.22",
		"host.externaldomain.com": "198.51.100.9", "foo.bar.baz.com": "10.5.5.5",
		"www.regione.emilia-romagna.it": "193.43.193.5", "www.prefettura.it": "151.1.1.1",
		"www.nyu.edu": "128.122.119.202", "www.lib.ntou.edu.tw": "140.121.180.1",
		"ocean.ntou.edu.tw": "140.121.180.2", "www.jstor.org": "192.0.2.10", "www.sciencedirect.com": "192.0.2.11",
		"www.bcu.ac.uk": "192.0.2.12", "www.brz.gv.at": "193.186.1.1", "portal.bmf.gv.at": "193.186.2.2",
		"www.microsoft.com": "192.0.2.13", "ipv6.example.net": "2001:db8::99",
		"www.bloomberg.com": "192.0.2.14", "bbcc.ibc.rer.it": "193.43.192.7",
	} {
		dns[name] = []netip.Addr{netip.MustParseAddr(ips)}
	}
	return Options{
		Now:      func() time.Time { return time.Date(2026, time.November, 23, 10, 30, 0, 0, time.UTC) },
		Location: time.UTC,
		Resolver: dns,
		LocalAddrs: func() ([]netip.Addr, error) {
			return []netip.Addr{mustAddr("10.10.5.20"), mustAddr("3ffe:8311:ffff::5")}, nil
		},
		Alert: func(string) {},
	}
}

// TestCorpus evaluates every real PAC file of the corpus for every URL and
// compares with testdata/golden/<file>.golden (go test -run TestCorpus
// -update rewrites them; review the diff). Each file is evaluated twice, the
// second time from the cache, with the same answers.
func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if !strings.HasSuffix(file, ".pac") && !strings.HasSuffix(file, ".dat") {
			continue
		}
		n++
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			opts := corpusOptions()
			opts.Name = name
			s, err := New(src, opts)
			if err != nil {
				t.Fatalf("a PAC file browsers load was refused: %v", err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# %s: %s\n", name, s.CacheStatus())
			for round := 0; round < 2; round++ {
				var r strings.Builder
				for _, u := range corpusURLs {
					res, err := s.Eval(context.Background(), u, "")
					switch {
					case err != nil:
						fmt.Fprintf(&r, "%s -> error: %v\n", u, err)
					case res.RouteErr != nil:
						fmt.Fprintf(&r, "%s -> %q (%v)\n", u, res.Raw, res.RouteErr)
					default:
						fmt.Fprintf(&r, "%s -> %q\n", u, res.Raw)
					}
				}
				if round == 0 {
					b.WriteString(r.String())
				} else if r.String() != b.String()[strings.IndexByte(b.String(), '\n')+1:] {
					t.Fatalf("cached answers differ from the first ones:\n%s", r.String())
				}
			}
			golden := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pac -run TestCorpus -update)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("%s differs from %s:\n%s", name, golden, lineDiff(string(want), got))
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d PAC files in %s", n, dir)
	}
}

// lineDiff lists the lines that differ, for test failures.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "-%s\n+%s\n", wl, gl)
		}
	}
	return b.String()
}
