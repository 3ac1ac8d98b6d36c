package main

import "syscall"

// childAttr makes a child platform die with the test binary.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
