package health

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The synctest tests run the real Run loop on fakes: the bubble's clock
// starts at the first probe, probes fall on whole multiples of the 10 s
// interval, and at(d) looks at the prober just after everything due at d.

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string // in the error
	}{
		{"no target", Options{}, "gateway address"},
		{"no port", Options{Target: "gw.example"}, "missing port"},
		{"no host", Options{Target: ":3128"}, "no host"},
		{"port not a number", Options{Target: "gw.example:proxy"}, "port must be a number"},
		{"port zero", Options{Target: "gw.example:0"}, "port must be a number"},
		{"port too big", Options{Target: "gw.example:65536"}, "port must be a number"},
		{"timeout over interval", Options{Target: gwA, Interval: time.Second, Timeout: 2 * time.Second}, "longer than the interval"},
		{"negative interval", Options{Target: gwA, Interval: -time.Second}, "negative"},
		{"negative thresholds", Options{Target: gwA, DownAfter: -1}, "negative"},
		{"portal URL relative", Options{Target: gwA, PortalURL: "/generate_204"}, "absolute http"},
		{"portal URL not http", Options{Target: gwA, PortalURL: "ftp://detect.example/"}, "absolute http"},
		{"portal URL unparsable", Options{Target: gwA, PortalURL: "http://[::1"}, "portal URL"},
	}
	for _, tt := range tests {
		_, err := New(tt.o)
		if err == nil || !strings.HasPrefix(err.Error(), "health: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error %v, want one about %q", tt.name, err, tt.want)
		}
	}
	if p, err := New(Options{Target: gwA, Interval: time.Second}); err != nil {
		t.Error(err)
	} else if p.timeout != time.Second {
		t.Errorf("with a 1 s interval: timeout %v, want the interval", p.timeout)
	}
	p, err := New(Options{Target: "[::1]:3128"})
	if err != nil {
		t.Fatal(err)
	}
	if p.interval != 10*time.Second || p.timeout != 3*time.Second || p.downAfter != 3 || p.upAfter != 2 {
		t.Errorf("defaults: interval %v, timeout %v, down after %d, up after %d", p.interval, p.timeout, p.downAfter, p.upAfter)
	}
	// Before Run: assumed up, never probed.
	if st := p.Status(); !st.GatewayUp || !st.LastProbe.IsZero() || st.Target != "[::1]:3128" {
		t.Errorf("status before Run: %+v", st)
	}
}

// TestStart checks that the first result decides at once, either way.
func TestStart(t *testing.T) {
	t.Run("gateway up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := runProber(t, true, nil)
			st := b.at(0)
			if !st.GatewayUp || !st.LastProbe.Equal(b.start) || !st.LastChange.Equal(b.start) || st.ConsecutiveSuccesses != 1 {
				t.Errorf("after the first probe: %+v", st)
			}
			if !b.changed() {
				t.Error("no change notification for the first verdict")
			}
			if got := b.logs.messages(); !slices.Equal(got, []string{"gateway reachable"}) {
				t.Errorf("logs %q", got)
			}
			if b.portal.count() != 0 {
				t.Error("portal checked while the gateway is up")
			}
		})
	})
	t.Run("gateway down", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := runProber(t, false, nil)
			st := b.at(0)
			if st.GatewayUp || st.ConsecutiveFailures != 1 || st.Counters.Downs != 1 || !st.LastChange.Equal(b.start) {
				t.Errorf("after the first probe: %+v", st)
			}
			if !strings.Contains(st.LastError, "connection refused") {
				t.Errorf("LastError %q", st.LastError)
			}
			if got := st.Reason(); !strings.HasPrefix(got, "gateway unreachable: dial tcp") {
				t.Errorf("Reason %q", got)
			}
			if got := Compute(Inputs{GatewayUp: st.GatewayUp, Portal: st.Portal, Policy: PolicyFailClosed}); got != FailClosed {
				t.Errorf("state %v, want fail-closed", got)
			}
			if !b.changed() {
				t.Error("no change notification")
			}
			if b.portal.count() != 1 || st.Counters.PortalChecks != 1 {
				t.Errorf("%d portal checks, want 1 with the first failed probe", b.portal.count())
			}
		})
	})
}

// TestDown checks that the gateway goes down on the third failed probe
// after it stops answering, not before, the two after the first failure
// coming Confirm (500 ms) apart: when connections are refused it is down
// 11 s after the last success; when they are dropped each probe also waits
// out the 3 s timeout.
func TestDown(t *testing.T) {
	for _, tt := range []struct {
		name   string
		drop   bool
		down   time.Duration // when the verdict changes
		probes []time.Duration
	}{
		{"refused", false, 11 * time.Second, seconds(0, 10, 10.5, 11)},
		{"dropped", true, 19 * time.Second, seconds(0, 10, 13, 16)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := runProber(t, true, nil)
				b.at(0)
				b.changed()
				b.net.setDrop(tt.drop)
				b.at(5 * time.Second)
				b.net.set(gwA, false)

				st := b.at(tt.down - time.Millisecond)
				if !st.GatewayUp || st.ConsecutiveFailures != 2 || b.changed() {
					t.Fatalf("just before %v: %+v", tt.down, st)
				}
				st = b.at(tt.down)
				if st.GatewayUp || st.ConsecutiveFailures != 3 || !st.LastChange.Equal(b.start.Add(tt.down)) {
					t.Fatalf("at %v: %+v", tt.down, st)
				}
				if !b.changed() {
					t.Error("no change notification")
				}
				if got, want := b.net.dialTimes(gwA, b.start), tt.probes; !slices.Equal(got, want) {
					t.Errorf("probes at %v, want %v", got, want)
				}
				if st.Counters.Probes != 4 || st.Counters.ProbeFailures != 3 || st.Counters.Downs != 1 || st.Counters.Ups != 0 {
					t.Errorf("counters %+v", st.Counters)
				}
				if tt.drop && !strings.Contains(st.LastError, "deadline exceeded") {
					t.Errorf("LastError %q", st.LastError)
				}
				// Down, it keeps probing every 10 s, and logs nothing more.
				b.at(tt.down + 60*time.Second)
				if got := b.logs.messages(); !slices.Equal(got, []string{"gateway reachable", "gateway unreachable"}) {
					t.Errorf("logs %q", got)
				}
				if n := len(b.net.dialTimes(gwA, b.start)); n != 10 {
					t.Errorf("%d probes in 90 s, want 10", n)
				}
			})
		})
	}
}

// TestUp checks that the gateway is up again on the second successful
// probe after it answers, Confirm (500 ms) after the first, and that
// isolated results change nothing.
func TestUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, false, nil)
		b.at(0)
		b.changed()
		b.at(35 * time.Second)
		b.net.set(gwA, true)
		if st := b.at(40500*time.Millisecond - time.Millisecond); st.GatewayUp || st.ConsecutiveSuccesses != 1 || b.changed() {
			t.Fatalf("at 40.5 s, one success: %+v", st)
		}
		st := b.at(40500 * time.Millisecond)
		if !st.GatewayUp || !st.LastChange.Equal(b.start.Add(40500*time.Millisecond)) || st.Counters.Ups != 1 {
			t.Fatalf("at 40.5 s, two successes: %+v", st)
		}
		if !b.changed() {
			t.Error("no change notification")
		}
		if st.Reason() != "" {
			t.Errorf("Reason while up %q", st.Reason())
		}
		if !strings.Contains(st.LastError, "refused") {
			t.Errorf("LastError %q: the last failure is kept for diagnostics", st.LastError)
		}

		// Flapping: one failed probe in two never takes it down.
		now := 40500 * time.Millisecond
		for i := range 6 {
			b.net.set(gwA, i%2 == 1)
			before := b.p.Status().Counters.Probes
			for b.p.Status().Counters.Probes == before {
				now += 100 * time.Millisecond
				b.at(now)
			}
			if st := b.p.Status(); !st.GatewayUp {
				t.Fatalf("flap %d: down: %+v", i, st)
			}
		}
		want := []string{"gateway unreachable", "gateway reachable again"}
		if got := b.logs.messages(); !slices.Equal(got, want) {
			t.Errorf("logs %q, want %q", got, want)
		}
	})
}

// TestPortal checks how each answer of the detection URL reads, while the
// gateway is down.
func TestPortal(t *testing.T) {
	for _, tt := range []struct {
		answer string
		portal bool
		log    string
	}{
		{"204", false, ""},
		{"login", true, "captive portal detected"},
		{"302", true, "captive portal detected"},
		{"204+body", true, "captive portal detected"},
		{"offline", false, ""},
	} {
		t.Run(tt.answer, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := runProber(t, false, nil)
				b.portal.set(tt.answer)
				// The check with the first probe, at 0, saw the default
				// 204; the one at 10 s sees tt.answer.
				st := b.at(10 * time.Second)
				if st.Portal != tt.portal {
					t.Fatalf("answer %s: Portal %v", tt.answer, st.Portal)
				}
				state := Compute(Inputs{GatewayUp: st.GatewayUp, Portal: st.Portal, Policy: PolicyFailClosed})
				if tt.portal && (state != CaptivePortal || st.Reason() != "captive portal") {
					t.Errorf("state %v, reason %q", state, st.Reason())
				}
				if !tt.portal && state != FailClosed {
					t.Errorf("state %v, want fail-closed", state)
				}
				if got := b.portal.count(); got != 2 {
					t.Errorf("%d checks, want 2", got)
				}
				logs := b.logs.messages()
				if tt.log == "" && len(logs) != 1 || tt.log != "" && (len(logs) != 2 || logs[1] != tt.log) {
					t.Errorf("logs %q", logs)
				}
			})
		})
	}
}

// TestPortalClears follows a hotel stay: a portal intercepts, the user
// signs in (the URL answers 204 again), then the gateway is reached.
func TestPortalClears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, false, nil)
		b.at(0)
		b.portal.set("302")
		b.changed()
		st := b.at(10 * time.Second)
		if !st.Portal || !b.changed() || st.Counters.PortalsDetected != 1 {
			t.Fatalf("portal not detected: %+v", st)
		}
		// Still there: checked every interval, no new change.
		b.portal.set("login")
		if st := b.at(40 * time.Second); !st.Portal || b.changed() || b.portal.count() != 5 {
			t.Fatalf("at 40 s: %+v, %d checks", st, b.portal.count())
		}
		// Signed in: the URL answers 204 at the next check.
		b.portal.set("204")
		b.at(45 * time.Second)
		if st := b.at(49 * time.Second); !st.Portal {
			t.Fatal("portal cleared before the next check")
		}
		st = b.at(50 * time.Second)
		if st.Portal || !b.changed() || st.Counters.PortalsCleared != 1 || !st.LastChange.Equal(b.start.Add(50*time.Second)) {
			t.Fatalf("at 50 s: %+v", st)
		}
		// Behind a portal again, then the gateway answers: up clears it
		// and the checks stop.
		b.portal.set("login")
		if st := b.at(60 * time.Second); !st.Portal {
			t.Fatal("portal not detected again")
		}
		b.net.set(gwA, true)
		b.at(70 * time.Second)
		checks := b.portal.count()
		st = b.at(80 * time.Second)
		if !st.GatewayUp || st.Portal || st.Counters.PortalsCleared != 2 {
			t.Fatalf("at 80 s: %+v", st)
		}
		b.at(120 * time.Second)
		if b.portal.count() != checks {
			t.Errorf("%d portal checks while up", b.portal.count()-checks)
		}
	})
}

// TestPortalOffline checks that a network error on the detection URL
// clears a portal: without a network there is nothing to sign in to, and a
// stale flag would keep a fail-closed agent DIRECT.
func TestPortalOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, false, nil)
		b.portal.set("login")
		if st := b.at(10 * time.Second); !st.Portal {
			t.Fatal("portal not detected")
		}
		b.portal.set("offline")
		if st := b.at(20 * time.Second); st.Portal {
			t.Fatal("portal kept while offline")
		}
		if st := b.p.Status(); st.Reason() == "captive portal" {
			t.Errorf("Reason %q", st.Reason())
		}
	})
}

func TestNoPortalDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, false, func(o *Options) { o.PortalURL = "" })
		b.portal.set("login")
		if st := b.at(30 * time.Second); st.Portal || b.portal.count() != 0 {
			t.Errorf("portal %v after %d checks with detection off", st.Portal, b.portal.count())
		}
	})
}

// TestSetTarget checks that a new address is probed at once and that its
// first result decides, and that a result for the old one is dropped.
func TestSetTarget(t *testing.T) {
	t.Run("probed at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := runProber(t, true, nil)
			b.at(0)
			b.changed()
			b.at(5 * time.Second)
			if err := b.p.SetTarget(gwB); err != nil { // gwB does not answer
				t.Fatal(err)
			}
			st := b.at(5 * time.Second)
			if st.Target != gwB || st.GatewayUp || st.ConsecutiveFailures != 1 || !b.changed() {
				t.Fatalf("after SetTarget: %+v", st)
			}
			if got := b.net.dialTimes(gwB, b.start); !slices.Equal(got, seconds(5)) {
				t.Errorf("gwB probed at %v, want at once", got)
			}
			// The schedule restarts from the change: next probe at 15 s,
			// confirmed 500 ms later, then every 10 s.
			b.net.set(gwB, true)
			b.at(25500 * time.Millisecond)
			if got := b.net.dialTimes(gwB, b.start); !slices.Equal(got, seconds(5, 15, 15.5, 25.5)) {
				t.Errorf("gwB probed at %v", got)
			}
			if got := b.net.dialTimes(gwA, b.start); !slices.Equal(got, seconds(0)) {
				t.Errorf("gwA probed at %v after the change", got)
			}
			if st := b.p.Status(); !st.GatewayUp || st.Counters.TargetChanges != 1 {
				t.Errorf("at 25.5 s: %+v", st)
			}
			want := []string{"gateway reachable", "gateway address changed", "gateway unreachable", "gateway reachable again"}
			if got := b.logs.messages(); !slices.Equal(got, want) {
				t.Errorf("logs %q, want %q", got, want)
			}
		})
	})
	t.Run("result for the old address dropped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := runProber(t, true, nil)
			b.at(5 * time.Second)
			b.net.setDrop(true)
			b.net.set(gwA, false)
			b.net.set(gwB, true)
			b.at(11 * time.Second) // the 10 s probe of gwA hangs
			if err := b.p.SetTarget(gwB); err != nil {
				t.Fatal(err)
			}
			st := b.at(13 * time.Second) // gwA times out, gwB is probed
			if !st.GatewayUp || st.ConsecutiveFailures != 0 || st.LastError != "" || st.Counters.ProbeFailures != 1 {
				t.Errorf("after the change: %+v", st)
			}
			if got := b.net.dialTimes(gwB, b.start); !slices.Equal(got, seconds(13)) {
				t.Errorf("gwB probed at %v", got)
			}
		})
	})
	t.Run("same or invalid", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := runProber(t, true, nil)
			b.at(0)
			if err := b.p.SetTarget(gwA); err != nil {
				t.Fatal(err)
			}
			if err := b.p.SetTarget("gw-c.example"); err == nil || !strings.HasPrefix(err.Error(), "health: ") {
				t.Errorf("SetTarget without a port: %v", err)
			}
			b.at(5 * time.Second)
			if got := b.net.dialTimes(gwA, b.start); !slices.Equal(got, seconds(0)) {
				t.Errorf("probes at %v: setting the same target probed again", got)
			}
			if st := b.p.Status(); st.Target != gwA || st.Counters.TargetChanges != 0 {
				t.Errorf("status %+v", st)
			}
		})
	})
}

// TestChangesCoalesce checks that changes nobody read leave one value.
func TestChangesCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, false, nil) // 1: down at once
		b.portal.set("login")
		b.at(10 * time.Second) // 2: portal
		b.portal.set("204")
		b.at(20 * time.Second) // 3: portal cleared
		if st := b.p.Status(); st.Counters.Downs != 1 || st.Counters.PortalsDetected != 1 || st.Counters.PortalsCleared != 1 {
			t.Fatalf("counters %+v", st.Counters)
		}
		if !b.changed() || b.changed() {
			t.Error("want exactly one pending notification")
		}
	})
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runProber(t, true, nil)
		if err := b.p.Run(context.Background()); err == nil {
			t.Error("a second Run started")
		}
		// Run returns nil when its context ends; probes stop.
		p, err := New(Options{Target: gwA, Dial: b.net.Dial, HTTPClient: &http.Client{Transport: b.portal}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		if n := len(b.net.dialTimes(gwA, b.start)); n != 3+3 {
			t.Errorf("%d probes; want 3 from each prober in 25 s", n)
		}
		// A probe cut short by the end of Run is not a gateway failure.
		b.net.set(gwA, false)
		b.net.setDrop(true)
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Run(ctx)
		if st := p.Status(); st.Counters.ProbeFailures != 0 || !st.GatewayUp {
			t.Errorf("after a cancelled probe: %+v", st)
		}
	})
}
