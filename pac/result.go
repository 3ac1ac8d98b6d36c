package pac

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is the type of one element of a PAC result.
type Kind uint8

// The route kinds a PAC result can name. SOCKS without a version is SOCKS4,
// as Chromium and Firefox read it.
const (
	Direct Kind = iota // DIRECT: connect to the origin itself
	HTTP               // PROXY or HTTP host:port: an HTTP forward proxy
	HTTPS              // HTTPS host:port: an HTTP proxy spoken to over TLS
	SOCKS4             // SOCKS or SOCKS4 host:port
	SOCKS5             // SOCKS5 host:port
)

var kindNames = [...]string{Direct: "DIRECT", HTTP: "PROXY", HTTPS: "HTTPS", SOCKS4: "SOCKS4", SOCKS5: "SOCKS5"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Route is one element of a PAC result: where to send the request.
type Route struct {
	Kind Kind
	Host string // proxy host name or IP literal, without brackets; empty for Direct
	Port uint16 // proxy port; 0 for Direct
}

// Addr is the proxy's host:port (IPv6 literals bracketed), or "" for Direct.
func (r Route) Addr() string {
	if r.Kind == Direct {
		return ""
	}
	return net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
}

// String formats the route as a PAC result element, for example
// "PROXY proxy.example.com:8080" or "DIRECT".
func (r Route) String() string {
	if r.Kind == Direct {
		return "DIRECT"
	}
	return r.Kind.String() + " " + r.Addr()
}

// defaultPort is the port a proxy element gets when it names none, as in
// Chromium: 80 for PROXY/HTTP, 443 for HTTPS, 1080 for SOCKS.
func (k Kind) defaultPort() uint16 {
	switch k {
	case HTTP:
		return 80
	case HTTPS:
		return 443
	default:
		return 1080
	}
}

// ResultError reports the elements of a PAC result that could not be parsed.
type ResultError struct {
	Result string       // the whole string the script returned
	Bad    []BadElement // every element that was rejected, in order
}

// BadElement is one rejected element of a PAC result.
type BadElement struct {
	Index   int    // 1-based position among the result's ';'-separated elements
	Element string // the element as written, trimmed
	Reason  string
}

func (e *ResultError) Error() string {
	var b strings.Builder
	b.WriteString("pac: bad result ")
	b.WriteString(strconv.Quote(e.Result))
	for i, bad := range e.Bad {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " element %d %q: %s", bad.Index, bad.Element, bad.Reason)
	}
	return b.String()
}

// ParseResult parses the string FindProxyForURL returned into routes, in
// order. Elements are separated by ';'; keywords are case-insensitive and
// surrounding white space is ignored; empty elements are skipped. A proxy
// without a port gets its scheme's default port; host names are lower-cased.
// An empty result means DIRECT, as the Netscape specification says.
//
// When some elements are malformed, ParseResult returns the routes that did
// parse together with a *ResultError naming each bad element: Chromium skips
// bad elements the same way. When no element is valid, the routes are empty
// (Chromium would then go DIRECT; the agent decides by its continuity
// policy instead).
func ParseResult(s string) ([]Route, error) {
	var routes []Route
	var rerr *ResultError
	index := 0
	for rest := s; rest != ""; {
		var elem string
		elem, rest, _ = strings.Cut(rest, ";")
		elem = strings.TrimSpace(elem)
		if elem == "" {
			continue
		}
		index++
		r, reason := parseElement(elem)
		if reason != "" {
			if rerr == nil {
				rerr = &ResultError{Result: s}
			}
			rerr.Bad = append(rerr.Bad, BadElement{Index: index, Element: elem, Reason: reason})
			continue
		}
		routes = append(routes, r)
	}
	if rerr != nil {
		return routes, rerr
	}
	if index == 0 {
		return []Route{{Kind: Direct}}, nil
	}
	return routes, nil
}

// parseElement parses one trimmed, non-empty element. It returns a reason
// when the element is malformed.
func parseElement(elem string) (Route, string) {
	keyword, addr := elem, ""
	if i := strings.IndexAny(elem, " \t\r\n\v\f"); i >= 0 {
		keyword, addr = elem[:i], strings.TrimSpace(elem[i+1:])
	}
	var k Kind
	switch strings.ToUpper(keyword) {
	case "DIRECT":
		if addr != "" {
			return Route{}, "DIRECT takes no address"
		}
		return Route{Kind: Direct}, ""
	case "PROXY", "HTTP":
		k = HTTP
	case "HTTPS":
		k = HTTPS
	case "SOCKS", "SOCKS4":
		k = SOCKS4
	case "SOCKS5":
		k = SOCKS5
	case "QUIC":
		return Route{}, "QUIC proxies are not supported"
	default:
		return Route{}, fmt.Sprintf("unknown keyword %q; expected DIRECT, PROXY, HTTP, HTTPS, SOCKS, SOCKS4 or SOCKS5", keyword)
	}
	if addr == "" {
		return Route{}, keyword + " needs host:port"
	}
	host, port, reason := splitHostPort(addr, k.defaultPort())
	if reason != "" {
		return Route{}, reason
	}
	return Route{Kind: k, Host: strings.ToLower(host), Port: port}, ""
}

// splitHostPort parses "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(addr string, defPort uint16) (string, uint16, string) {
	host, portStr := addr, ""
	switch {
	case strings.HasPrefix(addr, "["):
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", 0, "missing ']' after IPv6 address"
		}
		host = addr[1:end]
		after := addr[end+1:]
		if after != "" {
			if after[0] != ':' {
				return "", 0, "unexpected text after ']'"
			}
			portStr = after[1:]
			if portStr == "" {
				return "", 0, "empty port"
			}
		}
		if !isIPv6Literal(host) {
			return "", 0, fmt.Sprintf("%q is not an IPv6 address", host)
		}
	case strings.Count(addr, ":") > 1:
		return "", 0, "IPv6 addresses must be in brackets, as [2001:db8::1]:8080"
	default:
		if h, p, ok := strings.Cut(addr, ":"); ok {
			host, portStr = h, p
			if portStr == "" {
				return "", 0, "empty port"
			}
		}
		if !validHostName(host) {
			return "", 0, fmt.Sprintf("%q is not a valid host name", host)
		}
	}
	port := defPort
	if portStr != "" {
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Sprintf("port %q is not a number from 1 to 65535", portStr)
		}
		port = uint16(n)
	}
	return host, port, ""
}

func isIPv6Literal(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && strings.Contains(s, ":")
}

// validHostName accepts DNS names (letters, digits, '-', '_', '.') and IPv4
// literals; it refuses anything that could smuggle a path, credentials or
// white space into a proxy address.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// parsedResults remembers parsed results: a script returns the same few
// strings for all hosts, so parsing each once saves work and garbage on every
// uncached evaluation. Bounded like the other per-script caches.
type parsedResults struct {
	m sync.Map // raw string → Result
	n atomic.Int32
}

const maxParsedResults = 1024

func (p *parsedResults) parse(raw string) Result {
	if r, ok := p.m.Load(raw); ok {
		return r.(Result)
	}
	res := Result{Raw: raw}
	res.Routes, res.RouteErr = ParseResult(raw)
	if p.n.Load() < maxParsedResults {
		if _, loaded := p.m.LoadOrStore(raw, res); !loaded {
			p.n.Add(1)
		}
	}
	return res
}
