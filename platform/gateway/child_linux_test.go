package gateway_test

import "syscall"

// childAttr makes a child process (a gateway node, squid) die with the test
// binary, even when the binary is killed and its cleanups never run.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
