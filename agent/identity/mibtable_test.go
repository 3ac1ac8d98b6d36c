package identity

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// mibTable builds a MIB_TCPTABLE_OWNER_PID or MIB_TCP6TABLE_OWNER_PID as
// GetExtendedTcpTable fills it, following the layouts in Microsoft's
// documentation (see mibtable.go), independently of the decoder.
type mibTestRow struct {
	local, remote string
	state, pid    uint32
}

func mibTable(v6 bool, rows ...mibTestRow) []byte {
	size := 24
	if v6 {
		size = 56
	}
	b := make([]byte, 4+len(rows)*size+13) // slack after the rows, as a real buffer has
	le := binary.LittleEndian
	le.PutUint32(b, uint32(len(rows)))
	for i, r := range rows {
		row := b[4+i*size:]
		local, remote := netip.MustParseAddrPort(r.local), netip.MustParseAddrPort(r.remote)
		// A port DWORD: network byte order in the low 16 bits; the upper
		// bits set to garbage, which the decoder must ignore.
		port := func(p uint16) uint32 { return 0xABCD0000 | uint32(p>>8) | uint32(p&0xFF)<<8 }
		if !v6 {
			l4, r4 := local.Addr().As4(), remote.Addr().As4()
			le.PutUint32(row[0:], r.state)
			copy(row[4:8], l4[:])
			le.PutUint32(row[8:], port(local.Port()))
			copy(row[12:16], r4[:])
			le.PutUint32(row[16:], port(remote.Port()))
			le.PutUint32(row[20:], r.pid)
			continue
		}
		l16, r16 := local.Addr().As16(), remote.Addr().As16()
		copy(row[0:16], l16[:])
		le.PutUint32(row[16:], 0) // scope
		le.PutUint32(row[20:], port(local.Port()))
		copy(row[24:40], r16[:])
		le.PutUint32(row[40:], 0)
		le.PutUint32(row[44:], port(remote.Port()))
		le.PutUint32(row[48:], r.state)
		le.PutUint32(row[52:], r.pid)
	}
	return b
}

func TestFindOwnerPID(t *testing.T) {
	ap := netip.MustParseAddrPort
	v4 := mibTable(false,
		mibTestRow{"127.0.0.1:3128", "0.0.0.0:0", 2, 4000},                      // listener (not in CONNECTIONS tables, but harmless)
		mibTestRow{"127.0.0.1:3128", "127.0.0.1:51250", mibTCPStateEstab, 4000}, // the agent's side
		mibTestRow{"127.0.0.1:51249", "127.0.0.1:3128", 11, 0},                  // TIME_WAIT
		mibTestRow{"127.0.0.1:51250", "127.0.0.1:3128", mibTCPStateEstab, 812},
		mibTestRow{"127.0.0.1:51251", "127.0.0.1:3128", mibTCPStateCloseWait, 813},
		mibTestRow{"127.0.0.1:51252", "127.0.0.1:3128", mibTCPStateEstab, 0}, // no process
	)
	v6 := mibTable(true,
		mibTestRow{"[::1]:51250", "[::1]:3128", mibTCPStateEstab, 900},
		mibTestRow{"[::ffff:127.0.0.1]:51260", "[::ffff:127.0.0.1]:3128", mibTCPStateFinWait2, 901},
	)
	tests := []struct {
		name           string
		table          []byte
		v6             bool
		client, server netip.AddrPort
		wantPID        uint32
		wantFound      bool
	}{
		{"ipv4 client", v4, false, ap("127.0.0.1:51250"), ap("127.0.0.1:3128"), 812, true},
		{"closing client", v4, false, ap("127.0.0.1:51251"), ap("127.0.0.1:3128"), 813, true},
		{"time-wait", v4, false, ap("127.0.0.1:51249"), ap("127.0.0.1:3128"), 0, false},
		{"pid 0", v4, false, ap("127.0.0.1:51252"), ap("127.0.0.1:3128"), 0, false},
		{"unknown", v4, false, ap("127.0.0.1:1"), ap("127.0.0.1:3128"), 0, false},
		{"ipv6 client", v6, true, ap("[::1]:51250"), ap("[::1]:3128"), 900, true},
		{"dual-stack client", v6, true, ap("127.0.0.1:51260"), ap("127.0.0.1:3128"), 901, true},
		{"ipv4 query in ipv6 table", v6, true, ap("127.0.0.1:51250"), ap("127.0.0.1:3128"), 0, false},
		{"empty table", mibTable(false), false, ap("127.0.0.1:51250"), ap("127.0.0.1:3128"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, found, err := findOwnerPID(tt.table, tt.v6, tt.client, tt.server)
			if err != nil || pid != tt.wantPID || found != tt.wantFound {
				t.Fatalf("findOwnerPID = %d, %v, %v; want %d, %v", pid, found, err, tt.wantPID, tt.wantFound)
			}
		})
	}
}

func TestFindOwnerPIDMalformed(t *testing.T) {
	client, server := netip.MustParseAddrPort("127.0.0.1:51250"), netip.MustParseAddrPort("127.0.0.1:3128")
	full := mibTable(false, mibTestRow{"127.0.0.1:51250", "127.0.0.1:3128", mibTCPStateEstab, 812})
	for _, b := range [][]byte{nil, {1, 0}, full[:4+23]} {
		if _, _, err := findOwnerPID(b, false, client, server); err == nil {
			t.Errorf("a table of %d bytes was accepted", len(b))
		}
	}
	huge := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}
	if _, _, err := findOwnerPID(huge, true, client, server); err == nil {
		t.Error("a table claiming 2^32-1 rows was accepted")
	}
}
