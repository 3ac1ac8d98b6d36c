package proxy

import (
	"bufio"
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

// ReadFrom copies src to the response through a pooled buffer.
func (w responseWriter) ReadFrom(src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	// The struct hides the ResponseWriter's own ReadFrom from CopyBuffer.
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, buf[:])
}

func (w responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w responseWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
