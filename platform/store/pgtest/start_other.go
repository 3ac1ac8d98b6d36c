//go:build !linux

package pgtest

import "fmt"

// start is Linux-only: elsewhere nothing would stop the server when the
// test binary exits.
func start() (*server, error) {
	return nil, fmt.Errorf("%w: the throwaway server runs on Linux only", errUnavailable)
}
