package sysproxy

import "strings"

// winhttpBypass is the bypass list for WinHTTP's default proxy: "<local>"
// (names without a dot), then Settings.noProxy with ".example.com" written
// as WinHTTP's "*.example.com". CIDR ranges, which WinHTTP cannot express,
// are left out.
func winhttpBypass(s Settings) string {
	out := []string{"<local>"}
	for _, b := range s.noProxy() {
		switch {
		case strings.Contains(b, "/"):
			continue
		case strings.HasPrefix(b, "."):
			b = "*" + b
		}
		out = append(out, b)
	}
	return strings.Join(out, ";")
}
