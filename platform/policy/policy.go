// Package policy is a tenant's filtering policy: ordered rules that match on
// the user's groups, exact hosts, domain suffixes and URL categories, with
// the actions allow, block and allow without TLS inspection, a default
// action, and the categories whose traffic is never inspected. It parses and
// validates the document the admin API stores, compiles it for fast
// matching, and decides one request at a time. It does not fetch, store or
// proxy anything.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Actions of a rule.
const (
	Allow          = "allow"
	Block          = "block"
	AllowNoInspect = "allow_no_inspect" // allowed, and tunnelled untouched
)

// Doc is the policy document, as the admin API reads and writes it.
type Doc struct {
	// Default is the action when no rule matches: "allow" (the default) or
	// "block".
	Default string `json:"default,omitempty"`
	// Inspect turns TLS inspection on for allowed traffic. Default true.
	Inspect *bool `json:"inspect,omitempty"`
	// NoInspectCategories are never inspected, whatever the rules say about
	// allowing them (banking, health, certificate-pinned apps). Default
	// DefaultNoInspect.
	NoInspectCategories []string `json:"no_inspect_categories,omitempty"`
	// ConnectPorts are the ports CONNECT may reach (HTTPS). Default
	// DefaultConnectPorts.
	ConnectPorts []int  `json:"connect_ports,omitempty"`
	Rules        []Rule `json:"rules"`
}

// DefaultConnectPorts are the ports a tunnel may reach when the policy sets
// none: HTTPS and its usual alternative.
var DefaultConnectPorts = []int{443, 8443}

// DefaultNoInspect is the bypass list of a tenant that sets none.
var DefaultNoInspect = []string{"banking", "health", "pinned"}

// Rule matches when every condition it sets matches: one of its groups is
// one of the user's, and the host is one of its hosts, under one of its
// domains, or in one of its categories (a rule without host conditions
// matches every host).
type Rule struct {
	ID          string   `json:"id"`
	Description string   `json:"description,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Hosts       []string `json:"hosts,omitempty"`
	Domains     []string `json:"domains,omitempty"`
	Categories  []string `json:"categories,omitempty"`
	Action      string   `json:"action"`
}

// Parse reads and validates a policy document. Errors name the rule and
// field at fault.
func Parse(data []byte) (*Doc, error) {
	var d Doc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &d, d.Validate()
}

// Validate checks the document.
func (d *Doc) Validate() error {
	var errs []error
	switch d.Default {
	case "", Allow, Block:
	default:
		errs = append(errs, fmt.Errorf("policy: default: want allow or block, got %q", d.Default))
	}
	for _, p := range d.ConnectPorts {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("policy: connect_ports: %d is not a port", p))
		}
	}
	ids := map[string]bool{}
	for i, r := range d.Rules {
		where := fmt.Sprintf("policy: rules[%d]", i)
		if r.ID == "" {
			errs = append(errs, fmt.Errorf("%s: id is required (it names the rule in logs and block pages)", where))
		} else if ids[r.ID] {
			errs = append(errs, fmt.Errorf("%s: id %q is used twice", where, r.ID))
		}
		ids[r.ID] = true
		switch r.Action {
		case Allow, Block, AllowNoInspect:
		default:
			errs = append(errs, fmt.Errorf("%s (%s): action: want allow, block or allow_no_inspect, got %q", where, r.ID, r.Action))
		}
		for _, h := range r.Hosts {
			if err := checkHost(h); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): hosts: %v", where, r.ID, err))
			}
		}
		for _, h := range r.Domains {
			if err := checkHost(strings.TrimPrefix(h, ".")); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): domains: %v", where, r.ID, err))
			}
		}
		if len(r.Groups)+len(r.Hosts)+len(r.Domains)+len(r.Categories) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): a rule needs at least one condition (groups, hosts, domains or categories); use default for everything", where, r.ID))
		}
	}
	return errors.Join(errs...)
}

func checkHost(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q is not a host name", h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name (use the ASCII/punycode form)", h)
			}
		}
	}
	return nil
}

// Compiled is a policy ready to decide; it is immutable and safe for
// concurrent use.
type Compiled struct {
	Version   int64
	dflt      string
	inspect   bool
	noInspect map[string]bool
	ports     map[string]bool
	rules     []compiledRule
}

// ConnectPortAllowed says whether a tunnel may go to port.
func (c *Compiled) ConnectPortAllowed(port string) bool { return c.ports[port] }

type compiledRule struct {
	id         string
	action     string
	groups     map[string]bool
	hosts      map[string]bool
	domains    []string // lower case, without a leading dot
	categories map[string]bool
	anyHost    bool
}

// Compile prepares a validated document.
func Compile(d *Doc, version int64) *Compiled {
	c := &Compiled{Version: version, dflt: Allow, inspect: true, noInspect: set(DefaultNoInspect)}
	if d.Default != "" {
		c.dflt = d.Default
	}
	if d.Inspect != nil {
		c.inspect = *d.Inspect
	}
	if d.NoInspectCategories != nil {
		c.noInspect = set(d.NoInspectCategories)
	}
	ports := d.ConnectPorts
	if len(ports) == 0 {
		ports = DefaultConnectPorts
	}
	c.ports = map[string]bool{}
	for _, p := range ports {
		c.ports[strconv.Itoa(p)] = true
	}
	for _, r := range d.Rules {
		cr := compiledRule{id: r.ID, action: r.Action, groups: set(r.Groups), hosts: set(lower(r.Hosts)),
			categories: set(r.Categories), anyHost: len(r.Hosts)+len(r.Domains)+len(r.Categories) == 0}
		for _, dom := range r.Domains {
			cr.domains = append(cr.domains, strings.ToLower(strings.TrimPrefix(dom, ".")))
		}
		c.rules = append(c.rules, cr)
	}
	return c
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func lower(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ToLower(x)
	}
	return out
}

// Request is what a decision is made on.
type Request struct {
	Host       string   // lower case, without port
	Groups     []string // the user's groups, from the token
	Categories []string // the host's categories
}

// Decision is the outcome for one request.
type Decision struct {
	Action  string // Allow or Block
	Inspect bool   // decrypt and inspect TLS (only when allowed, or to show a block page)
	Rule    string // the rule ID, "default", or "category:<name>" for the bypass list
	Reason  string // for people: the block page and the log
}

// Decide applies the rules in order; the first that matches decides.
func (c *Compiled) Decide(r Request) Decision {
	for i := range c.rules {
		cr := &c.rules[i]
		ok, what := cr.matches(r)
		if !ok {
			continue
		}
		rule := cr.id + what
		switch cr.action {
		case Block:
			return Decision{Action: Block, Inspect: c.inspect && !c.bypassed(r), Rule: cr.id, Reason: "blocked by rule " + rule}
		case AllowNoInspect:
			return Decision{Action: Allow, Inspect: false, Rule: cr.id, Reason: "allowed without inspection by rule " + rule}
		default:
			return c.allow(r, cr.id, "allowed by rule "+rule)
		}
	}
	if c.dflt == Block {
		return Decision{Action: Block, Inspect: c.inspect && !c.bypassed(r), Rule: "default", Reason: "blocked by the tenant's default"}
	}
	return c.allow(r, "default", "allowed by the tenant's default")
}

func (c *Compiled) allow(r Request, rule, reason string) Decision {
	if cat := c.bypassCategory(r); cat != "" {
		return Decision{Action: Allow, Inspect: false, Rule: rule, Reason: reason + "; not inspected (category " + cat + ")"}
	}
	return Decision{Action: Allow, Inspect: c.inspect, Rule: rule, Reason: reason}
}

func (c *Compiled) bypassed(r Request) bool { return c.bypassCategory(r) != "" }

func (c *Compiled) bypassCategory(r Request) string {
	for _, cat := range r.Categories {
		if c.noInspect[cat] {
			return cat
		}
	}
	return ""
}

// matches says whether the rule applies to r and, for people, on what it
// matched: " (category gambling)", " (domain example.com)", or "" (the
// rule names the host, or every host).
func (cr *compiledRule) matches(r Request) (bool, string) {
	if len(cr.groups) > 0 && !anyIn(r.Groups, cr.groups) {
		return false, ""
	}
	if cr.anyHost || cr.hosts[r.Host] {
		return true, ""
	}
	for _, cat := range r.Categories {
		if cr.categories[cat] {
			return true, " (category " + cat + ")"
		}
	}
	for _, d := range cr.domains {
		if UnderDomain(r.Host, d) {
			return true, " (domain " + d + ")"
		}
	}
	return false, ""
}

func anyIn(xs []string, m map[string]bool) bool {
	for _, x := range xs {
		if m[x] {
			return true
		}
	}
	return false
}

// UnderDomain reports whether host is domain or a subdomain of it, on a
// label boundary (notexample.com is not under example.com).
func UnderDomain(host, domain string) bool {
	return host == domain || len(host) > len(domain) && strings.HasSuffix(host, domain) && host[len(host)-len(domain)-1] == '.'
}
