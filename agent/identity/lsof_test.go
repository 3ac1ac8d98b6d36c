package identity

import (
	"errors"
	"net/netip"
	"os/exec"
	"testing"
)

func TestParseLsof(t *testing.T) {
	ap := netip.MustParseAddrPort
	v4c, v4s := ap("127.0.0.1:51250"), ap("127.0.0.1:3128")
	v6c, v6s := ap("[::1]:51250"), ap("[::1]:3128")
	tests := []struct {
		name           string
		out            string
		client, server netip.AddrPort
		wantID         string
		wantFound      bool
		wantErr        bool
	}{
		{name: "ipv4", client: v4c, server: v4s, wantID: "501", wantFound: true, out: `p26601
u0
n127.0.0.1:3128
n127.0.0.1:3128->127.0.0.1:51250
p812
u501
f23
n127.0.0.1:51250->127.0.0.1:3128
`},
		{name: "ipv6", client: v6c, server: v6s, wantID: "502", wantFound: true, out: `p900
u502
n[::1]:51250->[::1]:3128
`},
		{name: "mapped", client: v4c, server: v4s, wantID: "503", wantFound: true, out: `p901
u503
n[::ffff:127.0.0.1]:51250->[::ffff:127.0.0.1]:3128
`},
		{name: "state after the name", client: v4c, server: v4s, wantID: "504", wantFound: true, out: `p902
u504
n127.0.0.1:51250->127.0.0.1:3128 (ESTABLISHED)
`},
		{name: "no final newline", client: v4c, server: v4s, wantID: "505", wantFound: true,
			out: "p903\nu505\nn127.0.0.1:51250->127.0.0.1:3128"},
		{name: "shared by two processes of one user", client: v4c, server: v4s, wantID: "501", wantFound: true, out: `p812
u501
n127.0.0.1:51250->127.0.0.1:3128
p813
u501
n127.0.0.1:51250->127.0.0.1:3128
`},
		{name: "server side only", client: v4c, server: v4s, out: `p1
u0
n127.0.0.1:3128->127.0.0.1:51250
`},
		{name: "other port", client: v4c, server: v4s, out: `p812
u501
n127.0.0.1:51251->127.0.0.1:3128
`},
		{name: "empty", client: v4c, server: v4s, out: ""},

		{name: "held by two users", client: v4c, server: v4s, wantErr: true, out: `p812
u501
n127.0.0.1:51250->127.0.0.1:3128
p813
u502
n127.0.0.1:51250->127.0.0.1:3128
`},
		{name: "no user field", client: v4c, server: v4s, wantErr: true, out: `p812
n127.0.0.1:51250->127.0.0.1:3128
`},
		{name: "user of the previous process", client: v4c, server: v4s, wantErr: true, out: `p811
u501
p812
n127.0.0.1:51250->127.0.0.1:3128
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, found, err := parseLsof([]byte(tt.out), tt.client, tt.server)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseLsof = %q, %v; want an error", id, found)
				}
				return
			}
			if err != nil || id != tt.wantID || found != tt.wantFound {
				t.Fatalf("parseLsof = %q, %v, %v; want %q, %v", id, found, err, tt.wantID, tt.wantFound)
			}
		})
	}
}

func FuzzParseLsof(f *testing.F) {
	f.Add([]byte("p812\nu501\nn127.0.0.1:51250->127.0.0.1:3128\n"))
	f.Add([]byte("p900\nu502\nn[::1]:51250->[::1]:3128 (ESTABLISHED)\n"))
	client, server := netip.MustParseAddrPort("127.0.0.1:51250"), netip.MustParseAddrPort("127.0.0.1:3128")
	f.Fuzz(func(t *testing.T, out []byte) {
		id, found, err := parseLsof(out, client, server)
		if found && (err != nil || id == "") {
			t.Fatalf("found with id %q, error %v", id, err)
		}
	})
}

// TestLsofOwner runs the macOS lookup against this system's lsof, which
// prints the same format.
func TestLsofOwner(t *testing.T) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		t.Skip("no lsof here")
	}
	me := currentUser(t)
	ln := listen(t, "127.0.0.1:0")
	_, accepted := connect(t, ln, ln.Addr().String())
	client, server := endpoints(accepted)
	owner := lsofOwner(lsof)

	id, err := owner(client, server)
	if err != nil || id != me.ID {
		t.Fatalf("lsof owner of %v = %q, %v; want %q", client, id, err, me.ID)
	}
	// A connection that does not exist has no owner.
	_, err = owner(client, netip.AddrPortFrom(server.Addr(), server.Port()+1))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("lsof owner of a connection that does not exist: %v, want ErrNotFound", err)
	}
	if _, err := lsofOwner("/nonexistent/lsof")(client, server); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("missing lsof: %v, want an error other than ErrNotFound", err)
	}
}
