//go:build linux || darwin

package proxy

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// readWaiter waits, without a buffer, until a socket has something to
// read (data, its end, or an error), then moves what it has.
type readWaiter struct {
	rc     syscall.RawConn
	ready  func(fd uintptr) bool // w.readable, bound once
	err    error                 // what the last peek found wrong
	splice bool                  // src and dst can splice (see move)
	avail  int                   // bytes ready at the last wait, when splice
}

// newReadWaiter returns a readWaiter for src, or nil when src is not a
// socket of the runtime's poller (only TCP and Unix connections are: a
// wrapper might hold bytes of its own that the socket no longer shows).
func newReadWaiter(dst, src net.Conn) *readWaiter {
	var sc syscall.Conn
	switch c := src.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &readWaiter{rc: rc}
	_, tcpDst := dst.(*net.TCPConn)
	_, tcpSrc := src.(*net.TCPConn)
	w.splice = canSplice && tcpDst && tcpSrc
	w.ready = w.readable
	return w
}

// wait returns once a read of the socket would not block, or with the
// error that ended the wait (the connection closed, a deadline) or that
// the socket had (a reset: the peek took it, a read would not see it).
func (w *readWaiter) wait() error {
	w.err = nil
	if err := w.rc.Read(w.ready); err != nil {
		return err
	}
	return w.err
}

// readable is the callback of RawConn.Read: it peeks at one byte without
// waiting. It must say false only for EAGAIN: the runtime's poller is
// edge-triggered, so after anything else (data, the end, an error) it
// would never wake the wait again. A read that follows finds what the
// peek saw.
func (w *readWaiter) readable(fd uintptr) bool {
	for {
		switch err := peek(fd); err {
		case nil:
			if w.splice {
				w.avail = available(fd)
			}
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			w.err = os.NewSyscallError("recvfrom", err)
			return true
		}
	}
}

// move moves what src has to dst after a wait: a burst by splice when
// there is a lot, otherwise through a pooled buffer (for one read when a
// burst might follow: the next wait tells). It returns src's io.EOF at
// its end.
func (w *readWaiter) move(dst, src net.Conn) error {
	switch {
	case !w.splice:
		return drain(dst, src, false)
	case w.avail >= spliceMin:
		return spliceBurst(dst.(*net.TCPConn), src.(*net.TCPConn))
	default:
		return drain(dst, src, true)
	}
}
