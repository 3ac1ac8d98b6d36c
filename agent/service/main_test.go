package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigie/platform/demo"
	"vigie/platform/server"
)

// The test binary doubles as three helper programs, chosen by environment:
//
//   - clientEnv: one GET of $VIGIE_TEST_URL, through the proxy
//     $VIGIE_TEST_PROXY when set; prints the status code, a newline and
//     the body. With $VIGIE_TEST_COUNT=n, n GETs of the URL with "-<i>"
//     appended, four at a time over keep-alive connections, printing
//     "<code> <path>" for each. The multi-user tests run it as other OS
//     users.
//   - platformEnv: the demo platform in the folder $VIGIE_TEST_PLATFORM,
//     on $VIGIE_TEST_LISTEN with its gateway on $VIGIE_TEST_GATEWAY, until
//     SIGTERM: a real gateway process for the continuity tests to stop.
//   - sinkEnv: the far ends of the benchmarks' held tunnels (runSink),
//     until its standard input ends.
const (
	clientEnv   = "VIGIE_TEST_URL"
	platformEnv = "VIGIE_TEST_PLATFORM"
	sinkEnv     = "VIGIE_TEST_SINK"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(clientEnv) != "":
		os.Exit(runClient())
	case os.Getenv(platformEnv) != "":
		os.Exit(runPlatform())
	case os.Getenv(sinkEnv) != "":
		os.Exit(runSink())
	}
	os.Exit(m.Run())
}

// runSink listens on loopback with an echo server and an HTTP proxy that
// answers every CONNECT with 200 and then echoes the tunnel (it is its
// own origin: one socket per tunnel here), prints the two addresses on a
// line, and serves until its standard input ends.
func runSink() int {
	echo, err1 := net.Listen("tcp", "127.0.0.1:0")
	prx, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	serve := func(ln net.Listener, conn func(c net.Conn)) {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				fmt.Fprintln(os.Stderr, "sink:", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go func() {
				defer c.Close()
				conn(c)
			}()
		}
	}
	echoBack := func(c net.Conn, r io.Reader) {
		var buf [16]byte
		for {
			n, err := r.Read(buf[:])
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go serve(echo, func(c net.Conn) { echoBack(c, c) })
	go serve(prx, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 512)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		echoBack(c, br)
	})
	fmt.Println(echo.Addr(), prx.Addr())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func runClient() int {
	tr := &http.Transport{Proxy: nil}
	if p := os.Getenv("VIGIE_TEST_PROXY"); p != "" {
		u, err := url.Parse(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		tr.Proxy = http.ProxyURL(u)
	}
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if n, _ := strconv.Atoi(os.Getenv("VIGIE_TEST_COUNT")); n > 0 {
		return runClients(c, os.Getenv(clientEnv), n)
	}
	req, err := http.NewRequest("GET", os.Getenv(clientEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d\n%s", resp.StatusCode, body)
	return 0
}

// runClients GETs target-0 to target-<n-1>, four at a time.
func runClients(c *http.Client, target string, n int) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				u := fmt.Sprintf("%s-%d", target, i)
				code := 0
				if resp, err := c.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				fmt.Printf("%d %s\n", code, u)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return 0
}

func runPlatform() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The gateway reaches loopback only: no test traffic leaves the machine.
	loopbackOnly := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test platform: %s is not on loopback", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	err := demo.Run(ctx, demo.Options{Dir: os.Getenv(platformEnv), Listen: os.Getenv("VIGIE_TEST_LISTEN"),
		GatewayListen: os.Getenv("VIGIE_TEST_GATEWAY"), Out: os.Stdout, Server: server.Options{GatewayDial: loopbackOnly},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil && !strings.Contains(err.Error(), "Server closed") {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
