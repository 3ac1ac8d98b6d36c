package pac

import (
	"fmt"
	"net/url"
	"strings"
)

// scriptArgs turns a request URL into the url and host arguments Chromium
// gives FindProxyForURL: scheme and host in lower case, default port dropped,
// credentials and fragment removed, and for https and wss URLs the path and
// query removed too, so that a PAC script (which may send what it sees
// anywhere through DNS) never learns more of a secure URL than its origin.
// The host is the URL's host without IPv6 brackets.
func scriptArgs(raw string) (string, string, error) {
	if host, ok := canonicalURL(raw); ok {
		return raw, host, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("pac: bad URL %q: %w", raw, unwrapURLError(err))
	}
	if u.Scheme == "" || u.Host == "" && u.Opaque == "" {
		return "", "", fmt.Errorf("pac: bad URL %q: want an absolute URL such as https://www.example.com/", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == defaultPorts[scheme] {
		port = ""
	}
	out := &url.URL{Scheme: scheme, Host: hostPort(host, port)}
	switch scheme {
	case "https", "wss":
		out.Path = "/"
	default:
		out.Opaque, out.Path, out.RawPath, out.RawQuery = u.Opaque, u.Path, u.RawPath, u.RawQuery
		out.ForceQuery = u.ForceQuery
		if out.Path == "" && out.Opaque == "" {
			out.Path = "/"
		}
	}
	return out.String(), host, nil
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return host
	}
	return host + ":" + port
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// canonicalURL reports whether raw is already in the form scriptArgs
// produces, as most URLs the agent sees are, so that it can be used without
// parsing and rebuilding; it returns the host. It accepts only a plain
// subset (lower-case scheme and host name, no credentials, IPv6 literal,
// fragment or percent sign) and leaves everything else to net/url.
func canonicalURL(raw string) (string, bool) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", false
	}
	def, known := defaultPorts[scheme]
	if !known {
		return "", false
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return "", false
	}
	authority, path := rest[:slash], rest[slash:]
	host, port, hasPort := strings.Cut(authority, ":")
	if host == "" || hasPort && (port == "" || port == def || port[0] == '0' || len(port) > 5) {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return "", false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	if scheme == "https" || scheme == "wss" {
		return host, path == "/"
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("#%\"<>\\^`{|}", c) >= 0 {
			return "", false
		}
	}
	return host, true
}
