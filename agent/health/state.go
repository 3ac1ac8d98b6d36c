package health

import (
	"fmt"
	"strconv"
)

// State is the agent's connection state for one OS user. The zero value is
// not a state: [Compute] never returns it, and its [State.Route] refuses.
type State int

const (
	// Connected: the gateway answers and the user has a usable token.
	Connected State = iota + 1
	// NeedsLogin: the gateway answers but the user has no usable token;
	// the proxy starts the login and the gateway's answer to
	// unauthenticated traffic applies (DESIGN.md, flow 4, step 5).
	NeedsLogin
	// FailOpen: the gateway is unreachable and the tenant's policy lets
	// traffic go DIRECT, unfiltered, until it answers again.
	FailOpen
	// FailClosed: the gateway is unreachable and the tenant's policy
	// refuses what would have gone through it.
	FailClosed
	// CaptivePortal: the gateway is unreachable because a captive portal
	// (hotel Wi-Fi) intercepts the network. Traffic goes DIRECT, whatever
	// the policy, so that the user can sign in to the portal; the period
	// is journalled like a fail-open one.
	CaptivePortal
)

var stateNames = [...]string{
	Connected:     "connected",
	NeedsLogin:    "needs-login",
	FailOpen:      "fail-open",
	FailClosed:    "fail-closed",
	CaptivePortal: "captive-portal",
}

// String returns the state's name as status and logs show it:
// "connected", "needs-login", "fail-open", "fail-closed", "captive-portal".
func (s State) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText writes the state's name; an invalid state is an error.
func (s State) MarshalText() ([]byte, error) {
	if s <= 0 || int(s) >= len(stateNames) {
		return nil, fmt.Errorf("health: invalid state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText reads a name written by MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if i > 0 && n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("health: unknown state %q", b)
}

// Continuity is the tenant's continuity policy, from its signed agent
// configuration: what happens to traffic while the gateway is unreachable.
// The zero value is PolicyFailOpen, the policy of a tenant that chose none.
type Continuity int

const (
	// PolicyFailOpen routes traffic DIRECT while the gateway is
	// unreachable: browsing goes on, unfiltered.
	PolicyFailOpen Continuity = iota
	// PolicyFailClosed refuses traffic bound for the gateway while it is
	// unreachable, with a local page that says so.
	PolicyFailClosed
)

// String returns "fail-open" or "fail-closed", the names the configuration
// uses.
func (c Continuity) String() string {
	switch c {
	case PolicyFailOpen:
		return "fail-open"
	case PolicyFailClosed:
		return "fail-closed"
	}
	return "Continuity(" + strconv.Itoa(int(c)) + ")"
}

// MarshalText writes the policy's name; an invalid policy is an error.
func (c Continuity) MarshalText() ([]byte, error) {
	if c != PolicyFailOpen && c != PolicyFailClosed {
		return nil, fmt.Errorf("health: invalid continuity policy %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads "fail-open" or "fail-closed", so that the agent's
// configuration can hold a Continuity; anything else is an error, and the
// configuration that holds it is refused.
func (c *Continuity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "fail-open":
		*c = PolicyFailOpen
	case "fail-closed":
		*c = PolicyFailClosed
	default:
		return fmt.Errorf("health: unknown continuity policy %q (want fail-open or fail-closed)", b)
	}
	return nil
}

// Inputs is everything the connection state depends on.
type Inputs struct {
	// GatewayUp is the prober's debounced verdict on the gateway.
	GatewayUp bool
	// Portal is true when a captive portal intercepts the network. The
	// prober only looks for one while the gateway is down.
	Portal bool
	// Policy is the tenant's continuity policy, from its signed config.
	Policy Continuity
	// LoggedIn is true when this OS user has a usable token.
	LoggedIn bool
}

// Compute is the agent's connection state machine: the one function that
// turns Inputs into a State.
//
//   - Gateway up: Connected if the user is logged in, NeedsLogin if not.
//     A stale Portal flag does not matter once the gateway answers.
//   - Gateway down, captive portal: CaptivePortal, whatever the policy:
//     the gateway cannot be reached before the user passes the portal,
//     which needs DIRECT traffic.
//   - Gateway down otherwise: FailOpen under PolicyFailOpen, FailClosed
//     under PolicyFailClosed, and FailClosed for a policy value that is
//     neither (a programming error: refusing is the safe side).
//
// Login does not matter while the gateway is down: there is nothing to
// send a token to.
func Compute(in Inputs) State {
	switch {
	case in.GatewayUp && in.LoggedIn:
		return Connected
	case in.GatewayUp:
		return NeedsLogin
	case in.Portal:
		return CaptivePortal
	case in.Policy == PolicyFailOpen:
		return FailOpen
	default:
		return FailClosed
	}
}

// Decision is what the local proxy does with a request in a given State.
type Decision int

const (
	// RoutePAC: evaluate the tenant's PAC and follow it; requests for the
	// gateway carry the user's token (or, without one, get the gateway's
	// answer to unauthenticated traffic while the login starts).
	RoutePAC Decision = iota + 1
	// RouteDirect: do not consult the PAC; connect every request directly
	// to its origin. Nothing is filtered and no token is sent anywhere.
	RouteDirect
	// RouteRefuse: evaluate the PAC; a request it sends DIRECT still goes
	// direct (the tenant exempted it from filtering, so the gateway being
	// down changes nothing for it), and a request it sends to the gateway
	// is answered at once with the agent's local fail-closed page instead
	// of trying the gateway.
	RouteRefuse
)

// String returns "pac", "direct" or "refuse".
func (d Decision) String() string {
	switch d {
	case RoutePAC:
		return "pac"
	case RouteDirect:
		return "direct"
	case RouteRefuse:
		return "refuse"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Route returns the Decision for requests in state s: RoutePAC when
// Connected or NeedsLogin, RouteDirect when FailOpen or CaptivePortal,
// RouteRefuse when FailClosed and for an invalid State.
func (s State) Route() Decision {
	switch s {
	case Connected, NeedsLogin:
		return RoutePAC
	case FailOpen, CaptivePortal:
		return RouteDirect
	default:
		return RouteRefuse
	}
}
