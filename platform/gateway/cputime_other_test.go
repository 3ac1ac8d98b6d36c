//go:build !unix

package gateway_test

import "time"

// processCPU is not measured here: the CPU metrics are left out.
func processCPU() (time.Duration, bool) { return 0, false }
