package pac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// MaxScriptSize is the largest PAC script New accepts: 1 MiB. Real PAC files
// are a few kilobytes; the largest public ones stay well under 100 KiB.
const MaxScriptSize = 1 << 20

// Defaults for Options.
const (
	DefaultTimeout   = 5 * time.Second // one evaluation, DNS included
	DefaultCacheTTL  = time.Minute     // a cached result, as long as DNS answers are kept
	DefaultCacheSize = 10000           // cached results
	addrRecheck      = 2 * time.Second // how stale the local address list may get
)

const (
	entryPoint   = "FindProxyForURL"
	entryPointEx = "FindProxyForURLEx"
)

// Options configures a Script. The zero value is ready to use.
type Options struct {
	// Name names the script in error messages. Default "proxy.pac".
	Name string

	// Resolver answers the script's DNS questions. Default: the system
	// resolver. Either way answers go through a cache with single flight and
	// DNSTimeout.
	Resolver Resolver
	// DNSTimeout bounds one lookup. Default DefaultDNSTimeout.
	DNSTimeout time.Duration

	// LocalAddrs lists the machine's addresses, for myIpAddress and
	// myIpAddressEx, in order of preference. Default: the addresses of the
	// machine's interfaces that are up, loopback and link-local last. It is
	// read again at most every two seconds; when its answer changes, cached
	// results of scripts that call myIpAddress are dropped.
	LocalAddrs func() ([]netip.Addr, error)

	// Now is the current time: the date and time functions and Date see it,
	// and cache lifetimes count from it. Default time.Now.
	Now func() time.Time
	// Location is the time zone of the date and time functions when they
	// are not given "GMT". Default time.Local (the TZ environment variable).
	Location *time.Location

	// Timeout bounds one evaluation, including the script's DNS lookups; a
	// script that runs longer is stopped and the evaluation fails. It also
	// bounds the script's top-level code. Default DefaultTimeout.
	Timeout time.Duration

	// MaxRuntimes bounds how many JavaScript runtimes evaluate in parallel.
	// A runtime waiting for DNS uses no CPU, so the default is
	// 4 × GOMAXPROCS, at least 8.
	MaxRuntimes int

	// CacheTTL is how long a cached result is used; negative disables the
	// cache. Default DefaultCacheTTL. Only scripts that cannot tell two calls
	// with the same key apart are cached; see the package documentation.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached results. Default DefaultCacheSize.
	CacheSize int

	// Alert receives the script's alert() messages. Default: logged at
	// info level.
	Alert func(msg string)
	// Logger receives the engine's own messages. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = "proxy.pac"
	}
	if o.Resolver == nil {
		o.Resolver = systemResolver{}
	}
	if o.DNSTimeout <= 0 {
		o.DNSTimeout = DefaultDNSTimeout
	}
	if o.LocalAddrs == nil {
		o.LocalAddrs = interfaceAddrs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRuntimes <= 0 {
		o.MaxRuntimes = max(8, 4*runtime.GOMAXPROCS(0))
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Alert == nil {
		log := o.Logger
		name := o.Name
		o.Alert = func(msg string) { log.Info("pac: alert", "script", name, "message", msg) }
	}
}

// Script is a compiled PAC script, ready to evaluate from many goroutines at
// once. It is immutable: to change scripts, compile the new one with New and
// swap it in (see Current); a script that fails to compile leaves the old one
// serving.
type Script struct {
	opts   Options
	src    string
	prg    *goja.Program
	policy cachePolicy
	dns    *dnsCache
	cache  *resultCache // nil when results are not cached

	idle  chan *vm      // runtimes ready for a call
	slots chan struct{} // one per runtime in existence

	globs   globCache
	nets    netCache
	results parsedResults
	addrs   addrWatch
}

// ErrTimeout is returned (wrapped) when an evaluation exceeds its time limit.
var ErrTimeout = errors.New("pac: time limit exceeded")

// New compiles src and runs its top-level code once, so that a script that
// does not compile, throws while loading, or defines no FindProxyForURL is
// refused here rather than on the first request.
func New(src []byte, opts Options) (*Script, error) {
	opts.setDefaults()
	if len(src) > MaxScriptSize {
		return nil, fmt.Errorf("pac: %s is %d bytes; the limit is %d (1 MiB)", opts.Name, len(src), MaxScriptSize)
	}
	text := decodeSource(src)
	prg, tree, err := compile(opts.Name, text)
	if err != nil {
		return nil, err
	}
	s := &Script{
		opts:   opts,
		src:    text,
		prg:    prg,
		policy: analyze(tree),
		dns:    newDNSCache(opts.Resolver, opts.Now, opts.DNSTimeout, DefaultDNSTTL, DefaultDNSNegative),
		idle:   make(chan *vm, opts.MaxRuntimes),
		slots:  make(chan struct{}, opts.MaxRuntimes),
	}
	s.addrs.init(opts.LocalAddrs, opts.Now)
	if s.policy.cacheable && opts.CacheTTL > 0 {
		s.cache = newResultCache(opts.CacheTTL, opts.CacheSize)
	}
	// The first runtime proves the script loads; keep it for the first call.
	s.slots <- struct{}{}
	v, err := s.newVM(context.Background())
	if err != nil {
		return nil, err
	}
	s.idle <- v
	return s, nil
}

// decodeSource reads a PAC file as UTF-8, or as ISO-8859-1 (what Chromium
// assumes without a charset) when it is not valid UTF-8. A byte-order mark is
// dropped.
func decodeSource(src []byte) string {
	if utf8.Valid(src) {
		return strings.TrimPrefix(string(src), "\uFEFF")
	}
	runes := make([]rune, len(src))
	for i, b := range src {
		runes[i] = rune(b)
	}
	return string(runes)
}

// CacheStatus says whether results of this script are cached and, if not,
// why: the CLI and the agent's status report show it.
func (s *Script) CacheStatus() string {
	switch {
	case s.cache == nil && s.policy.cacheable:
		return "not cached: cache disabled"
	case s.cache == nil:
		return "not cached: script " + s.policy.reason
	case s.policy.byURL:
		return "cached by URL and host (the script reads the url argument)"
	default:
		return "cached by host"
	}
}

// Invalidate drops every cached result, for example when the network changes.
func (s *Script) Invalidate() {
	if s.cache != nil {
		s.cache.invalidate()
	}
}

// Result is the answer of one evaluation.
type Result struct {
	// Raw is exactly the string the script returned.
	Raw string
	// Routes is Raw parsed, in order; it holds the elements that parsed
	// when some did not. Shared between callers: do not modify.
	Routes []Route
	// RouteErr is a *ResultError when Raw has malformed elements or names no
	// route at all; the evaluation itself succeeded.
	RouteErr error
}

// Eval runs FindProxyForURL (or FindProxyForURLEx when the script defines
// it) for rawURL. host is the host argument; when empty it is taken from the
// URL. Passing the host the caller already has saves parsing the URL on a
// cache hit.
//
// An error means the evaluation failed: the URL is malformed, the script
// threw, returned something other than a string, or ran out of time (see
// ErrTimeout), or ctx ended.
func (s *Script) Eval(ctx context.Context, rawURL, host string) (Result, error) {
	var scriptURL string
	if host == "" {
		var err error
		if scriptURL, host, err = scriptArgs(rawURL); err != nil {
			return Result{}, err
		}
	}
	var key cacheKey
	if s.cache != nil {
		key.host = host
		if s.policy.byURL {
			key.url = rawURL
		}
		if s.policy.localAddrs {
			s.addrs.refresh(s.opts.Now(), s.cache)
		}
		if res, ok := s.cache.get(key, s.opts.Now); ok {
			return res, nil
		}
	}
	if scriptURL == "" {
		var err error
		if scriptURL, _, err = scriptArgs(rawURL); err != nil {
			return Result{}, err
		}
	}
	var epoch uint64
	if s.cache != nil {
		epoch = s.cache.epoch.Load()
	}
	raw, usedDNS, err := s.call(ctx, scriptURL, host)
	if err != nil {
		return Result{}, err
	}
	res := s.results.parse(raw)
	if s.cache != nil {
		s.cache.put(key, res, usedDNS, s.opts.Now, epoch)
	}
	return res, nil
}

// call evaluates on a pooled runtime; usedDNS says whether the script asked
// DNS.
func (s *Script) call(ctx context.Context, url, host string) (raw string, usedDNS bool, err error) {
	v, err := s.acquire(ctx)
	if err != nil {
		return "", false, err
	}
	raw, err = v.call(ctx, url, host)
	usedDNS = len(v.asked) > 0
	s.release(v)
	return raw, usedDNS, err
}

// acquire takes an idle runtime, or starts one while fewer than MaxRuntimes
// exist, or waits for one to come back.
func (s *Script) acquire(ctx context.Context) (*vm, error) {
	select {
	case v := <-s.idle:
		return v, nil
	default:
	}
	select {
	case v := <-s.idle:
		return v, nil
	case s.slots <- struct{}{}:
		v, err := s.newVM(ctx)
		if err != nil {
			<-s.slots
			return nil, err
		}
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("pac: waiting for a free runtime: %w", ctx.Err())
	}
}

func (s *Script) release(v *vm) { s.idle <- v }

// Current holds the script in use and keeps the last good one when a new
// one is refused. The zero value holds no script.
type Current struct {
	mu sync.Mutex // serialises Load; Get never waits for it
	p  atomic.Pointer[Script]
}

// Get returns the script in use, or nil before the first successful Load.
func (c *Current) Get() *Script { return c.p.Load() }

// Load compiles src and, only if that succeeds, makes it the script in use.
// On error the previous script stays in use.
func (c *Current) Load(src []byte, opts Options) (*Script, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := New(src, opts)
	if err != nil {
		return nil, err
	}
	c.p.Store(s)
	return s, nil
}
