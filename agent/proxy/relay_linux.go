package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peek is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT), called directly:
// unix.Recvfrom would allocate for the sender's address at every wait.
func peek(fd uintptr) error {
	var b [1]byte
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// available is how many bytes a socket has ready to read.
func available(fd uintptr) int {
	n, _ := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	return n
}

const (
	canSplice = true
	// spliceMin is how much a socket must have ready for a burst: less
	// goes through the copy buffer, as fast for that little. (Measured
	// on loopback, BenchmarkAgentConnectBulk: copying everything through
	// the buffer made bulk transfers about a quarter slower.)
	spliceMin = 64 << 10
	// spliceFor is how long a burst splices before the relay looks
	// again, and so the longest a pipe stays with a tunnel whose data
	// has stopped. (Splicing only what the socket had ready, without a
	// deadline, cost bulk transfers about a tenth: the pipe and the
	// waits went round once per chunk.)
	spliceFor = 250 * time.Millisecond
)

// spliceBurst splices src to dst (net.TCPConn.ReadFrom: through a pipe of
// the runtime's pool, handed back when it returns) for spliceFor at
// most. It returns nil when the time is up, io.EOF at src's end.
func spliceBurst(dst, src *net.TCPConn) error {
	src.SetReadDeadline(time.Now().Add(spliceFor))
	_, err := dst.ReadFrom(src)
	src.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		return io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	}
	return err
}
