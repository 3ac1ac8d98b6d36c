package health

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestCompute lists every combination of the inputs, written out rather
// than derived, so that the table is the specification.
func TestCompute(t *testing.T) {
	const (
		up, down     = true, false
		portal, none = true, false
		in, out      = true, false
		open, closed = PolicyFailOpen, PolicyFailClosed
	)
	tests := []struct {
		gatewayUp, portal bool
		policy            Continuity
		loggedIn          bool
		want              State
	}{
		{up, none, open, in, Connected},
		{up, none, open, out, NeedsLogin},
		{up, none, closed, in, Connected},
		{up, none, closed, out, NeedsLogin},
		// A portal flag left over does not matter once the gateway answers.
		{up, portal, open, in, Connected},
		{up, portal, open, out, NeedsLogin},
		{up, portal, closed, in, Connected},
		{up, portal, closed, out, NeedsLogin},
		// Down: login does not matter, the policy does.
		{down, none, open, in, FailOpen},
		{down, none, open, out, FailOpen},
		{down, none, closed, in, FailClosed},
		{down, none, closed, out, FailClosed},
		// Down behind a portal: DIRECT whatever the policy.
		{down, portal, open, in, CaptivePortal},
		{down, portal, open, out, CaptivePortal},
		{down, portal, closed, in, CaptivePortal},
		{down, portal, closed, out, CaptivePortal},
		// A policy value that is neither refuses.
		{down, none, Continuity(2), in, FailClosed},
		{down, none, Continuity(-1), out, FailClosed},
		{up, none, Continuity(7), in, Connected},
	}
	for _, tt := range tests {
		in := Inputs{GatewayUp: tt.gatewayUp, Portal: tt.portal, Policy: tt.policy, LoggedIn: tt.loggedIn}
		if got := Compute(in); got != tt.want {
			t.Errorf("Compute(%+v) = %v, want %v", in, got, tt.want)
		}
	}
	// The zero Inputs: gateway down, no portal, the default policy.
	if got := Compute(Inputs{}); got != FailOpen {
		t.Errorf("Compute(Inputs{}) = %v, want fail-open", got)
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		s    State
		want Decision
	}{
		{Connected, RoutePAC},
		{NeedsLogin, RoutePAC},
		{FailOpen, RouteDirect},
		{CaptivePortal, RouteDirect},
		{FailClosed, RouteRefuse},
		{State(0), RouteRefuse},
		{State(99), RouteRefuse},
	}
	for _, tt := range tests {
		if got := tt.s.Route(); got != tt.want {
			t.Errorf("%v.Route() = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{Connected, "connected"},
		{NeedsLogin, "needs-login"},
		{FailOpen, "fail-open"},
		{FailClosed, "fail-closed"},
		{CaptivePortal, "captive-portal"},
		{State(0), "State(0)"},
		{State(6), "State(6)"},
		{PolicyFailOpen, "fail-open"},
		{PolicyFailClosed, "fail-closed"},
		{Continuity(3), "Continuity(3)"},
		{RoutePAC, "pac"},
		{RouteDirect, "direct"},
		{RouteRefuse, "refuse"},
		{Decision(0), "Decision(0)"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	for s := Connected; s <= CaptivePortal; s++ {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("state %v: %s read back as %v, %v", s, b, back, err)
		}
	}
	if _, err := json.Marshal(State(0)); err == nil {
		t.Error("marshalling State(0) succeeded")
	}
	var s State
	if err := json.Unmarshal([]byte(`"online"`), &s); err == nil {
		t.Error(`state "online" accepted`)
	}

	var cfg struct{ Continuity Continuity }
	for text, want := range map[string]Continuity{"fail-open": PolicyFailOpen, "fail-closed": PolicyFailClosed} {
		if err := json.Unmarshal([]byte(`{"Continuity":"`+text+`"}`), &cfg); err != nil || cfg.Continuity != want {
			t.Errorf("%q read as %v, %v", text, cfg.Continuity, err)
		}
		if b, err := json.Marshal(cfg); err != nil || string(b) != `{"Continuity":"`+text+`"}` {
			t.Errorf("%v written as %s, %v", want, b, err)
		}
	}
	for _, bad := range []string{"", "open", "FAIL-CLOSED", "failclosed"} {
		if err := json.Unmarshal([]byte(`{"Continuity":"`+bad+`"}`), &cfg); err == nil {
			t.Errorf("policy %q accepted", bad)
		}
	}
	if _, err := json.Marshal(Continuity(5)); err == nil {
		t.Error("marshalling Continuity(5) succeeded")
	}
}
