package pac

import (
	"strconv"
	"testing"
)

func TestParseIPLiteral(t *testing.T) {
	tests := []struct {
		in, want string // want "" when not a literal
	}{
		{"1.2.3.4", "1.2.3.4"},
		{"127.1", "127.0.0.1"},
		{"1234", "0.0.4.210"},
		{"0x7f.1", "127.0.0.1"},
		{"0x7f", "0.0.0.127"},
		{"010.0.0.1", "8.0.0.1"},
		{"1.2.3.4.", "1.2.3.4"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"1.2.3.256", ""},
		{"256.1.1.1", ""},
		{"1.2.65536", ""},
		{"08", ""},
		{"1..2", ""},
		{"1.2.3.4.5", ""},
		{"", ""},
		{"www", ""},
		{" 1.2.3.4", ""},
		{"::1", "::1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"[::1]", ""},
		{"fe80::1%eth0", ""},
		{"foo:112", ""},
		{":", ""},
	}
	for _, tc := range tests {
		a, ok := parseIPLiteral(tc.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("parseIPLiteral(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatIP(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4": "1.2.3.4", "::ffff:1.2.3.4": "::ffff:102:304", "2001:db8:0:0:1:0:0:1": "2001:db8::1:0:0:1",
		"2001:0db8:0000:0000:0000:0000:0000:0001": "2001:db8::1", "fe80::": "fe80::",
	} {
		if got := formatIP(mustAddr(in)); got != want {
			t.Errorf("formatIP(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestIsDottedQuad(t *testing.T) {
	for in, want := range map[string]int64{
		"0.0.0.0": 0, "255.255.255.255": 0xffffffff, "10.1.2.3": 0x0a010203, "010.001.002.003": 0x0a010203,
		"1.2.3": -1, "1.2.3.4.5": -1, "1.2.3.256": -1, "1.2.3.1000": -1, "a.b.c.d": -1, "1.2.3.": -1,
		".1.2.3": -1, "": -1, "1.2.3.4\n": -1,
	} {
		v, ok := isDottedQuad(in)
		got := int64(v)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("isDottedQuad(%q) = %s, want %s", in, strconv.FormatInt(got, 16), strconv.FormatInt(want, 16))
		}
	}
}
