//go:build unix

package gateway_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the test process has used (user and system,
// all threads): the benchmarks' clients, origin and proxies all run in it,
// so, unlike throughput, the difference between two runs of the same
// workload does not depend on what else the machine runs.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
