package identity

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"
)

func init() {
	ownerID = windowsOwner
	accountName = windowsAccountName
}

// x/sys/windows does not wrap GetExtendedTcpTable.
var procGetExtendedTcpTable = windows.NewLazySystemDLL("iphlpapi.dll").NewProc("GetExtendedTcpTable")

// tcpTableOwnerPIDConnections is TCP_TABLE_OWNER_PID_CONNECTIONS: the
// MIB_TCP(6)TABLE_OWNER_PID rows of every socket but the listeners.
// TCP_TABLE_OWNER_PID_ALL (5) has the same rows plus the listeners, which can
// never match a connection; leaving them out makes the table smaller.
const tcpTableOwnerPIDConnections = 4

// maxTCPTable bounds the buffer for one table (about 280,000 IPv6 rows).
const maxTCPTable = 16 << 20

// windowsOwner finds the process that owns the client socket, opens it, and
// returns the SID of its token's user.
//
// The PID comes from one read of the table, and the process is opened after:
// if it exited in between and its PID went to another process, that
// process's user would be taken. With the process handle open the PID cannot
// change hands, so the table is read again and must still give that PID for
// the socket. What remains is a socket that outlived the process that opened
// it (a handle inherited by a child) whose PID was reused before the first
// OpenProcess: the owner is then refused or, at worst, taken from the new
// process; closing that gap needs the connection's creation time
// (TCP_TABLE_OWNER_MODULE_*), compared with the process's.
func windowsOwner(client, server netip.AddrPort) (string, error) {
	pid, err := tcpOwnerPID(client, server)
	if err != nil {
		return "", err
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "", fmt.Errorf("identity: opening process %d, owner of %v -> %v: %w", pid, client, server, err)
	}
	defer windows.CloseHandle(h)
	again, err := tcpOwnerPID(client, server)
	if err != nil {
		return "", err
	}
	if again != pid {
		return "", fmt.Errorf("%w: %v -> %v changed owner from process %d to %d while being looked up", ErrNotFound, client, server, pid, again)
	}
	var token windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &token); err != nil {
		return "", fmt.Errorf("identity: opening the token of process %d: %w", pid, err)
	}
	defer token.Close()
	tu, err := token.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("identity: reading the user of process %d: %w", pid, err)
	}
	return tu.User.Sid.String(), nil
}

// tcpOwnerPID looks the client socket up in the IPv4 table (an IPv4 client)
// and the IPv6 table (an IPv6 client, or an IPv4 one from a dual-stack
// socket, listed with mapped addresses).
func tcpOwnerPID(client, server netip.AddrPort) (uint32, error) {
	families := []uint32{windows.AF_INET6}
	if client.Addr().Is4() {
		families = []uint32{windows.AF_INET, windows.AF_INET6}
	}
	for _, af := range families {
		table, err := extendedTCPTable(af)
		if err != nil {
			return 0, err
		}
		pid, found, err := findOwnerPID(table, af == windows.AF_INET6, client, server)
		if err != nil {
			return 0, fmt.Errorf("identity: GetExtendedTcpTable: %w", err)
		}
		if found {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: no open socket from %v to %v in the TCP tables (closed meanwhile, or not from this machine)",
		ErrNotFound, client, server)
}

// extendedTCPTable returns the table of one address family, growing the
// buffer as GetExtendedTcpTable asks (the table can grow between calls).
func extendedTCPTable(af uint32) ([]byte, error) {
	if err := procGetExtendedTcpTable.Find(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	size := uint32(16 << 10)
	for range 8 {
		buf := make([]byte, size)
		r, _, _ := procGetExtendedTcpTable.Call(
			uintptr(unsafe.Pointer(&buf[0])),
			uintptr(unsafe.Pointer(&size)),
			0, // unordered
			uintptr(af),
			tcpTableOwnerPIDConnections,
			0,
		)
		switch err := windows.Errno(r); err {
		case windows.ERROR_SUCCESS:
			return buf, nil
		case windows.ERROR_INSUFFICIENT_BUFFER:
			if size > maxTCPTable {
				return nil, fmt.Errorf("identity: GetExtendedTcpTable wants %d bytes", size)
			}
			size += size / 4 // room for rows added before the next call
		default:
			return nil, fmt.Errorf("identity: GetExtendedTcpTable: %w", err)
		}
	}
	return nil, errors.New("identity: GetExtendedTcpTable: the table kept growing")
}

// windowsAccountName returns DOMAIN\name for a SID string, as os/user does,
// with one LookupAccountSid (os/user also reads the profile and the primary
// group, which can mean a round trip to a domain controller).
func windowsAccountName(id string) (string, error) {
	sid, err := windows.StringToSid(id)
	if err != nil {
		return "", err
	}
	account, domain, _, err := sid.LookupAccount("")
	if errors.Is(err, windows.ERROR_NONE_MAPPED) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if domain == "" {
		return account, nil
	}
	return domain + `\` + account, nil
}
