package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/agent/internal/loopback"
)

// bodyOrigin makes the harness's origin answer with what it got: the
// method, the size and SHA-256 of the body, and how it was framed. Under
// /stream it sends a line, then waits for the test to say go on, then
// another: a stream that only works if each piece is passed on as it
// comes.
func bodyOrigin(h *harness) (goOn chan struct{}) {
	goOn = make(chan struct{}, 16)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.originH.add(r)
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "application/x-ndjson")
			for i := range 2 {
				fmt.Fprintf(w, "{\"line\":%d}\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-goOn:
				case <-time.After(10 * time.Second):
					return
				}
			}
			return
		}
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %x chunked=%v err=%v", r.Method, len(b), sha256.Sum256(b), r.ContentLength == -1, err)
	})
	h.origin.Config.Handler = handler
	return goOn
}

func answer(method string, body []byte, chunked bool) string {
	return fmt.Sprintf("%s %d %x chunked=%v err=<nil>", method, len(body), sha256.Sum256(body), chunked)
}

// TestBodiesAndStreams sends plain-HTTP requests with bodies through the
// agent, to the gateway and DIRECT: a large POST, a chunked one (length
// unknown), a PUT with Expect: 100-continue (the agent answers 100 before
// the client sends the body), and a streamed response (each line reaches
// the client before the origin sends the next).
func TestBodiesAndStreams(t *testing.T) {
	h := newHarness(t, "")
	goOn := bodyOrigin(h)
	large := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	for _, route := range []string{"PROXY " + h.gateway, "DIRECT"} {
		h.setPAC(`function FindProxyForURL(url, host) { return "` + route + `"; }`)
		c := h.client()
		for _, tc := range []struct {
			name    string
			body    io.Reader
			want    []byte
			chunked bool
		}{
			{"large POST", bytes.NewReader(large), large, false},
			// A reader of unknown length: the client sends it chunked.
			{"chunked POST", io.MultiReader(strings.NewReader("first part, "), bytes.NewReader(large[:100<<10])), append([]byte("first part, "), large[:100<<10]...), true},
		} {
			resp, err := c.Post("http://origin.example/upload", "application/octet-stream", tc.body)
			if err != nil {
				t.Fatalf("%s, %s: %v", route, tc.name, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := answer("POST", tc.want, tc.chunked); resp.StatusCode != http.StatusOK || string(got) != want {
				t.Errorf("%s, %s: %d %q, want %q", route, tc.name, resp.StatusCode, got, want)
			}
		}

		// Expect: 100-continue, on a raw connection: the body goes only
		// after the agent's 100 Continue.
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		body := "the body, sent after 100 Continue"
		fmt.Fprintf(conn, "PUT http://origin.example/continue HTTP/1.1\r\nHost: origin.example\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
		br := bufio.NewReader(conn)
		req := &http.Request{Method: "PUT"}
		if resp, err := http.ReadResponse(br, req); err != nil || resp.StatusCode != http.StatusContinue {
			t.Fatalf("%s: answer to Expect: 100-continue: %v %v", route, resp, err)
		}
		io.WriteString(conn, body)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%s: after 100 Continue: %v", route, err)
		}
		got, _ := io.ReadAll(resp.Body)
		conn.Close()
		if want := answer("PUT", []byte(body), false); resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("%s: PUT with Expect: 100-continue: %d %q, want %q", route, resp.StatusCode, got, want)
		}

		// A streamed response: the first line arrives while the origin
		// waits to send the second.
		resp, err = c.Get("http://origin.example/stream")
		if err != nil {
			t.Fatalf("%s: stream: %v", route, err)
		}
		lines := bufio.NewReader(resp.Body)
		first, err := lines.ReadString('\n')
		if err != nil || first != "{\"line\":0}\n" {
			t.Fatalf("%s: first line of a stream: %q %v (held back until the stream ended?)", route, first, err)
		}
		goOn <- struct{}{}
		second, _ := lines.ReadString('\n')
		goOn <- struct{}{}
		resp.Body.Close()
		if second != "{\"line\":1}\n" {
			t.Errorf("%s: second line: %q", route, second)
		}
	}
	if h.originH.sawToken("tok-") {
		t.Error("an origin saw a token")
	}
}

// dropper is a proxy that reads a request, some of its body included, and
// closes the connection without answering: a route that fails after it
// had the request. It counts the requests it swallowed.
func dropper(t *testing.T) (addr string, swallowed func() int) {
	var mu sync.Mutex
	n := 0
	addr = loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.ReadFull(req.Body, make([]byte, 1))
		mu.Lock()
		n++
		mu.Unlock()
	})
	return addr, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

// TestBodyNotReplayed: a request with a body that a route took and then
// failed is not sent again on the next route (the client gets a 502);
// one without a body is. A route that could not even be connected to
// never had the body, and the next route gets it.
func TestBodyNotReplayed(t *testing.T) {
	h := newHarness(t, "")
	bodyOrigin(h)
	post := func(what string) (int, string) {
		resp, err := h.client().Post("http://origin.example/"+what, "text/plain", strings.NewReader("pay 100 EUR once"))
		if err != nil {
			t.Fatalf("POST %s: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	drop, swallowed := dropper(t)
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + drop + `; DIRECT"; }`)
	if code, body := post("dropped"); code != http.StatusBadGateway || !strings.Contains(body, "could not reach origin.example") {
		t.Errorf("POST that a route took and dropped: %d %q, want 502", code, body)
	}
	if swallowed() != 1 || h.originH.count() != 0 {
		t.Fatalf("the dropping proxy took %d requests, the origin saw %v: the body was sent twice", swallowed(), h.originH.reqs)
	}

	drop2, swallowed2 := dropper(t)
	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + drop2 + `; DIRECT"; }`)
	if code, _, err := h.get("http://origin.example/get-dropped"); err != nil || code != http.StatusOK || swallowed2() != 1 {
		t.Errorf("GET that a route dropped: %d %v (the proxy took %d), want 200 from the next route", code, err, swallowed2())
	}

	h.setPAC(`function FindProxyForURL(url, host) { return "PROXY ` + deadAddr(t) + `; DIRECT"; }`)
	if code, body := post("refused"); code != http.StatusOK || body != answer("POST", []byte("pay 100 EUR once"), false) {
		t.Errorf("POST with the first proxy down: %d %q, want it DIRECT", code, body)
	}
	if n := h.originH.count(); n != 2 {
		t.Errorf("the origin saw %v", h.originH.reqs)
	}
}
