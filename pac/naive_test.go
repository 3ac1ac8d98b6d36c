package pac

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// naiveHelpers is testdata/naive_helpers.js: the PAC functions written in
// plain JavaScript.
var naiveHelpers = func() string {
	b, err := os.ReadFile("testdata/naive_helpers.js")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// naiveEngine is how a PAC engine is written without care: one runtime
// behind a mutex, helpers in JavaScript, DNS asked on every call. It is the
// benchmarks' baseline and the date functions' oracle.
type naiveEngine struct {
	mu sync.Mutex
	rt *goja.Runtime
	fn goja.Callable
}

func newNaiveEngine(src string, resolver Resolver, local netip.Addr, now func() time.Time) (*naiveEngine, error) {
	e := &naiveEngine{rt: goja.New()}
	e.rt.SetTimeSource(now)
	e.rt.Set("dnsResolve", func(host string) goja.Value {
		addrs, err := resolver.LookupNetIP(context.Background(), "ip4", host)
		if err != nil || len(addrs) == 0 {
			return goja.Null()
		}
		return e.rt.ToValue(addrs[0].String())
	})
	e.rt.Set("myIpAddress", func() string { return local.String() })
	if _, err := e.rt.RunString(naiveHelpers); err != nil {
		return nil, err
	}
	if _, err := e.rt.RunString(src); err != nil {
		return nil, err
	}
	e.fn, _ = goja.AssertFunction(e.rt.Get("FindProxyForURL"))
	return e, nil
}

func (e *naiveEngine) findProxy(url, host string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.fn(goja.Undefined(), e.rt.ToValue(url), e.rt.ToValue(host))
	if err != nil {
		return "", err
	}
	return v.String(), nil
}
