package proxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// peek is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT).
func peek(fd uintptr) error {
	var b [1]byte
	_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err
}

// No splice(2) on macOS: everything goes through the copy buffer.
const (
	canSplice = false
	spliceMin = 0
)

func available(uintptr) int { return 0 }

func spliceBurst(dst, src *net.TCPConn) error { panic("proxy: no splice on this OS") }
