package proxy

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// The relay of CONNECT tunnels (issue 5: 10,000 tunnels held in 150 MB).
//
// A tunnel is two goroutines, one per direction, and nothing else: the
// second to finish closes both connections. An idle tunnel holds no copy
// buffer: each direction waits until its source is readable without one
// (readWaiter: on Linux and macOS, the runtime's poller and a one-byte
// MSG_PEEK), then borrows a pooled 32 KiB buffer (copyBufs) for as long
// as data keeps coming, and gives it back. goproxy's relay held two fresh
// 32 KiB buffers for the life of every tunnel it could not splice, and for
// those it could, two pipes (four descriptors) each: either way too much
// for 10,000 tunnels.
//
// Between two TCP connections on Linux, a burst of data (spliceMin ready
// at once) goes by splice(2) instead, through a pipe of the runtime's pool
// that goes back to it when the burst ends: bulk transfers keep the
// throughput of goproxy's splice, idle tunnels hold no pipe.
//
// A source that cannot be waited on that way (a TLS connection to an HTTPS
// proxy, whose own buffers may hold data the socket no longer shows, or
// any connection on another OS) is copied the plain way, with a pooled
// buffer held while the tunnel lasts.

// relay copies between client and target until both directions have
// ended, then closes both; it returns at once. A direction that ends with
// the source's EOF half-closes its destination (CloseWrite) when that can
// be done, and closes it otherwise; one that fails closes both. Bytes a
// bufferedConn holds (read ahead by an HTTP parser) go first.
func relay(client, target net.Conn) {
	t := &tunnel{}
	var clientAhead, targetAhead []byte
	client, clientAhead = unbuffer(client)
	target, targetAhead = unbuffer(target)
	t.a, t.b = client, target
	go t.pipe(target, client, clientAhead)
	go t.pipe(client, target, targetAhead)
}

// tunnel is what the two directions of a relay share.
type tunnel struct {
	a, b net.Conn
	done atomic.Int32 // directions finished
}

// pipe is one direction of the tunnel: src to dst, ahead first.
func (t *tunnel) pipe(dst, src net.Conn, ahead []byte) {
	err := copyConn(dst, src, ahead)
	if err == nil {
		err = closeWrite(dst)
	}
	if err != nil || t.done.Add(1) == 2 {
		t.a.Close()
		t.b.Close()
	}
}

// closeWrite signals the end of the data to dst's reader: a half-close
// when dst has one, otherwise an error (the caller closes both ways: a
// reader that never saw the end could wait forever).
func closeWrite(dst net.Conn) error {
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

var errNoHalfClose = errors.New("proxy: the connection has no half-close")

// copyConn copies ahead, then src until its EOF (nil) or an error, to
// dst.
func copyConn(dst, src net.Conn, ahead []byte) error {
	if len(ahead) > 0 {
		if _, err := dst.Write(ahead); err != nil {
			return err
		}
	}
	w := newReadWaiter(dst, src)
	if w == nil {
		buf := copyBufs.Get().(*[32 << 10]byte)
		defer copyBufs.Put(buf)
		// The structs hide ReadFrom and WriteTo: TCPConn.ReadFrom would
		// copy through a fresh 32 KiB buffer of its own.
		_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf[:])
		return err
	}
	for {
		if err := w.wait(); err != nil {
			return err
		}
		if err := w.move(dst, src); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// drain copies from src to dst through a pooled buffer while reads fill
// it (a bulk transfer keeps the buffer rather than wait for each chunk),
// or for one read only when once is set; it returns nil once a read comes
// back short, src's io.EOF at its end.
func drain(dst io.Writer, src io.Reader, once bool) error {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	for {
		n, err := src.Read(buf[:])
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
		if once || n < len(buf) {
			return nil
		}
	}
}

// unbuffer returns the connection under a bufferedConn and the bytes it
// held (which are the caller's from then on).
func unbuffer(c net.Conn) (net.Conn, []byte) {
	if bc, ok := c.(*bufferedConn); ok {
		return bc.Conn, bc.buf
	}
	return c, nil
}

// bufferedConn is a connection some of whose bytes were read ahead by an
// HTTP parser (the client's, after its CONNECT; an upstream proxy's, after
// its 200): Read returns them first. The relay writes them out itself and
// relays the connection under it.
type bufferedConn struct {
	net.Conn
	buf []byte
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	if len(b.buf) == 0 {
		return b.Conn.Read(p)
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}
