package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
)

// responseWriter is the client's http.ResponseWriter as goproxy sees it.
//
// goproxy relays a response body with io.Copy(w, body), which hands it to
// net/http's response.ReadFrom: that writes the header and the first 512
// bytes, then passes the rest to net.TCPConn.ReadFrom, which (the body
// being neither a file nor a socket, so no sendfile or splice) copies it
// through a new 32 KiB buffer. That is two writes and 32 KiB of garbage for
// every response that goes through the agent, the garbage being most of
// what the agent allocates (and so most of its GC work and of its tail
// latency). ReadFrom here copies through a pooled buffer into Write
// instead: one write for a small response, none of that garbage.
//
// Hijack and Flush are passed on (goproxy needs them for CONNECT,
// WebSocket upgrades and streamed responses), and Unwrap for
// http.ResponseController.
type responseWriter struct{ http.ResponseWriter }

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// ReadFrom copies src to the response through a pooled buffer. A body of
// unknown length (no Content-Length: chunked, or up to the end of the
// connection) may be a stream, a feed or a long poll: each piece goes to
// the client as it comes, as httputil.ReverseProxy does. (goproxy flushes
// text/event-stream only; it looks for a Transfer-Encoding header that
// net/http's client never leaves in a response's header.)
func (w responseWriter) ReadFrom(src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	if w.Header().Get("Content-Length") == "" {
		return io.CopyBuffer(flushWriter{w.ResponseWriter}, src, buf[:])
	}
	// The struct hides the ResponseWriter's own ReadFrom from CopyBuffer.
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, buf[:])
}

// flushWriter sends what is written to the client at once.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

func (w responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w responseWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connectWriter is the ResponseWriter of a CONNECT. goproxy hijacks the
// connection and drops the bufio.ReadWriter net/http returns with it,
// whose reader may hold the tunnel's first bytes: a client may send them
// (a TLS ClientHello) right after its CONNECT without waiting for the 200.
// Hijack keeps them with the connection, as a bufferedConn. (The
// WebSocket upgrades of plain requests relay that reader themselves: they
// get responseWriter's Hijack.)
type connectWriter struct{ responseWriter }

func (w connectWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := w.responseWriter.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		ahead, _ := brw.Reader.Peek(n)
		c = &bufferedConn{Conn: c, buf: bytes.Clone(ahead)}
	}
	return c, brw, nil
}
