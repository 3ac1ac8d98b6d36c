package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// requireDiag skips the test when this kernel does not answer sock_diag
// requests, after checking that the probe is right about it.
func requireDiag(t testing.TB) {
	t.Helper()
	if useDiag() {
		return
	}
	ln := listen(t, "127.0.0.1:0")
	c, _ := connect(t, ln, ln.Addr().String())
	client, server := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, found, err := diagFind(unix.AF_INET, client, server); err == nil && found {
		t.Fatal("the probe chose /proc, but sock_diag answers")
	}
	t.Skip("this kernel does not answer sock_diag requests; lookups read /proc")
}

// dialMapped connects an AF_INET6 socket that accepts IPv4 (IPV6_V6ONLY
// off) to the IPv4 address addr, as ::ffff:a.b.c.d: a client socket that
// /proc lists in tcp6, not tcp. net.Dial cannot make one (it opens AF_INET
// sockets for IPv4 addresses).
func dialMapped(t testing.TB, addr netip.AddrPort) net.Conn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets here: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: mapped(addr).Addr().As16()}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		t.Skipf("connecting an IPv6 socket to %v: %v", mapped(addr), err)
	}
	f := os.NewFile(uintptr(fd), "mapped client")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDiagMatchesProc looks the client socket of real loopback connections
// up both ways, which must agree, then closes it and expects ErrNotFound
// from both.
func TestDiagMatchesProc(t *testing.T) {
	requireDiag(t)
	me := currentUser(t)
	tests := []struct {
		name   string
		listen string
		dial   func(t *testing.T, ln net.Listener) (client, accepted net.Conn)
	}{
		{"ipv4", "127.0.0.1:0", dialListener},
		{"ipv6", "[::1]:0", dialListener},
		// The agent's socket is AF_INET6 and sees ::ffff:127.0.0.1; the
		// client's is AF_INET.
		{"dual-stack listener", "[::]:0", func(t *testing.T, ln net.Listener) (net.Conn, net.Conn) {
			return connect(t, ln, net.JoinHostPort("127.0.0.1", port(ln)))
		}},
		// The client's socket is AF_INET6, connected to a mapped address:
		// /proc lists it in tcp6.
		{"dual-stack client", "127.0.0.1:0", func(t *testing.T, ln net.Listener) (net.Conn, net.Conn) {
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			c := dialMapped(t, ln.Addr().(*net.TCPAddr).AddrPort())
			if a := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); !a.Is4In6() {
				t.Fatalf("client socket has address %v, not a mapped one: the case is not exercised", a)
			}
			a, ok := <-accepted
			if !ok {
				t.Fatal("accept failed")
			}
			t.Cleanup(func() { a.Close() })
			return c, a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t, tt.listen)
			dialed, accepted := tt.dial(t, ln)
			key, err := makeKey(endpoints(accepted))
			if err != nil {
				t.Fatal(err)
			}
			viaDiag, err := diagOwner(key.client, key.server)
			if err != nil {
				t.Fatalf("sock_diag: %v", err)
			}
			viaProc, err := procOwner(key.client, key.server)
			if err != nil {
				t.Fatalf("/proc: %v", err)
			}
			if viaDiag != viaProc || viaDiag != me.ID {
				t.Fatalf("owner of %v -> %v: sock_diag %s, /proc %s, want %s", key.client, key.server, viaDiag, viaProc, me.ID)
			}

			accepted.Close()
			dialed.Close()
			if id, err := diagOwner(key.client, key.server); !errors.Is(err, ErrNotFound) {
				t.Fatalf("sock_diag owner of a closed connection = %q, %v; want ErrNotFound", id, err)
			}
			if id, err := procOwner(key.client, key.server); !errors.Is(err, ErrNotFound) {
				t.Fatalf("/proc owner of a closed connection = %q, %v; want ErrNotFound", id, err)
			}
		})
	}
}

func dialListener(t *testing.T, ln net.Listener) (net.Conn, net.Conn) {
	return connect(t, ln, ln.Addr().String())
}

func port(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }

func TestDiagOwnerNotLocal(t *testing.T) {
	requireDiag(t)
	ap := netip.MustParseAddrPort
	for _, c := range [][2]netip.AddrPort{
		{ap("192.0.2.1:40000"), ap("192.0.2.2:3128")},
		{ap("[2001:db8::1]:40000"), ap("[2001:db8::2]:3128")},
	} {
		if id, err := diagOwner(c[0], c[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("diagOwner(%v, %v) = %q, %v; want ErrNotFound", c[0], c[1], id, err)
		}
	}
}

// TestDiagConcurrent shares the socket pool between many goroutines (run it
// with -race).
func TestDiagConcurrent(t *testing.T) {
	requireDiag(t)
	me := currentUser(t)
	ln := listen(t, "127.0.0.1:0")
	var keys []connKey
	for range 8 {
		_, accepted := connect(t, ln, ln.Addr().String())
		key, err := makeKey(endpoints(accepted))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	var wg sync.WaitGroup
	for g := range 4 * cap(diagIdle) {
		wg.Go(func() {
			for i := range 50 {
				k := keys[(g+i)%len(keys)]
				if id, err := diagOwner(k.client, k.server); err != nil || id != me.ID {
					t.Errorf("diagOwner(%v, %v) = %q, %v", k.client, k.server, id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDiagRequest(t *testing.T) {
	ne := binary.NativeEndian
	header := func(seq uint32) []byte {
		b := ne.AppendUint32(nil, 72)
		b = ne.AppendUint16(b, 20) // SOCK_DIAG_BY_FAMILY
		b = ne.AppendUint16(b, 1)  // NLM_F_REQUEST
		b = ne.AppendUint32(b, seq)
		return ne.AppendUint32(b, 0)
	}
	cookie := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allStates := []byte{0xff, 0xff, 0xff, 0xff}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	ap := netip.MustParseAddrPort

	tests := []struct {
		name           string
		family         int
		client, server netip.AddrPort
		want           []byte
	}{
		{"ipv4", unix.AF_INET, ap("127.0.0.1:50892"), ap("127.0.0.2:3128"), cat(
			header(7),
			[]byte{2, 6, 0, 0}, allStates,
			[]byte{0xc6, 0xcc, 0x0c, 0x38}, // ports, big-endian
			[]byte{127, 0, 0, 1}, make([]byte, 12),
			[]byte{127, 0, 0, 2}, make([]byte, 12),
			make([]byte, 4), cookie)},
		{"ipv6", unix.AF_INET6, ap("[2001:db8::1]:1"), ap("[::1]:65535"), cat(
			header(7),
			[]byte{10, 6, 0, 0}, allStates,
			[]byte{0, 1, 0xff, 0xff},
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
			make([]byte, 4), cookie)},
		{"mapped", unix.AF_INET6, ap("127.0.0.1:2"), ap("127.0.0.1:3"), cat(
			header(7),
			[]byte{10, 6, 0, 0}, allStates,
			[]byte{0, 2, 0, 3},
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1},
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1},
			make([]byte, 4), cookie)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diagRequest(7, tt.family, tt.client, tt.server)
			if !bytes.Equal(got[:], tt.want) {
				t.Fatalf("request\n got %x\nwant %x", got, tt.want)
			}
		})
	}
}

// diagMsg builds a kernel answer: a netlink header and an inet_diag_msg.
func diagMsg(seq uint32, family, state uint8, local, remote netip.AddrPort, uid, inode uint32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, unix.NLMSG_HDRLEN+sizeofDiagMsg)
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint16(m[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint32(m[8:], seq)
	ne.PutUint32(m[12:], 4242)
	d := m[unix.NLMSG_HDRLEN:]
	d[0], d[1] = family, state
	binary.BigEndian.PutUint16(d[4:], local.Port())
	binary.BigEndian.PutUint16(d[6:], remote.Port())
	putDiagAddr(d[8:24], int(family), local.Addr())
	putDiagAddr(d[24:40], int(family), remote.Addr())
	ne.PutUint32(d[64:], uid)
	ne.PutUint32(d[68:], inode)
	return m
}

// diagErr builds a kernel NLMSG_ERROR answer whose error field is e (a
// negative error number, or 0 for an acknowledgement), followed as in the
// kernel's by the header of the request.
func diagErr(seq uint32, e int32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofNlMsgerr)
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint16(m[4:], unix.NLMSG_ERROR)
	ne.PutUint32(m[8:], seq)
	ne.PutUint32(m[16:], uint32(e))
	return m
}

func TestParseDiagReply(t *testing.T) {
	ap := netip.MustParseAddrPort
	ne := binary.NativeEndian
	const seq = 99
	v4 := diagMsg(seq, unix.AF_INET, tcpEstablished, ap("127.0.0.1:50892"), ap("127.0.0.1:3128"), 1000, 731700)
	with := func(b []byte, f func(b []byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}

	tests := []struct {
		name    string
		reply   []byte
		want    procRow
		wantErr error // nil: any error; ignored when ok
		ok      bool
	}{
		{name: "ipv4", reply: v4, ok: true,
			want: procRow{local: ap("127.0.0.1:50892"), remote: ap("127.0.0.1:3128"), state: tcpEstablished, uid: 1000, inode: 731700}},
		{name: "ipv6", ok: true,
			reply: diagMsg(seq, unix.AF_INET6, tcpCloseWait, ap("[::1]:40612"), ap("[::1]:50993"), 4294967295, 1),
			want:  procRow{local: ap("[::1]:40612"), remote: ap("[::1]:50993"), state: tcpCloseWait, uid: 4294967295, inode: 1}},
		{name: "mapped", ok: true,
			reply: diagMsg(seq, unix.AF_INET6, tcpEstablished, mapped(ap("127.0.0.1:34123")), mapped(ap("127.0.0.1:35760")), 1002, 728722),
			want:  procRow{local: ap("127.0.0.1:34123"), remote: ap("127.0.0.1:35760"), state: tcpEstablished, uid: 1002, inode: 728722}},
		{name: "attributes after the message", ok: true,
			reply: with(append(bytes.Clone(v4), 5, 0, 8, 0, 0, 0, 0, 0), func(b []byte) { ne.PutUint32(b, uint32(len(b))) }),
			want:  procRow{local: ap("127.0.0.1:50892"), remote: ap("127.0.0.1:3128"), state: tcpEstablished, uid: 1000, inode: 731700}},
		{name: "alignment padding after the message", ok: true,
			reply: append(with(append(bytes.Clone(v4), 5), func(b []byte) { ne.PutUint32(b, uint32(len(b))) }), 0, 0, 0),
			want:  procRow{local: ap("127.0.0.1:50892"), remote: ap("127.0.0.1:3128"), state: tcpEstablished, uid: 1000, inode: 731700}},

		{name: "ENOENT", reply: diagErr(seq, -int32(unix.ENOENT)), wantErr: errDiagNoSocket},
		{name: "EACCES", reply: diagErr(seq, -int32(unix.EACCES)), wantErr: unix.EACCES},
		{name: "EINVAL", reply: diagErr(seq, -int32(unix.EINVAL)), wantErr: unix.EINVAL},
		{name: "acknowledgement", reply: diagErr(seq, 0)},
		{name: "positive error", reply: diagErr(seq, 2)},
		{name: "error out of range", reply: diagErr(seq, -5000)},
		{name: "error too short", reply: with(diagErr(seq, -2)[:18], func(b []byte) { ne.PutUint32(b, 18) })},
		{name: "other request", reply: with(v4, func(b []byte) { ne.PutUint32(b[8:], seq+1) })},
		{name: "NLMSG_DONE", reply: with(v4, func(b []byte) { ne.PutUint16(b[4:], unix.NLMSG_DONE) })},
		{name: "empty", reply: nil},
		{name: "short header", reply: v4[:15]},
		{name: "length past the end", reply: with(v4, func(b []byte) { ne.PutUint32(b, uint32(len(b)+1)) })},
		{name: "length below the header", reply: with(v4, func(b []byte) { ne.PutUint32(b, 15) })},
		{name: "huge length", reply: with(v4, func(b []byte) { ne.PutUint32(b, 0xffffffff) })},
		{name: "truncated inet_diag_msg", reply: with(v4[:80], func(b []byte) { ne.PutUint32(b, 80) })},
		{name: "two messages", reply: append(bytes.Clone(v4), v4...)},
		{name: "unknown family", reply: with(v4, func(b []byte) { b[unix.NLMSG_HDRLEN] = unix.AF_UNIX })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDiagReply(tt.reply, seq)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("parseDiagReply = %+v, %v\nwant             %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseDiagReply = %+v, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseDiagReply: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, errDiagNoSocket) {
				t.Fatalf("parseDiagReply: %v, taken as no socket", err)
			}
		})
	}
}

// The seed corpus of FuzzParseDiagReply, in testdata/fuzz, holds answers
// that a kernel gave (Linux 6.18 on amd64, so little-endian in the fields in
// host order); -update-corpus makes them again from the kernel of the
// machine (TestUpdateDiagCorpus). The fuzz function adds hand-made ones.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus of FuzzParseDiagReply from live kernel answers")

func FuzzParseDiagReply(f *testing.F) {
	ap := netip.MustParseAddrPort
	f.Add(diagMsg(1, unix.AF_INET, tcpEstablished, ap("127.0.0.1:50892"), ap("127.0.0.1:3128"), 1000, 731700))
	f.Add(diagMsg(1, unix.AF_INET6, tcpEstablished, mapped(ap("127.0.0.1:34123")), mapped(ap("127.0.0.1:3128")), 1002, 7))
	f.Add(diagErr(1, -int32(unix.ENOENT)))
	f.Add(diagErr(1, 0))
	f.Fuzz(func(t *testing.T, reply []byte) {
		// Answer the request the reply claims to answer, so that the fuzzer
		// gets past the sequence number.
		var seq uint32
		if len(reply) >= 12 {
			seq = binary.NativeEndian.Uint32(reply[8:])
		}
		row, err := parseDiagReply(reply, seq)
		if err != nil {
			return
		}
		if len(reply) < unix.NLMSG_HDRLEN+sizeofDiagMsg {
			t.Fatalf("parsed %+v from %d bytes", row, len(reply))
		}
		for _, a := range []netip.AddrPort{row.local, row.remote} {
			if !a.IsValid() || a.Addr().Is4In6() || a.Addr().Zone() != "" {
				t.Fatalf("address %v in %+v", a, row)
			}
		}
		if _, err := parseDiagReply(reply, seq+1); err == nil {
			t.Fatal("parsed with the wrong sequence number")
		}
	})
}

func TestUpdateDiagCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("-update-corpus not set")
	}
	requireDiag(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzParseDiagReply")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, reply []byte) {
		t.Helper()
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", reply)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(family int, client, server netip.AddrPort) []byte {
		t.Helper()
		c, err := getDiagConn()
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c.fd)
		req := diagRequest(1, family, client, server)
		if _, err := unix.Write(c.fd, req[:]); err != nil {
			t.Fatal(err)
		}
		n, _, err := unix.Recvfrom(c.fd, c.buf[:], unix.MSG_TRUNC)
		if err != nil || n > len(c.buf) {
			t.Fatal(n, err)
		}
		return bytes.Clone(c.buf[:n])
	}
	ends := func(c net.Conn) (netip.AddrPort, netip.AddrPort) {
		return plain(c.LocalAddr().(*net.TCPAddr).AddrPort()), plain(c.RemoteAddr().(*net.TCPAddr).AddrPort())
	}

	ln4 := listen(t, "127.0.0.1:0")
	c4, _ := connect(t, ln4, ln4.Addr().String())
	cl, sv := ends(c4)
	write("ipv4-established", ask(unix.AF_INET, cl, sv))
	ln6 := listen(t, "[::1]:0")
	c6, _ := connect(t, ln6, ln6.Addr().String())
	cl6, sv6 := ends(c6)
	write("ipv6-established", ask(unix.AF_INET6, cl6, sv6))
	clm, svm := ends(dialMapped(t, ln4.Addr().(*net.TCPAddr).AddrPort()))
	write("mapped-established", ask(unix.AF_INET, clm, svm))
	write("listener", ask(unix.AF_INET, ln4.Addr().(*net.TCPAddr).AddrPort(), netip.MustParseAddrPort("0.0.0.0:0")))
	c4.Close()
	write("closed-fin-wait", ask(unix.AF_INET, cl, sv))
	write("enoent", ask(unix.AF_INET, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")))
	write("einval", ask(99, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")))
}

// BenchmarkLookup compares the two ways of finding the owner of one of
// 2,000 open loopback connections (4,000 sockets, plus whatever else the
// machine has). The second sub-benchmark reports proc/sock_diag, the speed-up.
func BenchmarkLookup(b *testing.B) {
	requireDiag(b)
	const conns = 2000
	ln := listen(b, "127.0.0.1:0")
	accepted := make(chan net.Conn, conns)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	keys := make([]connKey, 0, conns)
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("after %d connections: %v", len(keys), err)
		}
		b.Cleanup(func() { c.Close() })
		a := <-accepted
		b.Cleanup(func() { a.Close() })
		key, err := makeKey(endpoints(a))
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
	rows := procRows(b)

	var perOp = map[string]float64{}
	for _, way := range []struct {
		name   string
		lookup func(client, server netip.AddrPort) (string, error)
	}{
		{"sock_diag", diagOwner},
		{"proc", procOwner},
	} {
		b.Run(way.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%len(keys)]
				i += 997 // a prime: spread over the table
				if _, err := way.lookup(k.client, k.server); err != nil {
					b.Fatal(err)
				}
			}
			perOp[way.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(rows), "rows")
			if d, p := perOp["sock_diag"], perOp["proc"]; d > 0 && p > 0 {
				b.ReportMetric(p/d, "proc/sock_diag")
			}
		})
	}
}
