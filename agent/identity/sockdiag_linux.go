package identity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// linuxOwner is ownerID on Linux. It asks the kernel for the one socket with
// sock_diag (diagOwner), which costs two system calls whatever the number of
// sockets, where reading /proc/net/tcp and tcp6 (procOwner) makes the kernel
// print every TCP socket of the machine as text for this process to parse:
// milliseconds per lookup with a few thousand sockets open, most of the
// agent's CPU when browsers open tunnels. The /proc scan remains the way on
// kernels that do not answer sock_diag requests (see useDiag).
func linuxOwner(client, server netip.AddrPort) (string, error) {
	if useDiag() {
		return diagOwner(client, server)
	}
	return procOwner(client, server)
}

// Which way linuxOwner goes, decided once by useDiag.
const (
	modeUndecided = iota
	modeDiag      // sock_diag answers: diagOwner
	modeProc      // it does not: procOwner
)

var (
	lookupMode atomic.Int32
	probeMu    sync.Mutex // serialises the probes while lookupMode is undecided
)

// useDiag reports whether lookups go through sock_diag. The first call
// probes (probeDiag); the answer is kept once the probe is conclusive, so
// that a shortage of descriptors or memory at that moment does not send the
// agent to the slow path for the rest of its life. Nothing is logged: both
// ways give the same answers.
func useDiag() bool {
	switch lookupMode.Load() {
	case modeDiag:
		return true
	case modeProc:
		return false
	}
	probeMu.Lock()
	defer probeMu.Unlock()
	if m := lookupMode.Load(); m != modeUndecided {
		return m == modeDiag
	}
	ok, conclusive := probeDiag()
	if conclusive {
		mode := int32(modeProc)
		if ok {
			mode = modeDiag
		}
		lookupMode.Store(mode)
	}
	return ok
}

// probeDiag looks up the client socket of a fresh loopback connection
// through sock_diag. A kernel without inet_diag or tcp_diag (both can be
// modules, or left out) answers every request with ENOENT, which is also the
// answer for a socket that does not exist: only a socket known to exist
// tells the two apart. conclusive is false when the probe could not be made
// for a reason that may pass (descriptors or memory exhausted, interrupted).
func probeDiag() (ok, conclusive bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln, err = net.Listen("tcp", "[::1]:0")
	}
	if err != nil {
		return false, false // then nothing works; look again next time
	}
	defer ln.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		return false, false
	}
	defer c.Close()
	// No Accept: the kernel completes the handshake by itself, and the
	// client socket is ESTABLISHED from then on.
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	server := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	family := unix.AF_INET
	if client.Addr().Is6() {
		family = unix.AF_INET6
	}
	_, found, err := diagFind(family, client, server)
	if err != nil {
		return false, !transient(err)
	}
	return found, true
}

// transient reports whether err may not happen again: a shortage or an
// interruption rather than a kernel that lacks sock_diag.
func transient(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.EINTR, unix.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// diagOwner is procOwner through sock_diag: one exact lookup
// (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP) of the socket whose local address
// is client and remote address is server, and the uid the kernel reports
// for it, which is the same as the uid column of /proc/net/tcp (the fsuid of
// the process that created the socket, in this process's user namespace).
//
// An IPv4 client can own an AF_INET socket or an AF_INET6 one connected to a
// mapped address, so, as procOwner reads tcp then tcp6, an IPv4 client that
// is not found as AF_INET is looked up again as AF_INET6 with ::ffff:a.b.c.d.
// (The kernel looks mapped addresses up in the IPv4 table, where it keeps
// both kinds, so the first request normally finds either: the second costs
// only when there is nothing to find.)
//
// The request names no interface (idiag_if 0), and the kernel then does not
// match a socket bound to one (SO_BINDTODEVICE, a VRF), which the /proc scan
// would find: such a client gets ErrNotFound, and is refused rather than
// misattributed. Browsers do not bind their loopback connections.
func diagOwner(client, server netip.AddrPort) (string, error) {
	family := unix.AF_INET6
	if client.Addr().Is4() {
		family = unix.AF_INET
	}
	row, found, err := diagFind(family, client, server)
	if err == nil && !found && client.Addr().Is4() {
		row, found, err = diagFind(unix.AF_INET6, mapped(client), mapped(server))
	}
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w: no open socket from %v to %v (closed meanwhile, or not from this machine)",
			ErrNotFound, client, server)
	}
	return strconv.FormatUint(uint64(row.uid), 10), nil
}

// mapped returns ap with its address as IPv4-mapped IPv6 when it is IPv4.
func mapped(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().Is4() {
		return ap
	}
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

// Layouts and constants of include/uapi/linux/inet_diag.h and
// sock_diag.h, which golang.org/x/sys/unix does not have.
//
//	struct inet_diag_sockid {            // 48 bytes
//		__be16 idiag_sport, idiag_dport;    //  0,  2
//		__be32 idiag_src[4], idiag_dst[4];  //  4, 20
//		__u32  idiag_if;                    // 36
//		__u32  idiag_cookie[2];             // 40
//	};
//	struct inet_diag_req_v2 {            // 56 bytes
//		__u8  sdiag_family, sdiag_protocol, idiag_ext, pad;
//		__u32 idiag_states;                 //  4
//		struct inet_diag_sockid id;         //  8
//	};
//	struct inet_diag_msg {               // 72 bytes
//		__u8  idiag_family, idiag_state, idiag_timer, idiag_retrans;
//		struct inet_diag_sockid id;         //  4
//		__u32 idiag_expires, idiag_rqueue, idiag_wqueue; // 52, 56, 60
//		__u32 idiag_uid;                    // 64
//		__u32 idiag_inode;                  // 68
//	};
//
// The ports and addresses are in network byte order; everything else,
// netlink headers included, in host byte order.
const (
	sizeofDiagReq   = 56
	sizeofDiagMsg   = 72
	diagAllStates   = 0xffffffff // idiag_states: a bit per TCP state
	diagNoCookie    = 0xffffffff // INET_DIAG_NOCOOKIE, in both halves
	diagRequestSize = unix.NLMSG_HDRLEN + sizeofDiagReq
)

// diagTimeout bounds the wait for the kernel's answer. The kernel handles a
// request within the send call, so the answer is queued by the time we read
// it; the timeout is only there so that a lookup can never hang.
const diagTimeout = time.Second

// diagBufSize is the receive buffer. An answer is an inet_diag_msg and a few
// attributes, some 150 bytes; a longer one is an error (MSG_TRUNC).
const diagBufSize = 4096

// diagConn is an open NETLINK_SOCK_DIAG socket with its receive buffer. One
// goroutine uses it at a time.
type diagConn struct {
	fd  int
	buf [diagBufSize]byte
}

// diagIdle holds the sockets between lookups, so that most lookups cost a
// send and a receive and no socket set-up. A socket goes back only after a
// clean exchange: one that timed out or read something unexpected is
// closed, so a late answer never reaches another lookup.
var diagIdle = make(chan *diagConn, 8)

// diagSeq numbers the requests; an answer must carry its request's number.
var diagSeq atomic.Uint32

func getDiagConn() (*diagConn, error) {
	select {
	case c := <-diagIdle:
		return c, nil
	default:
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("identity: opening a sock_diag socket: %w", err)
	}
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("identity: sock_diag socket: %w", err)
	}
	// Connected to the kernel (port 0), the socket takes datagrams from no
	// one else.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("identity: sock_diag socket: %w", err)
	}
	return &diagConn{fd: fd}, nil
}

func putDiagConn(c *diagConn) {
	select {
	case diagIdle <- c:
	default:
		unix.Close(c.fd)
	}
}

// errDiagNoSocket is the kernel's ENOENT: no socket has the 4-tuple.
var errDiagNoSocket = errors.New("no such socket")

// diagFind asks the kernel for the TCP socket of the given family whose
// local address is client and remote address is server, and returns it if
// it is the client side of that connection and held by a process (the same
// rule as for /proc rows: procRow.ownedBy).
func diagFind(family int, client, server netip.AddrPort) (procRow, bool, error) {
	c, err := getDiagConn()
	if err != nil {
		return procRow{}, false, err
	}
	seq := diagSeq.Add(1)
	req := diagRequest(seq, family, client, server)
	row, err := c.exchange(req[:], seq)
	switch {
	case errors.Is(err, errDiagNoSocket):
		putDiagConn(c)
		return procRow{}, false, nil
	case err != nil:
		unix.Close(c.fd)
		return procRow{}, false, fmt.Errorf("identity: sock_diag lookup of %v -> %v: %w", client, server, err)
	}
	putDiagConn(c)
	return row, row.ownedBy(plain(client), plain(server)), nil
}

// exchange sends req and reads and parses the answer.
func (c *diagConn) exchange(req []byte, seq uint32) (procRow, error) {
	deadline := time.Now().Add(diagTimeout)
	for {
		_, err := unix.Write(c.fd, req)
		if err == nil {
			break
		}
		if err != unix.EINTR || time.Now().After(deadline) {
			return procRow{}, err
		}
	}
	for {
		// MSG_TRUNC: n is the length of the datagram, even if longer than
		// the buffer.
		n, from, err := unix.Recvfrom(c.fd, c.buf[:], unix.MSG_TRUNC)
		// A timeout set with SO_RCVTIMEO makes the call fail with EINTR on
		// any signal, which the Go runtime sends often.
		if err == unix.EINTR && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			return procRow{}, err
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			return procRow{}, fmt.Errorf("answer from %+v, not from the kernel", from)
		}
		if n > len(c.buf) {
			return procRow{}, fmt.Errorf("answer of %d bytes, more than %d", n, len(c.buf))
		}
		return parseDiagReply(c.buf[:n], seq)
	}
}

// diagRequest builds an exact-lookup request: a netlink header and an
// inet_diag_req_v2 for the TCP socket of the family with local address
// client and remote address server, in any state, any interface, any
// cookie. The family decides the form of the addresses: IPv4 for AF_INET,
// IPv6 (mapped if need be) for AF_INET6.
func diagRequest(seq uint32, family int, client, server netip.AddrPort) [diagRequestSize]byte {
	var b [diagRequestSize]byte
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], diagRequestSize)              // nlmsg_len
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)     // nlmsg_type
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)           // nlmsg_flags: not a dump
	ne.PutUint32(b[8:], seq)                          // nlmsg_seq
	r := b[unix.NLMSG_HDRLEN:]                        // nlmsg_pid 0: the kernel fills it in
	r[0] = byte(family)                               // sdiag_family
	r[1] = unix.IPPROTO_TCP                           // sdiag_protocol
	ne.PutUint32(r[4:], diagAllStates)                // idiag_states
	id := r[8:]                                       // inet_diag_sockid
	binary.BigEndian.PutUint16(id[0:], client.Port()) // idiag_sport
	binary.BigEndian.PutUint16(id[2:], server.Port()) // idiag_dport
	putDiagAddr(id[4:20], family, client.Addr())
	putDiagAddr(id[20:36], family, server.Addr())
	ne.PutUint32(id[40:], diagNoCookie)
	ne.PutUint32(id[44:], diagNoCookie)
	return b
}

// putDiagAddr writes a in the 16 bytes of an idiag_src or idiag_dst:
// the 4 address bytes first for AF_INET, all 16 for AF_INET6.
func putDiagAddr(b []byte, family int, a netip.Addr) {
	if family == unix.AF_INET {
		a4 := a.Unmap().As4()
		copy(b, a4[:])
		return
	}
	a16 := a.As16()
	copy(b, a16[:])
}

// parseDiagReply parses the kernel's answer to the request numbered seq:
// exactly one netlink message, either SOCK_DIAG_BY_FAMILY with an
// inet_diag_msg, returned as a procRow with addresses unmapped, or
// NLMSG_ERROR. ENOENT (no such socket) is errDiagNoSocket, another error
// number a unix.Errno. Anything else is an error: the bytes come from the
// kernel, but a change of format must not go unnoticed, and nothing in them
// is trusted to be in range.
func parseDiagReply(b []byte, seq uint32) (procRow, error) {
	ne := binary.NativeEndian
	if len(b) < unix.NLMSG_HDRLEN {
		return procRow{}, fmt.Errorf("answer of %d bytes, shorter than a netlink header", len(b))
	}
	length := ne.Uint32(b[0:])
	typ := ne.Uint16(b[4:])
	if length < unix.NLMSG_HDRLEN || uint64(length) > uint64(len(b)) {
		return procRow{}, fmt.Errorf("netlink message of %d bytes in an answer of %d", length, len(b))
	}
	// Whatever follows the message, beyond its alignment, is not an
	// answer to an exact lookup, which gets one message.
	if rest := uint64(len(b)) - uint64(length); rest >= unix.NLMSG_ALIGNTO {
		return procRow{}, fmt.Errorf("%d bytes after the netlink message", rest)
	}
	if got := ne.Uint32(b[8:]); got != seq {
		return procRow{}, fmt.Errorf("answer to request %d, not %d", got, seq)
	}
	payload := b[unix.NLMSG_HDRLEN:length]

	switch typ {
	case unix.NLMSG_ERROR:
		if len(payload) < 4 {
			return procRow{}, fmt.Errorf("netlink error of %d bytes", len(payload))
		}
		switch e := int32(ne.Uint32(payload)); {
		case e == -int32(unix.ENOENT):
			return procRow{}, errDiagNoSocket
		case e < 0 && e > -4096: // the kernel's errno range
			return procRow{}, fmt.Errorf("kernel answered: %w", unix.Errno(-e))
		case e == 0:
			return procRow{}, errors.New("kernel acknowledged the request without answering it")
		default:
			return procRow{}, fmt.Errorf("netlink error %d", e)
		}
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return procRow{}, fmt.Errorf("netlink message of type %d, not an answer", typ)
	}

	if len(payload) < sizeofDiagMsg {
		return procRow{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d", len(payload), sizeofDiagMsg)
	}
	m := payload[:sizeofDiagMsg]
	family := int(m[0])
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return procRow{}, fmt.Errorf("socket of family %d", family)
	}
	id := m[4:52]
	r := procRow{
		local:  netip.AddrPortFrom(diagAddr(id[4:20], family), binary.BigEndian.Uint16(id[0:])),
		remote: netip.AddrPortFrom(diagAddr(id[20:36], family), binary.BigEndian.Uint16(id[2:])),
		state:  m[1],
		uid:    ne.Uint32(m[64:]),
		inode:  uint64(ne.Uint32(m[68:])),
	}
	return r, nil
}

// diagAddr reads an idiag_src or idiag_dst, unmapped.
func diagAddr(b []byte, family int) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}
