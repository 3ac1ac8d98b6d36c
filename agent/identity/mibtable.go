package identity

// Decoding of the tables that GetExtendedTcpTable returns, for
// owner_windows.go. It is pure and portable so that its tests run on every
// system; elsewhere it is unused and not linked in.
//
// Layouts (tcpmib.h, learn.microsoft.com):
//
//	MIB_TCPTABLE_OWNER_PID   { DWORD dwNumEntries; MIB_TCPROW_OWNER_PID  table[]; }
//	MIB_TCP6TABLE_OWNER_PID  { DWORD dwNumEntries; MIB_TCP6ROW_OWNER_PID table[]; }
//
//	MIB_TCPROW_OWNER_PID (24 bytes)       MIB_TCP6ROW_OWNER_PID (56 bytes)
//	 0 DWORD dwState                        0 UCHAR ucLocalAddr[16]
//	 4 DWORD dwLocalAddr                   16 DWORD dwLocalScopeId
//	 8 DWORD dwLocalPort                   20 DWORD dwLocalPort
//	12 DWORD dwRemoteAddr                  24 UCHAR ucRemoteAddr[16]
//	16 DWORD dwRemotePort                  40 DWORD dwRemoteScopeId
//	20 DWORD dwOwningPid                   44 DWORD dwRemotePort
//	                                       48 DWORD dwState
//	                                       52 DWORD dwOwningPid
//
// Rows hold only 4-byte members, so they start right after dwNumEntries.
// DWORDs are little-endian (every Windows architecture is). Addresses are in
// network byte order: their bytes are the address. A port is in network byte
// order in the low 16 bits of its DWORD, so its two first bytes in memory,
// high byte first; the upper 16 bits are not to be relied on.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

const (
	mibTCPRowSize  = 24
	mibTCP6RowSize = 56
)

// MIB_TCP_STATE values of a client socket that a process still holds (see
// procRow.ownedBy for the reasoning). TIME_WAIT (11) rows have PID 0.
const (
	mibTCPStateEstab     = 5
	mibTCPStateFinWait1  = 6
	mibTCPStateFinWait2  = 7
	mibTCPStateCloseWait = 8
	mibTCPStateClosing   = 9
	mibTCPStateLastAck   = 10
)

// mibRow is one decoded row.
type mibRow struct {
	local, remote netip.AddrPort // unmapped, no zone
	state         uint32
	pid           uint32
}

// findOwnerPID returns the PID of the row that is the client side of
// client -> server in a MIB_TCPTABLE_OWNER_PID (v6 false) or
// MIB_TCP6TABLE_OWNER_PID (v6 true).
func findOwnerPID(table []byte, v6 bool, client, server netip.AddrPort) (pid uint32, found bool, err error) {
	size := mibTCPRowSize
	if v6 {
		size = mibTCP6RowSize
	}
	if len(table) < 4 {
		return 0, false, fmt.Errorf("tcp table of %d bytes", len(table))
	}
	n := uint64(binary.LittleEndian.Uint32(table))
	rows := table[4:]
	if n*uint64(size) > uint64(len(rows)) {
		return 0, false, fmt.Errorf("tcp table claims %d rows in %d bytes", n, len(table))
	}
	for i := range int(n) {
		row := decodeMIBRow(rows[i*size:(i+1)*size], v6)
		if row.local != client || row.remote != server || row.pid == 0 {
			continue
		}
		switch row.state {
		case mibTCPStateEstab, mibTCPStateFinWait1, mibTCPStateFinWait2,
			mibTCPStateCloseWait, mibTCPStateClosing, mibTCPStateLastAck:
			return row.pid, true, nil
		}
	}
	return 0, false, nil
}

func decodeMIBRow(b []byte, v6 bool) mibRow {
	le := binary.LittleEndian
	if !v6 {
		return mibRow{
			state:  le.Uint32(b[0:]),
			local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), mibPort(b[8:])),
			remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), mibPort(b[16:])),
			pid:    le.Uint32(b[20:]),
		}
	}
	return mibRow{
		local:  netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[0:16])).Unmap(), mibPort(b[20:])),
		remote: netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])).Unmap(), mibPort(b[44:])),
		state:  le.Uint32(b[48:]),
		pid:    le.Uint32(b[52:]),
	}
}

// mibPort reads a port stored in network byte order at the start of a DWORD.
func mibPort(b []byte) uint16 {
	return binary.BigEndian.Uint16(b)
}
