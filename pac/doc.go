// Package pac evaluates proxy auto-config (PAC) files: it decides, for a URL,
// the list of routes (DIRECT, or proxies in order) that the tenant's
// proxy.pac returns. The agent routes every request through it; `agent pac`
// (package pactester) exposes it to administrators.
//
// It does not fetch PAC files, apply routes or connect anywhere: callers do
// that with the typed []Route of a Result.
//
// # Engine
//
// Scripts run in goja (ECMAScript 5.1+ in Go). New compiles a script once into
// a goja.Program and runs its top-level code in a first runtime; further
// runtimes are made on demand, up to Options.MaxRuntimes, and pooled, so
// evaluations run in parallel with no lock held while JavaScript runs. A
// Script is immutable; to change scripts, compile the new one and swap it in
// (Current does this and keeps the last good script when a new one is
// refused).
//
// The PAC functions are Go functions: shExpMatch patterns and isInNet
// networks are compiled once per script and cached; DNS goes through a cache
// with single flight, a per-lookup timeout (Options.DNSTimeout) and negative
// caching, in front of an injectable Resolver, so that one slow name costs one
// lookup, not one per request, and a caller whose time runs out returns at once
// while the lookup goes on to fill the cache.
//
// # Safety
//
//   - The URL and host are passed to FindProxyForURL as JavaScript string
//     values, never pasted into source, so a quote in a URL is just a quote.
//   - For https and wss URLs the script sees only scheme, host and port (path
//     and query are stripped, as Chromium does, so that a script cannot leak
//     them, for example through DNS); credentials and fragments are always
//     stripped.
//   - Each evaluation, and the script's top-level code, has a time limit
//     (Options.Timeout) that covers DNS; an endless loop returns ErrTimeout
//     and the runtime serves the next call. Recursion is bounded (RangeError).
//     At most 20 distinct DNS questions per evaluation, as in Chromium.
//   - Scripts over MaxScriptSize (1 MiB) are refused. A script that does not
//     compile gives a *SyntaxError, one that throws a *ScriptError, both with
//     line, column and the source line; neither replaces the script in use.
//
// # Browser compatibility
//
// Where browsers differ, the package behaves as Chromium does:
//
//   - isPlainHostName: false for IP literals, including IPv6 ("::1") and the
//     URL standard's IPv4 forms ("1234", "0x7f"); "foo:112" is plain (Firefox
//     says false for anything with ':'). A non-string argument throws
//     TypeError, as Chromium's native function does.
//   - dnsResolve, isResolvable and isInNet's lookup are IPv4 only (Firefox
//     and pacparser may answer IPv6); dnsResolve of an IPv6 literal is null.
//     Non-string arguments give null/false rather than throwing.
//   - dnsResolveEx (all families, ";"-joined, "" on failure), myIpAddressEx,
//     isInNetEx, sortIpAddressList and isResolvableEx follow Chromium's
//     natives, quirks included: dnsResolveEx of a non-string is undefined,
//     so isResolvableEx(null) is true; isInNetEx and sortIpAddressList give
//     null for non-string arguments and false for bad values; IPv4-mapped
//     addresses print in hex (::ffff:102:304).
//   - isInNet needs pattern and mask as dotted quads (a pattern such as
//     "10.100.265.0" never matches); Firefox agrees, old pacparser does not.
//   - myIpAddress: the first IPv4 address of Options.LocalAddrs, else the
//     first address, else "127.0.0.1"; the default list starts with the
//     source address of the route to the Internet, as Chromium's probes do.
//   - shExpMatch: the browsers' definition, a JavaScript regexp made from the
//     pattern ('.' escaped, '*' to '.*', '?' to '.'), so "(a|b)" and "[0-9]"
//     work and an invalid regexp throws; case-sensitive. Plain globs skip the
//     regexp engine.
//   - weekdayRange, dateRange, timeRange: the browsers' shared JavaScript
//     algorithm step for step, including wrap-around ranges, Date setters
//     that roll over (dateRange("FEB", "FEB") holds until March 3), "GMT"
//     applied by shifting the clock, the two-hour form of timeRange not
//     wrapping, and timeRange throwing "timeRange: bad number of arguments"
//     for 3, 5 or 7+ numbers. They read Options.Now in Options.Location.
//   - alert(msg) passes String(msg) ("undefined" without an argument) to
//     Options.Alert.
//   - The result must be a string of ASCII characters; anything else is an
//     error (Chromium then goes DIRECT; the agent applies its own policy).
//   - Sloppy-mode syntax browsers accept and goja's parser does not is
//     repaired before compiling, keeping positions: a label before a function
//     declaration ("WPAD: function FindProxyForURL…") and HTML-like comments
//     ("<!--", "-->").
//
// Beyond Chromium, as the Microsoft IPv6 extensions and the project require:
// FindProxyForURLEx is called instead of FindProxyForURL when the script
// defines it (Chromium ignores it; Internet Explorer and pacparser call it),
// getClientVersion returns "1.0", the result parser accepts "HTTP host:port"
// as a synonym of PROXY and any white space, and scripts run under a time
// limit (Chromium has none). The global state of a script is per runtime, not
// shared by all calls as in a browser; scripts that keep state across calls
// are not cached (below) but may see several copies of it.
//
// # Result cache
//
// Results are cached per host only when that cannot change an answer. The
// decision is made once, from the script's syntax tree (see analyze.go):
//
//   - Not cached when the script can depend on the time or on chance: it
//     names weekdayRange, dateRange, timeRange, Date, or random.
//   - Not cached when it can reach code or state the analysis cannot see:
//     eval, Function, constructor, globalThis, Reflect, or this.
//   - Not cached when a function assigns a global variable (declared at the
//     top or implicit): it can carry state from one call to the next.
//   - Otherwise cached, keyed by host alone when no entry point
//     (FindProxyForURL, FindProxyForURLEx) reads its first parameter or
//     `arguments`, and by URL and host when one does.
//
// An entry whose evaluation asked DNS expires after Options.CacheTTL; one
// that did not cannot go stale and stays until evicted. Scripts that call
// myIpAddress or myIpAddressEx are cached too: the local addresses are read
// again at most every two seconds and every entry is dropped when they
// change; Script.Invalidate drops them on demand (on a network change). The
// analysis is deliberately coarse: a name in the wrong place only costs the
// cache, never a wrong answer, except for a script that reaches the time
// functions through computed names the list above does not cover.
// Script.CacheStatus says which case a script is in, and why.
package pac
