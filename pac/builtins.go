package pac

import (
	"net/netip"
	"strings"

	"github.com/dop251/goja"
	"golang.org/x/net/idna"
)

// maxLookupsPerCall is how many distinct DNS questions one evaluation may
// ask, as in Chromium; further new names fail to resolve while the script
// goes on.
const maxLookupsPerCall = 20

// install defines the PAC functions on the runtime's global object, as Go
// functions. A script may redefine any of them.
func (v *vm) install() {
	fns := map[string]func(goja.FunctionCall) goja.Value{
		// Netscape's functions.
		"isPlainHostName":     v.isPlainHostName,
		"dnsDomainIs":         v.dnsDomainIs,
		"localHostOrDomainIs": v.localHostOrDomainIs,
		"isResolvable":        v.isResolvable,
		"isInNet":             v.isInNet,
		"dnsResolve":          v.dnsResolve,
		"convert_addr":        v.convertAddr,
		"myIpAddress":         v.myIpAddress,
		"dnsDomainLevels":     v.dnsDomainLevels,
		"shExpMatch":          v.shExpMatch,
		"weekdayRange":        v.weekdayRange,
		"dateRange":           v.dateRange,
		"timeRange":           v.timeRange,
		"alert":               v.alert,
		"isValidIpAddress":    v.isValidIPAddress,
		// Microsoft's IPv6 extensions.
		"isResolvableEx":    v.isResolvableEx,
		"isInNetEx":         v.isInNetEx,
		"dnsResolveEx":      v.dnsResolveEx,
		"myIpAddressEx":     v.myIpAddressEx,
		"sortIpAddressList": v.sortIPAddressList,
		"getClientVersion":  v.getClientVersion,
	}
	for name, fn := range fns {
		if err := v.rt.Set(name, fn); err != nil {
			panic("pac: defining " + name + ": " + err.Error()) // cannot happen on a fresh runtime
		}
	}
}

func (v *vm) bool(b bool) goja.Value { return v.rt.ToValue(b) }

// typeError throws a TypeError the way V8 words a property read on null or
// undefined, which is what the browser's JavaScript helpers run into.
func (v *vm) typeError(fn string, call goja.FunctionCall, i int, param string) {
	arg := call.Argument(i)
	panic(v.rt.NewTypeError("%s: argument %d (%s) must be a string, got %s", fn, i+1, param, typeName(arg)))
}

func typeName(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	case goja.IsNumber(v):
		return "a number"
	case goja.IsString(v):
		return "a string"
	}
	if _, ok := goja.AssertFunction(v); ok {
		return "a function"
	}
	return "an object"
}

// stringArg returns argument i when it is a string primitive.
func stringArg(call goja.FunctionCall, i int) (string, bool) {
	a := call.Argument(i)
	if !goja.IsString(a) {
		return "", false
	}
	return a.String(), true
}

// mustString returns argument i or throws a TypeError: what the browser's
// helpers do when a string method is called on a non-string.
func (v *vm) mustString(fn string, call goja.FunctionCall, i int, param string) string {
	s, ok := stringArg(call, i)
	if !ok {
		v.typeError(fn, call, i, param)
	}
	return s
}

func isNullish(a goja.Value) bool { return a == nil || goja.IsUndefined(a) || goja.IsNull(a) }

// isPlainHostName(host): true when host has no dot and is not an IP
// literal. Chromium's is native and throws unless given a string.
func (v *vm) isPlainHostName(call goja.FunctionCall) goja.Value {
	h, ok := stringArg(call, 0)
	if !ok {
		panic(v.rt.NewTypeError("isPlainHostName: requires 1 string parameter"))
	}
	if strings.Contains(h, ".") {
		return v.bool(false)
	}
	_, isIP := parseIPLiteral(h)
	return v.bool(!isIP)
}

// dnsDomainIs(host, domain): host ends with domain, case-sensitively. A
// number for either compares false (it has no length); null or undefined
// throws.
func (v *vm) dnsDomainIs(call goja.FunctionCall) goja.Value {
	for i, p := range []string{"host", "domain"} {
		if isNullish(call.Argument(i)) {
			v.typeError("dnsDomainIs", call, i, p)
		}
	}
	h, ok1 := stringArg(call, 0)
	d, ok2 := stringArg(call, 1)
	return v.bool(ok1 && ok2 && strings.HasSuffix(h, d))
}

// localHostOrDomainIs(host, hostdom): host equals hostdom, or hostdom is
// host followed by a dot and more.
func (v *vm) localHostOrDomainIs(call goja.FunctionCall) goja.Value {
	h, dom := call.Argument(0), call.Argument(1)
	if h.StrictEquals(dom) {
		return v.bool(true)
	}
	d := v.mustString("localHostOrDomainIs", call, 1, "hostdom")
	return v.bool(strings.HasPrefix(d, h.String()+"."))
}

// dnsDomainLevels(host): the number of dots.
func (v *vm) dnsDomainLevels(call goja.FunctionCall) goja.Value {
	h := v.mustString("dnsDomainLevels", call, 0, "host")
	return v.rt.ToValue(strings.Count(h, "."))
}

// shExpMatch(str, pattern): see glob.go.
func (v *vm) shExpMatch(call goja.FunctionCall) goja.Value {
	pattern := v.mustString("shExpMatch", call, 1, "pattern")
	g := v.s.globs.get(pattern)
	if g.err != nil {
		panic(v.rt.NewGoError(g.err)) // a SyntaxError in the browser
	}
	ok, err := g.match(call.Argument(0).String())
	if err != nil {
		panic(v.rt.NewGoError(err))
	}
	return v.bool(ok)
}

// isValidIpAddress(s): s is four dotted decimal groups of up to 255. Part of
// the browsers' helper library, and some PAC files call it.
func (v *vm) isValidIPAddress(call goja.FunctionCall) goja.Value {
	_, ok := isDottedQuad(call.Argument(0).String())
	return v.bool(ok)
}

// convert_addr(ip): the address as a signed 32-bit number, each part
// converted with JavaScript's Number() and masked to a byte.
func (v *vm) convertAddr(call goja.FunctionCall) goja.Value {
	s := v.mustString("convert_addr", call, 0, "ipchars")
	parts := strings.Split(s, ".")
	var n uint32
	for i := 0; i < 4; i++ {
		var b uint32
		if i < len(parts) {
			f := v.rt.ToValue(parts[i]).ToFloat()
			if f == f && f < 1e18 && f > -1e18 { // NaN and huge values mask to 0
				b = uint32(int64(f)) & 0xff
			}
		}
		n = n<<8 | b
	}
	return v.rt.ToValue(int32(n))
}

// isInNet(host, pattern, mask): host (resolved when it is not a dotted
// quad) is in the network pattern/mask. Pattern and mask must be dotted
// quads, or the answer is false.
func (v *vm) isInNet(call goja.FunctionCall) goja.Value {
	nv := v.s.nets.get(call.Argument(1).String(), call.Argument(2).String())
	if !nv.ok {
		return v.bool(false)
	}
	addrArg := call.Argument(0)
	ip, ok := isDottedQuad(addrArg.String())
	if !ok {
		h, isStr := stringArg(call, 0)
		if !isStr {
			return v.bool(false)
		}
		a, found := v.resolve(h, "ip4")
		if !found {
			return v.bool(false)
		}
		b := a[0].As4()
		ip = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return v.bool(ip&nv.mask == nv.pattern&nv.mask)
}

// dnsResolve(host): the first IPv4 address of host, or null.
func (v *vm) dnsResolve(call goja.FunctionCall) goja.Value {
	h, ok := stringArg(call, 0)
	if !ok {
		return goja.Null()
	}
	addrs, found := v.resolve(h, "ip4")
	if !found {
		return goja.Null()
	}
	return v.rt.ToValue(formatIP(addrs[0]))
}

// isResolvable(host): dnsResolve(host) is not null.
func (v *vm) isResolvable(call goja.FunctionCall) goja.Value {
	h, ok := stringArg(call, 0)
	if !ok {
		return v.bool(false)
	}
	_, found := v.resolve(h, "ip4")
	return v.bool(found)
}

// dnsResolveEx(host): every address of host, IPv6 and IPv4, joined by ";",
// or "" . Not given a string, it returns undefined, as Chromium's does.
func (v *vm) dnsResolveEx(call goja.FunctionCall) goja.Value {
	h, ok := stringArg(call, 0)
	if !ok {
		return goja.Undefined()
	}
	addrs, _ := v.resolve(h, "ip")
	return v.rt.ToValue(joinAddrs(addrs))
}

// isResolvableEx(host): dnsResolveEx(host) != "". Chromium's quirk is kept:
// a non-string argument makes dnsResolveEx undefined, which is != "".
func (v *vm) isResolvableEx(call goja.FunctionCall) goja.Value {
	h, ok := stringArg(call, 0)
	if !ok {
		return v.bool(true)
	}
	_, found := v.resolve(h, "ip")
	return v.bool(found)
}

func joinAddrs(addrs []netip.Addr) string {
	var b strings.Builder
	for i, a := range addrs {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(formatIP(a))
	}
	return b.String()
}

// myIpAddress(): the machine's first IPv4 address, else its first address,
// else "127.0.0.1".
func (v *vm) myIpAddress(goja.FunctionCall) goja.Value {
	addrs := v.s.addrs.get(v.s.cache)
	for _, a := range addrs {
		if a.Is4() {
			return v.rt.ToValue(formatIP(a))
		}
	}
	if len(addrs) > 0 {
		return v.rt.ToValue(formatIP(addrs[0]))
	}
	return v.rt.ToValue("127.0.0.1")
}

// myIpAddressEx(): all the machine's addresses joined by ";", or
// "127.0.0.1".
func (v *vm) myIpAddressEx(goja.FunctionCall) goja.Value {
	addrs := v.s.addrs.get(v.s.cache)
	if len(addrs) == 0 {
		return v.rt.ToValue("127.0.0.1")
	}
	return v.rt.ToValue(joinAddrs(addrs))
}

// isInNetEx(ip, prefix): the IP literal ip is in the CIDR prefix. Either
// argument not a string: null. IPv4 and IPv6 compare through IPv4-mapped
// addresses.
func (v *vm) isInNetEx(call goja.FunctionCall) goja.Value {
	ip, ok1 := stringArg(call, 0)
	prefix, ok2 := stringArg(call, 1)
	if !ok1 || !ok2 {
		return goja.Null()
	}
	if !isASCII(ip) || !isASCII(prefix) {
		return v.bool(false)
	}
	return v.bool(inNetEx(ip, prefix))
}

// sortIpAddressList(list): the ";"-separated IP literals sorted, IPv6
// first; false when the list is empty or holds anything else; null when not
// given a string.
func (v *vm) sortIPAddressList(call goja.FunctionCall) goja.Value {
	list, ok := stringArg(call, 0)
	if !ok || !isASCII(list) {
		return goja.Null()
	}
	sorted, ok := sortIPList(list)
	if !ok {
		return v.bool(false)
	}
	return v.rt.ToValue(sorted)
}

// getClientVersion(): the version of the Microsoft PAC extensions
// implemented, "1.0".
func (v *vm) getClientVersion(goja.FunctionCall) goja.Value { return v.rt.ToValue("1.0") }

// alert(msg): hands String(msg) to Options.Alert.
func (v *vm) alert(call goja.FunctionCall) goja.Value {
	v.s.opts.Alert(call.Argument(0).String())
	return goja.Undefined()
}

func (v *vm) weekdayRange(call goja.FunctionCall) goja.Value {
	return v.bool(weekdayRange(v.s.opts.Now(), v.s.opts.Location, call.Arguments))
}

func (v *vm) dateRange(call goja.FunctionCall) goja.Value {
	return v.bool(dateRange(v.s.opts.Now(), v.s.opts.Location, call.Arguments))
}

func (v *vm) timeRange(call goja.FunctionCall) goja.Value {
	in, ok := timeRange(v.s.opts.Now(), v.s.opts.Location, call.Arguments)
	if !ok {
		panic(v.rt.ToValue(errTimeRangeArgs))
	}
	return v.bool(in)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// resolve answers a DNS question for the script: IP literals answer
// themselves (IPv6 ones only for "ip"), names go to the cached resolver,
// within the call's time limit and lookup budget. found is false on any
// failure, which the PAC functions report as null or "".
func (v *vm) resolve(host, network string) ([]netip.Addr, bool) {
	if host == "" {
		return nil, false
	}
	if a, ok := parseIPLiteral(host); ok {
		if a.Is6() && network == "ip4" {
			return nil, false
		}
		return []netip.Addr{a}, true
	}
	if !isASCII(host) {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return nil, false
		}
		host = ascii
	}
	if !v.budget(host, network) {
		return nil, false
	}
	addrs, err := v.s.dns.lookup(v.ctx, v.expiredChan(), network, host)
	if err != nil {
		return nil, false
	}
	addrs = normalizeAddrs(addrs, network)
	return addrs, len(addrs) > 0
}

// normalizeAddrs unmaps IPv4-mapped answers and, for "ip4", keeps IPv4
// only: a Resolver may not be as strict as the system one.
func normalizeAddrs(addrs []netip.Addr, network string) []netip.Addr {
	clean := true
	for _, a := range addrs {
		clean = clean && !a.Is4In6() && (network != "ip4" || a.Is4())
	}
	if clean {
		return addrs
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if network != "ip4" || a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// budget counts the distinct questions of the current call.
func (v *vm) budget(host, network string) bool {
	k := dnsKey{network, host}
	for _, seen := range v.asked {
		if seen == k {
			return true
		}
	}
	if len(v.asked) >= maxLookupsPerCall {
		return false
	}
	v.asked = append(v.asked, k)
	return true
}
