//go:build !linux && !darwin

package proxy

import "net"

// readWaiter waits, without a buffer, until a socket has something to
// read. Elsewhere than on Linux and macOS there is none yet: tunnels copy
// the plain way, holding a pooled buffer while they last. (On Windows, a
// zero-byte overlapped read, which RawConn.Read issues when its callback
// says false, would be the way.)
type readWaiter struct{}

func newReadWaiter(_, _ net.Conn) *readWaiter { return nil }

func (*readWaiter) wait() error { return nil }

func (*readWaiter) move(dst, src net.Conn) error { return drain(dst, src, false) }
