// Package health is the agent's half of continuity (DESIGN.md, flow 7): it
// tells whether the platform's gateway can be reached, whether a captive
// portal holds the network, and from those, the tenant's continuity policy
// and the user's login, what the local proxy does with a request.
//
// Three parts, each usable alone:
//
//   - The state machine. [Compute] is the one place that turns [Inputs]
//     (gateway up, portal, policy, logged in) into a [State]: Connected,
//     NeedsLogin, FailOpen, FailClosed or CaptivePortal. [State.Route] is
//     the [Decision] the proxy applies: use the PAC, go DIRECT, or refuse.
//     Both are pure and table-tested; nothing else in the agent decides
//     this.
//   - The probe. A [Prober] connects to the gateway's TCP address every
//     Interval (default 10 s) with a Timeout (default 3 s), and debounces
//     the results: the gateway is down after DownAfter (3) consecutive
//     failures and up again after UpAfter (2) consecutive successes, the
//     confirming probes coming Confirm (500 ms) apart, so that a stopped
//     gateway is down within 11 s and a restarted one up within 10.5 s;
//     the first result after start, or after [Prober.SetTarget], decides
//     at once. While the gateway is down it also fetches a
//     portal-detection URL directly: anything but "204, empty body" means
//     a captive portal intercepts the network. The prober only observes: it
//     knows nothing of policy or logins, and [Compute] consumes its
//     [ProbeStatus].
//   - The audit trail. A [Journal] records every period in which traffic
//     went DIRECT instead of through the gateway (FailOpen, CaptivePortal),
//     with its reason, in an fsynced, append-only JSON-lines file with one
//     rotated copy, so that `agent status` and the diagnostics can show
//     them after a restart.
//
// The agent wires them: on each value from [Prober.Changes] it reads
// [Prober.Status], computes the state per OS user, hands it to the proxy,
// and records it with [Journal.Record](state, status.Reason(),
// status.LastChange).
//
// What it is not: it does not route requests, serve the fail-closed page,
// apply OS proxy settings or log users in (packages proxy, sysproxy and
// session do), and it does not probe through HTTP: a TCP connect to the
// gateway says the network path is there, which is what continuity needs;
// the gateway's own health is the platform's business.
package health
