//go:build !linux

package gateway_test

import "syscall"

// childAttr: elsewhere nothing stops a child when the test binary is
// killed; the tests' cleanups stop it otherwise.
func childAttr() *syscall.SysProcAttr { return nil }
