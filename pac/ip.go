package pac

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// parseIPLiteral parses an IP literal the way Chromium's native PAC
// functions do: anything with a ':' is IPv6 (no brackets, no zone), anything
// else is IPv4 in the URL standard's forms, where "127.1", "0x7f.0.0.1" and
// "2130706433" all mean 127.0.0.1. Nothing is trimmed.
func parseIPLiteral(s string) (netip.Addr, bool) {
	if strings.Contains(s, ":") {
		if strings.ContainsAny(s, "%[]") {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s)
		return a, err == nil && a.Is6()
	}
	return parseIPv4Loose(s)
}

// parseIPv4Loose implements the URL standard's IPv4 parser: one to four
// dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last
// part fills the remaining bytes; one trailing dot is allowed.
func parseIPv4Loose(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums [4]uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := len(parts) - 1
	var v uint64
	for i := 0; i < last; i++ {
		if nums[i] > 255 {
			return netip.Addr{}, false
		}
		v |= nums[i] << (8 * (3 - i))
	}
	if nums[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	v |= nums[last]
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b), true
}

func parseIPv4Part(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true
		}
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil || n > 1<<32 {
		return 0, false
	}
	return n, true
}

// formatIP prints an address as Chromium does: dotted decimal for IPv4,
// RFC 5952 for IPv6, and IPv4-mapped IPv6 in hex ("::ffff:102:304").
func formatIP(a netip.Addr) string {
	if a.Is4In6() {
		b := a.As16()
		return fmt.Sprintf("::ffff:%x:%x", uint16(b[12])<<8|uint16(b[13]), uint16(b[14])<<8|uint16(b[15]))
	}
	return a.String()
}

// isDottedQuad is the library's isValidIpAddress: exactly four groups of one
// to three ASCII digits, each at most 255. It returns the address as a
// 32-bit number.
func isDottedQuad(s string) (uint32, bool) {
	var v uint32
	part, digits, dots := uint32(0), 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 255 {
				return 0, false
			}
			v = v<<8 | part
			if i < len(s) {
				dots++
			}
			part, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits == 3 {
			return 0, false
		}
		part = part*10 + uint32(c-'0')
		digits++
	}
	return v, dots == 3
}

// netCache holds the parsed (pattern, mask) pairs of isInNet calls. They
// are nearly always literals of the script; the bound stops a script that
// builds them from hosts from growing it without limit.
type netCache struct {
	m sync.Map // netKey → netVal
	n atomic.Int32
}

type netKey struct{ pattern, mask string }

type netVal struct {
	pattern, mask uint32
	ok            bool
}

const maxCachedNets = 4096

func (c *netCache) get(pattern, mask string) netVal {
	k := netKey{pattern, mask}
	if v, ok := c.m.Load(k); ok {
		return v.(netVal)
	}
	var v netVal
	var okP, okM bool
	v.pattern, okP = isDottedQuad(pattern)
	v.mask, okM = isDottedQuad(mask)
	v.ok = okP && okM
	if c.n.Load() < maxCachedNets {
		if _, loaded := c.m.LoadOrStore(k, v); !loaded {
			c.n.Add(1)
		}
	}
	return v
}

// inNetEx implements isInNetEx's matching once both arguments are strings.
func inNetEx(ip, prefix string) bool {
	addr, ok := parseIPLiteral(ip)
	if !ok {
		return false
	}
	p, bitsStr, ok := strings.Cut(prefix, "/")
	if !ok || strings.Contains(bitsStr, "/") {
		return false
	}
	p, bitsStr = strings.TrimSpace(p), strings.TrimSpace(bitsStr)
	net, ok := parseIPLiteral(p)
	if !ok || bitsStr == "" || strings.Trim(bitsStr, "0123456789") != "" {
		return false
	}
	bits, err := strconv.Atoi(bitsStr)
	if err != nil || bits > net.BitLen() {
		return false
	}
	switch {
	case addr.Is4() && net.Is6():
		addr = netip.AddrFrom16(addr.As16())
	case addr.Is6() && net.Is4():
		net, bits = netip.AddrFrom16(net.As16()), bits+96
	}
	pfx, err := net.Prefix(bits)
	return err == nil && pfx.Contains(addr)
}

// sortIPList implements sortIpAddressList once its argument is a string:
// IPv6 first, then by numeric value, each element printed as it was given.
// ok is false when the list is empty or holds something that is not an IP
// literal.
func sortIPList(list string) (string, bool) {
	list = strings.NewReplacer(" ", "", "\t", "").Replace(list)
	type item struct {
		text string
		addr netip.Addr
	}
	var items []item
	for _, tok := range strings.Split(list, ";") {
		if tok == "" {
			continue
		}
		a, ok := parseIPLiteral(tok)
		if !ok {
			return "", false
		}
		items = append(items, item{tok, a})
	}
	if len(items) == 0 {
		return "", false
	}
	slices.SortStableFunc(items, func(a, b item) int {
		switch {
		case a.addr.Is6() && !b.addr.Is6():
			return -1
		case !a.addr.Is6() && b.addr.Is6():
			return 1
		}
		return a.addr.Compare(b.addr)
	})
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.text
	}
	return strings.Join(texts, ";"), true
}
