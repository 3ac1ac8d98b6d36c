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
