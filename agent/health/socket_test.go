package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRealSocket runs a Prober with its default dialer and HTTP client
// against a real TCP listener on loopback, which the test closes and opens
// again, and a real portal-detection server. Outside synctest, with a 50 ms
// interval; it waits on Changes, up to a deadline, never for a fixed time.
func TestRealSocket(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()

	var portal atomic.Bool
	detect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if portal.Load() {
			http.Redirect(w, r, "http://portal.hotel.example/login", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer detect.Close()

	p, err := New(Options{
		Target:    addr,
		Interval:  50 * time.Millisecond,
		Timeout:   50 * time.Millisecond,
		PortalURL: detect.URL + "/generate_204",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitStatus(t, p, "up at start", func(st ProbeStatus) bool { return st.GatewayUp && !st.LastProbe.IsZero() })

	ln.Close()
	closed := time.Now()
	st := waitStatus(t, p, "down after the listener closed", func(st ProbeStatus) bool { return !st.GatewayUp })
	if st.ConsecutiveFailures < 3 || st.LastError == "" {
		t.Errorf("down with %d failures, error %q; want 3 and the dial error", st.ConsecutiveFailures, st.LastError)
	}
	if st.Portal {
		t.Error("portal while the detection URL answers 204")
	}
	t.Logf("down %v after the close: %s", time.Since(closed).Round(time.Millisecond), st.Reason())

	portal.Store(true)
	waitStatus(t, p, "captive portal", func(st ProbeStatus) bool { return st.Portal })

	listen(t, addr)
	st = waitStatus(t, p, "up after the listener reopened", func(st ProbeStatus) bool { return st.GatewayUp })
	if st.Portal || st.ConsecutiveSuccesses < 2 {
		t.Errorf("up with portal %v after %d successes", st.Portal, st.ConsecutiveSuccesses)
	}
	c := st.Counters
	if c.Downs != 1 || c.Ups != 1 || c.PortalsDetected != 1 || c.PortalsCleared != 1 || c.ProbeFailures < 3 {
		t.Errorf("counters %+v", c)
	}
}

// listen listens on addr and accepts (and closes) connections until the
// listener is closed.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept: %v", err)
				}
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	return ln
}

// waitStatus waits, up to 5 s, for a change after which cond holds.
func waitStatus(t *testing.T, p *Prober, what string, cond func(ProbeStatus) bool) ProbeStatus {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if st := p.Status(); cond(st) {
			return st
		}
		select {
		case <-p.Changes():
		case <-deadline:
			t.Fatalf("%s: not within 5 s; status %+v", what, p.Status())
		}
	}
}
