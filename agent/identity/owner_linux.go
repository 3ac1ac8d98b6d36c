package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"sync"
)

// Linux has two ways to the owner of a socket, both giving the uid that
// created it:
//
//   - sock_diag (sockdiag_linux.go), the primary one: a netlink request for
//     the exact 4-tuple, which the kernel answers from its socket hash table.
//     It costs microseconds whatever the number of sockets.
//   - /proc/net/tcp and tcp6 (this file), the fallback for kernels built
//     without inet_diag or tcp_diag, or where the netlink socket cannot be
//     opened: the kernel prints every TCP socket of the machine as text for
//     each lookup, which takes milliseconds once there are a few thousand.
func init() {
	ownerID = linuxOwner
}

// The kernel's socket tables, in the network namespace of this process (the
// agent and the browsers that connect to it on loopback share one).
const (
	procTCP  = "/proc/net/tcp"
	procTCP6 = "/proc/net/tcp6"
)

// procOwner finds the socket whose local address is client and remote address
// is server, and returns its uid column. It is the fallback of diagOwner
// (see linuxOwner), and gives the same answers.
//
// That uid is the user that created the socket (the process's fsuid at
// socket(2)), which is the user whose browser made the connection. A socket
// passed to another process, or created before a process changed user, keeps
// its creator: the agent attributes the connection to whoever opened it.
//
// An IPv4 client can own an AF_INET socket (listed in tcp) or an AF_INET6 one
// connecting to a mapped address (listed in tcp6, as ::ffff:a.b.c.d), so both
// files are read for it; an IPv6 client only appears in tcp6.
func procOwner(client, server netip.AddrPort) (string, error) {
	files := []string{procTCP6}
	if client.Addr().Is4() {
		files = []string{procTCP, procTCP6}
	}
	for _, name := range files {
		row, found, err := findInProcFile(name, client, server)
		if err != nil {
			return "", err
		}
		if found {
			return strconv.FormatUint(uint64(row.uid), 10), nil
		}
	}
	return "", fmt.Errorf("%w: no open socket from %v to %v in /proc/net/tcp or tcp6 (closed meanwhile, or not from this machine)",
		ErrNotFound, client, server)
}

// procBufSize bounds what one read of a table holds. A row is about 150 bytes
// (tcp) or 180 (tcp6); the kernel hands out whole rows per read.
const procBufSize = 64 << 10

var procBufs = sync.Pool{New: func() any {
	b := make([]byte, procBufSize)
	return &b
}}

// findInProcFile reads one table through a pooled buffer.
func findInProcFile(name string, client, server netip.AddrPort) (procRow, bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) && name == procTCP6 {
		return procRow{}, false, nil // IPv6 disabled in this kernel
	}
	if err != nil {
		return procRow{}, false, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	bp := procBufs.Get().(*[]byte)
	defer procBufs.Put(bp)
	row, found, err := scanProc(f, *bp, client, server)
	if err != nil {
		return procRow{}, false, fmt.Errorf("identity: %s: %w", name, err)
	}
	return row, found, nil
}

// scanProc reads a /proc/net/tcp-format table from r, using buf and nothing
// else, and returns the first row that is the client side of the connection
// and still held by a process (see ownedBy). A line longer than buf, or one
// that does not parse, is an error: the format is the kernel's, and a change
// in it must not pass silently.
func scanProc(r io.Reader, buf []byte, client, server netip.AddrPort) (procRow, bool, error) {
	header := true
	held := 0 // bytes of buf holding an incomplete line
	for {
		n, rerr := r.Read(buf[held:])
		held += n
		data := buf[:held]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if rerr != io.EOF || len(data) == 0 {
					break
				}
				i = len(data) // the last line, without a newline
			}
			line := data[:i]
			data = data[min(i+1, len(data)):]
			if header {
				header = false
				continue
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			row, ok := parseProcLine(line)
			if !ok {
				return procRow{}, false, fmt.Errorf("malformed line %.200q", line)
			}
			if row.ownedBy(client, server) {
				return row, true, nil
			}
		}
		held = copy(buf, data)
		switch {
		case rerr == io.EOF:
			return procRow{}, false, nil
		case rerr != nil:
			return procRow{}, false, rerr
		case held == len(buf):
			return procRow{}, false, fmt.Errorf("line longer than %d bytes", len(buf))
		}
	}
}

// procRow is what matters of one socket, from a row of /proc/net/tcp or tcp6
// or from an inet_diag_msg.
type procRow struct {
	local, remote netip.AddrPort // unmapped
	state         uint8
	uid           uint32
	inode         uint64
}

// TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h), those
// that ownedBy accepts. The others: SYN_SENT 02, SYN_RECV 03, TIME_WAIT 06,
// CLOSE 07, LISTEN 0A, NEW_SYN_RECV 0C.
const (
	tcpEstablished = 0x01
	tcpFinWait1    = 0x04
	tcpFinWait2    = 0x05
	tcpCloseWait   = 0x08
	tcpLastAck     = 0x09
	tcpClosing     = 0x0B
)

// ownedBy reports whether the row is the client side of the connection
// client -> server and its uid is meaningful. The same rule holds for
// sock_diag answers, which give the same state, uid and inode: an exact
// lookup can also return a time-wait or request socket, or a listener on the
// client's port once the client has gone.
//
// States: the client socket of a connection that the agent has accepted is
// ESTABLISHED, or on its way to closing while the browser still holds it
// (FIN_WAIT*, CLOSE_WAIT, CLOSING, LAST_ACK). TIME_WAIT and the SYN_RECV
// request sockets are kernel-only leftovers whose uid column is 0 or the
// listener's, not the client's.
//
// Inode: 0 means no process holds the socket any more (closed, or a
// time-wait socket, which the kernel prints with uid 0 and can show as
// FIN_WAIT2). Its uid would read as root: a guess, so it is not taken.
func (r procRow) ownedBy(client, server netip.AddrPort) bool {
	if r.local != client || r.remote != server || r.inode == 0 {
		return false
	}
	switch r.state {
	case tcpEstablished, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
		return true
	}
	return false
}

// parseProcLine parses one data row of /proc/net/tcp or tcp6:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ...
//	0: 0100007F:1F90 0100007F:C6CA 01 00000000:00000000 00:00000000 00000000  1000        0 731700 ...
//
// without allocating. It returns false if the row does not have that shape.
func parseProcLine(line []byte) (procRow, bool) {
	var f [10][]byte // sl, local, remote, st, queues, timer, retrnsmt, uid, timeout, inode
	rest := line
	for i := range f {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			return procRow{}, false
		}
		f[i], rest = rest[:end], rest[end:]
	}
	var r procRow
	var ok bool
	if r.local, ok = parseProcAddr(f[1]); !ok {
		return procRow{}, false
	}
	if r.remote, ok = parseProcAddr(f[2]); !ok {
		return procRow{}, false
	}
	st, ok := parseHex(f[3], 2)
	if !ok {
		return procRow{}, false
	}
	r.state = uint8(st)
	uid, ok := parseDec(f[7])
	if !ok || uid > 1<<32-1 {
		return procRow{}, false
	}
	r.uid = uint32(uid)
	if r.inode, ok = parseDec(f[9]); !ok {
		return procRow{}, false
	}
	return r, true
}

// parseProcAddr parses ADDR:PORT as /proc/net/tcp* print it. The port is the
// number in hex. The address is the raw in-memory network-order address,
// printed as 32-bit words in host byte order: 127.0.0.1 is 0100007F on a
// little-endian machine, ::1 is 00000000000000000000000001000000. Writing
// each word back in host order gives the address bytes. An IPv4-mapped
// address is returned as IPv4.
func parseProcAddr(b []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	port, ok := parseHex(b[i+1:], 4)
	if !ok {
		return netip.AddrPort{}, false
	}
	hex := b[:i]
	var addr netip.Addr
	switch len(hex) {
	case 8:
		w, ok := parseHex(hex, 8)
		if !ok {
			return netip.AddrPort{}, false
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(w))
		addr = netip.AddrFrom4(a)
	case 32:
		var a [16]byte
		for k := 0; k < 4; k++ {
			w, ok := parseHex(hex[8*k:8*k+8], 8)
			if !ok {
				return netip.AddrPort{}, false
			}
			binary.NativeEndian.PutUint32(a[4*k:], uint32(w))
		}
		addr = netip.AddrFrom16(a).Unmap()
	default:
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseHex parses exactly n hex digits (either case).
func parseHex(b []byte, n int) (uint64, bool) {
	if len(b) != n {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// parseDec parses a decimal number of at most 19 digits (no overflow).
func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
