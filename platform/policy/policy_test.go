package policy

import (
	"strings"
	"testing"
)

const doc = `{
  "default": "allow",
  "rules": [
    {"id": "no-gambling", "categories": ["gambling"], "action": "block"},
    {"id": "contractors-social", "groups": ["contractors"], "categories": ["social"], "action": "block"},
    {"id": "intranet", "domains": ["corp.example"], "action": "allow_no_inspect"},
    {"id": "exact", "hosts": ["Blocked.Example"], "action": "block"},
    {"id": "staff-all", "groups": ["staff"], "domains": ["staff-only.example"], "action": "allow"}
  ]
}`

func TestDecide(t *testing.T) {
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cats, err := ParseCategories(ShippedCategories)
	if err != nil {
		t.Fatal(err)
	}
	c := Compile(d, 3)
	tests := []struct {
		host, groups string
		action       string
		inspect      bool
		rule         string
	}{
		{"www.example.com", "staff", Allow, true, "default"},
		{"casino.example", "staff", Block, true, "no-gambling"},
		{"www.casino.example", "staff", Block, true, "no-gambling"},
		{"facebook.com", "contractors", Block, true, "contractors-social"},
		{"facebook.com", "staff", Allow, true, "default"},
		{"git.corp.example", "staff", Allow, false, "intranet"},
		{"corp.example", "", Allow, false, "intranet"},
		{"notcorp.example", "", Allow, true, "default"},
		{"blocked.example", "", Block, true, "exact"},
		{"sub.blocked.example", "", Allow, true, "default"},
		{"bank.example", "staff", Allow, false, "default"}, // banking is never inspected
		{"www.paypal.com", "", Allow, false, "default"},
		{"staff-only.example", "staff", Allow, true, "staff-all"},
		{"staff-only.example", "contractors", Allow, true, "default"},
	}
	for _, tc := range tests {
		var groups []string
		if tc.groups != "" {
			groups = strings.Split(tc.groups, ",")
		}
		got := c.Decide(Request{Host: tc.host, Groups: groups, Categories: cats.Of(tc.host)})
		if got.Action != tc.action || got.Inspect != tc.inspect || got.Rule != tc.rule || got.Reason == "" {
			t.Errorf("%s for %s: %+v, want %s inspect=%v rule %s", tc.host, tc.groups, got, tc.action, tc.inspect, tc.rule)
		}
	}
	// The reason says what the rule matched on, for the block page.
	for host, want := range map[string]string{
		"www.casino.example": "blocked by rule no-gambling (category gambling)",
		"git.corp.example":   "allowed without inspection by rule intranet (domain corp.example)",
		"blocked.example":    "blocked by rule exact",
	} {
		if got := c.Decide(Request{Host: host, Categories: cats.Of(host)}); got.Reason != want {
			t.Errorf("%s: reason %q, want %q", host, got.Reason, want)
		}
	}
}

func TestDefaultsAndBypass(t *testing.T) {
	cats, _ := ParseCategories(ShippedCategories)
	d, _ := Parse([]byte(`{"default":"block","inspect":false,"no_inspect_categories":[],"rules":[{"id":"ok","domains":["example.com"],"action":"allow"}]}`))
	c := Compile(d, 1)
	if got := c.Decide(Request{Host: "www.example.com"}); got.Action != Allow || got.Inspect {
		t.Errorf("inspection off: %+v", got)
	}
	if got := c.Decide(Request{Host: "other.example"}); got.Action != Block || got.Rule != "default" {
		t.Errorf("default block: %+v", got)
	}
	// An empty bypass list: banking is inspected like anything else.
	d, _ = Parse([]byte(`{"no_inspect_categories":[],"rules":[]}`))
	if got := Compile(d, 1).Decide(Request{Host: "bank.example", Categories: cats.Of("bank.example")}); !got.Inspect {
		t.Errorf("bank with no bypass list: %+v", got)
	}
	// A blocked bypassed host is not inspected: the CONNECT is refused instead.
	d, _ = Parse([]byte(`{"rules":[{"id":"nobank","categories":["banking"],"action":"block"}]}`))
	if got := Compile(d, 1).Decide(Request{Host: "bank.example", Categories: cats.Of("bank.example")}); got.Action != Block || got.Inspect {
		t.Errorf("blocked bank: %+v", got)
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"default":"deny","rules":[]}`:                                                                                   `default: want allow or block`,
		`{"rules":[{"id":"a","hosts":["x.example"],"action":"permit"}]}`:                                                  `rules[0] (a): action`,
		`{"rules":[{"hosts":["x.example"],"action":"allow"}]}`:                                                            `rules[0]: id is required`,
		`{"rules":[{"id":"a","action":"allow"}]}`:                                                                         `at least one condition`,
		`{"rules":[{"id":"a","hosts":["bad host"],"action":"allow"}]}`:                                                    `hosts: "bad host"`,
		`{"rules":[{"id":"a","domains":["münchen.de"],"action":"allow"}]}`:                                                `punycode`,
		`{"rules":[{"id":"a","hosts":["x.example"],"action":"allow"},{"id":"a","hosts":["y.example"],"action":"allow"}]}`: `used twice`,
		`{"rules":[],"colour":"red"}`:                                                                                     `unknown field "colour"`,
		`[]`:                                                                                                              `policy:`,
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want %q", in, err, want)
		}
	}
}

func TestCategories(t *testing.T) {
	c, err := ParseCategories([]byte("# version: 7\nexample.com news\nsports.example.com sport,news\n\n# comment\n"))
	if err != nil || c.Version != "7" {
		t.Fatal(c, err)
	}
	if got := strings.Join(c.Of("live.sports.example.com"), ","); got != "news,sport" {
		t.Errorf("categories of live.sports.example.com: %s", got)
	}
	if got := c.Of("example.org"); got != nil {
		t.Errorf("unlisted: %v", got)
	}
	for _, bad := range []string{"example.com news\n", "# version: 1\nno-category\n", "# version: 1\nbad host news\n"} {
		if _, err := ParseCategories([]byte(bad)); err == nil {
			t.Errorf("ParseCategories(%q) succeeded", bad)
		}
	}
	if !UnderDomain("a.b.example", "b.example") || UnderDomain("ab.example", "b.example") || !UnderDomain("b.example", "b.example") {
		t.Error("UnderDomain")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(doc)
	f.Add(`{"rules":[]}`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse([]byte(s))
		if err == nil {
			Compile(d, 1).Decide(Request{Host: "x.example", Groups: []string{"g"}})
		}
	})
}

func TestConnectPorts(t *testing.T) {
	d, _ := Parse([]byte(`{"rules":[]}`))
	c := Compile(d, 1)
	if !c.ConnectPortAllowed("443") || !c.ConnectPortAllowed("8443") || c.ConnectPortAllowed("22") {
		t.Error("default ports")
	}
	d, _ = Parse([]byte(`{"connect_ports":[443,993],"rules":[]}`))
	if c := Compile(d, 1); !c.ConnectPortAllowed("993") || c.ConnectPortAllowed("8443") {
		t.Error("configured ports")
	}
	if _, err := Parse([]byte(`{"connect_ports":[0],"rules":[]}`)); err == nil {
		t.Error("port 0 accepted")
	}
}
