package sysproxy

import (
	"errors"
	"slices"
	"testing"
)

// Tests of the portable parts, run on every OS.

func TestValidate(t *testing.T) {
	ok := []Settings{
		{PACURL: "http://127.0.0.1:3129/proxy.pac"},
		{PACURL: "https://[::1]:3129/proxy.pac?v=2", ProxyAddr: "[::1]:3129", Bypass: []string{"*.corp", ".example.com", "10.0.0.0/8", "<local>"}},
	}
	for _, s := range ok {
		if err := s.validate(); err != nil {
			t.Errorf("validate(%+v) = %v", s, err)
		}
	}
	bad := []Settings{
		{},
		{PACURL: "/proxy.pac"},
		{PACURL: "file:///etc/proxy.pac"},
		{PACURL: "http://127.0.0.1/a b"},
		{PACURL: "http://127.0.0.1/$(id)"},
		{PACURL: "http://127.0.0.1/\\"},
		{PACURL: "http://127.0.0.1/é"},
		{PACURL: "http://127.0.0.1/p.pac", ProxyAddr: ":3129"},
		{PACURL: "http://127.0.0.1/p.pac", ProxyAddr: "127.0.0.1:0"},
		{PACURL: "http://127.0.0.1/p.pac", ProxyAddr: "a;b:1"},
		{PACURL: "http://127.0.0.1/p.pac", Bypass: []string{""}},
		{PACURL: "http://127.0.0.1/p.pac", Bypass: []string{"a,b"}},
	}
	for _, s := range bad {
		if err := s.validate(); err == nil {
			t.Errorf("validate(%+v) = nil", s)
		}
	}
}

func TestWinHTTPBypass(t *testing.T) {
	s := Settings{Bypass: []string{".corp.example", "10.0.0.0/8", "intranet", "localhost"}}
	if got, want := winhttpBypass(s), "<local>;localhost;127.0.0.1;::1;*.corp.example;intranet"; got != want {
		t.Errorf("winhttpBypass = %q, want %q", got, want)
	}
}

func TestParseNetworkServices(t *testing.T) {
	out := "An asterisk (*) denotes that a network service is disabled.\nUSB 10/100/1000 LAN\nWi-Fi\n*Thunderbolt Bridge\n\n"
	if got, want := parseNetworkServices([]byte(out)), []string{"USB 10/100/1000 LAN", "Wi-Fi", "Thunderbolt Bridge"}; !slices.Equal(got, want) {
		t.Errorf("parseNetworkServices = %q, want %q", got, want)
	}
}

func TestParseAutoProxy(t *testing.T) {
	for out, want := range map[string]autoProxy{
		"URL: (null)\nEnabled: No\n":                               {},
		"URL: http://127.0.0.1:3129/proxy.pac\nEnabled: Yes\n":     {URL: "http://127.0.0.1:3129/proxy.pac", Enabled: true},
		"URL: http://wpad.corp/wpad.dat?x=1:2\nEnabled: No\n":      {URL: "http://wpad.corp/wpad.dat?x=1:2"},
		"  URL:  http://127.0.0.1:3129/proxy.pac \r\nEnabled: Yes": {URL: "http://127.0.0.1:3129/proxy.pac", Enabled: true},
	} {
		got, err := parseAutoProxy([]byte(out))
		if err != nil || got != want {
			t.Errorf("parseAutoProxy(%q) = %+v, %v; want %+v", out, got, err, want)
		}
	}
	if _, err := parseAutoProxy([]byte("** Error: The parameters were not valid.\n")); err == nil {
		t.Error("parseAutoProxy accepted an error message")
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := &stateStore{dir: t.TempDir()}
	st, err := s.load()
	if err != nil || !st.empty() {
		t.Fatalf("load of nothing = %+v, %v", st, err)
	}
	st.Settings = &Settings{PACURL: "http://127.0.0.1:3129/proxy.pac"}
	st.Targets["b"] = savedTarget{Seq: st.nextSeq(), Record: []byte(`{"x":1}`)}
	st.Targets["a"] = savedTarget{Seq: st.nextSeq(), Record: []byte(`{"x":2}`)}
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	if k := got.keys(); !slices.Equal(k, []string{"b", "a"}) || got.Settings.PACURL != st.Settings.PACURL {
		t.Errorf("reloaded %+v, keys %q", got, k)
	}
	got.Targets, got.Settings = nil, nil
	if err := s.save(got); err != nil {
		t.Fatal(err)
	}
	if st, err := s.load(); err != nil || !st.empty() {
		t.Errorf("after saving an empty state: %+v, %v", st, err)
	}
}

func TestUnsupported(t *testing.T) {
	m := New(Options{StateDir: t.TempDir()})
	if m.plat != nil {
		t.Skip("this OS is supported")
	}
	if err := m.Apply(t.Context(), Settings{PACURL: "http://127.0.0.1:3129/proxy.pac"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Apply = %v, want ErrUnsupported", err)
	}
}
