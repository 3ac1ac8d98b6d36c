//go:build e2e

package e2e

import (
	"os/exec"
	"syscall"
)

func init() {
	dieWithParent = func(cmd *exec.Cmd) {
		// Sent when the thread that started cmd exits; the Go runtime only
		// ends threads of goroutines that locked them, which tests do not.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
}
