package gateway

import (
	"context"
	"net/http"
	"time"
)

// AuthenticateForBenchmark authenticates a request with header h n times
// (from the second time on, the verified-token cache path every request of
// a signed-in user takes) and returns the mean time of one call after the
// first: BenchmarkGateway compares it with the CPU time of a request.
func (g *Gateway) AuthenticateForBenchmark(h http.Header, n int) (time.Duration, error) {
	ctx := context.Background()
	if _, err := g.authenticate(ctx, h); err != nil {
		return 0, err
	}
	start := time.Now()
	for range n {
		if _, err := g.authenticate(ctx, h); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}
