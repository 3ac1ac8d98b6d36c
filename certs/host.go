package certs

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrBadHost is wrapped by every error about a host that no leaf can name,
// so that the gateway can tell a client's bad request from its own failure.
var ErrBadHost = errors.New("certs: malformed host")

const (
	maxNameLen  = 253 // RFC 1035 2.3.4, without the trailing dot
	maxLabelLen = 63
)

func badHost(host, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadHost, host, why)
}

// canonicalHost returns the form of host that a leaf names and that the
// cache keys on, and whether it is an IP address. Names are lower-cased and
// lose a trailing dot, since DNS ignores both; IPv4-mapped IPv6 addresses
// become IPv4 and IPv6 is written in its RFC 5952 form, so that one host is
// one cache entry however the client spelled it.
//
// Names must be ASCII: SNI carries internationalized names as IDNA A-labels
// (xn--…), so a U-label here means the caller skipped that step. Letters,
// digits, '-' and '_' are accepted in labels (underscores are not valid in
// host names, but real sites use them and browsers reach them). A last label
// of digits only is refused: browsers read such a host as an IPv4 address,
// and this one did not parse as one.
func canonicalHost(host string) (string, bool, error) {
	if host == "" {
		return "", false, badHost(host, "empty")
	}
	h := host
	bracketed := len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']'
	if bracketed {
		h = h[1 : len(h)-1]
	}
	// Only try to parse what may be an address (IPv6 has a colon, IPv4 only
	// digits and dots): a failed parse allocates its error, and names go
	// through here on every cache hit.
	if mayBeIP(h) {
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return "", false, badHost(host, "an IPv6 zone names a local interface, not a server")
			}
			return ip.Unmap().String(), true, nil
		}
	}
	if bracketed {
		return "", false, badHost(host, "brackets hold an IPv6 address, and this is not one")
	}
	if strings.Contains(h, ":") {
		return "", false, badHost(host, "has a port or is a malformed IPv6 address; pass the host alone")
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", false, badHost(host, "no name")
	}
	if len(h) > maxNameLen {
		return "", false, badHost(host, fmt.Sprintf("longer than %d bytes", maxNameLen))
	}
	label := 0  // length of the current label
	digits := 0 // how many of its characters are digits
	upper := false
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '.':
			if label == 0 {
				return "", false, badHost(host, "empty label")
			}
			label, digits = 0, 0
			continue
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z', c == '-', c == '_':
		case '0' <= c && c <= '9':
			digits++
		case c >= 0x80:
			return "", false, badHost(host, "not ASCII; pass the IDNA A-label form (xn--…), as SNI carries it")
		case c == '*':
			return "", false, badHost(host, "a wildcard names no server")
		default:
			return "", false, badHost(host, fmt.Sprintf("character %q is not allowed in a host name", c))
		}
		label++
		if label > maxLabelLen {
			return "", false, badHost(host, fmt.Sprintf("a label is longer than %d bytes", maxLabelLen))
		}
	}
	switch {
	case label == 0:
		return "", false, badHost(host, "empty label")
	case label == digits:
		return "", false, badHost(host, "ends in a number but is not an IP address")
	}
	if upper {
		// Only ASCII is left, so this is ASCII lower-casing. A host already
		// in lower case (what browsers send) costs no allocation: this runs
		// on every cache hit.
		h = strings.ToLower(h)
	}
	return h, false, nil
}

func mayBeIP(h string) bool {
	if strings.IndexByte(h, ':') >= 0 {
		return true
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
