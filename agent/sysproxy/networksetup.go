package sysproxy

import (
	"fmt"
	"strings"
)

// Parsers for the output of macOS networksetup; here, not in the darwin
// file, so that they are tested everywhere.

// parseNetworkServices reads `networksetup -listallnetworkservices`: a
// header line, then one service per line, disabled ones starting with "*".
func parseNetworkServices(out []byte) []string {
	var svcs []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*"))
		if l == "" || strings.HasPrefix(l, "An asterisk") {
			continue
		}
		svcs = append(svcs, l)
	}
	return svcs
}

// autoProxy is a service's automatic proxy configuration.
type autoProxy struct {
	URL     string `json:"url"` // "" for none
	Enabled bool   `json:"enabled"`
}

// parseAutoProxy reads `networksetup -getautoproxyurl SERVICE`:
//
//	URL: http://127.0.0.1:3129/proxy.pac
//	Enabled: Yes
//
// with "URL: (null)" when none was ever set.
func parseAutoProxy(out []byte) (autoProxy, error) {
	var a autoProxy
	var sawURL, sawEnabled bool
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "URL":
			sawURL = true
			if v != "(null)" {
				a.URL = v
			}
		case "Enabled":
			sawEnabled = true
			a.Enabled = v == "Yes"
		}
	}
	if !sawURL || !sawEnabled {
		return a, fmt.Errorf("unexpected networksetup output %q", strings.TrimSpace(string(out)))
	}
	return a, nil
}
