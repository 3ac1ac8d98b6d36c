package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Lines captured from this kernel (little-endian), some with the uid changed.
const (
	// header of /proc/net/tcp
	procHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     "
	// listener on 127.0.0.1:42371
	procListen = "   6: 0100007F:A583 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 731691 1 0000000037247117 100 0 0 10 0                    "
	// client 127.0.0.1:50892 -> 127.0.0.1:42371, ESTABLISHED, uid 1000
	procClient = " 920: 0100007F:C6CC 0100007F:A583 01 00000000:00000000 00:00000000 00000000  1000        0 731700 2 0000000044fa17a7 20 0 0 10 -1                    "
	// the server side of it, accepted by the listener (uid 0)
	procServer = "1442: 0100007F:A583 0100007F:C6CC 01 00000000:00000000 00:00000000 00000000     0        0 731701 1 00000000b989b6bd 20 4 0 10 -1                    "
	// a closed client 127.0.0.1:50890 -> 127.0.0.1:42371, now a time-wait
	// socket shown as FIN_WAIT2, with uid 0 and inode 0
	procTimeWait = " 919: 0100007F:C6CA 0100007F:A583 05 00000000:00000000 03:0000175C 00000000     0        0 0 3 000000009389c9ee                                      "
	// tcp6: client [::1]:40612 -> [::1]:50993, uid 1001
	proc6Client = "   3: 00000000000000000000000001000000:9EA4 00000000000000000000000001000000:C731 01 00000000:00000000 00:00000000 00000000  1001        0 728719 1 00000000a2ecf3da 20 0 0 10 -1"
	// tcp6: an IPv6 socket of a dual-stack listener, peer 127.0.0.1:35760,
	// as ::ffff:127.0.0.1
	proc6Mapped = "   2: 0000000000000000FFFF00000100007F:854B 0000000000000000FFFF00000100007F:8BB0 01 00000000:00000000 00:00000000 00000000  1002        0 728722 1 000000008fff505a 20 0 0 10 -1"
	// tcp6: dual-stack listener on [::]:34123
	proc6Listen = "   1: 00000000000000000000000000000000:854B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 728720 1 000000003a696b79 100 0 0 10 0"
)

func TestParseProcLine(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		line string
		want procRow
		bad  bool
	}{
		{name: "ipv4 listener", line: procListen,
			want: procRow{local: ap("127.0.0.1:42371"), remote: ap("0.0.0.0:0"), state: 0x0A, uid: 0, inode: 731691}},
		{name: "ipv4 client", line: procClient,
			want: procRow{local: ap("127.0.0.1:50892"), remote: ap("127.0.0.1:42371"), state: tcpEstablished, uid: 1000, inode: 731700}},
		{name: "ipv4 time-wait", line: procTimeWait,
			want: procRow{local: ap("127.0.0.1:50890"), remote: ap("127.0.0.1:42371"), state: tcpFinWait2, uid: 0, inode: 0}},
		{name: "ipv6 client", line: proc6Client,
			want: procRow{local: ap("[::1]:40612"), remote: ap("[::1]:50993"), state: tcpEstablished, uid: 1001, inode: 728719}},
		{name: "ipv4-mapped", line: proc6Mapped,
			want: procRow{local: ap("127.0.0.1:34123"), remote: ap("127.0.0.1:35760"), state: tcpEstablished, uid: 1002, inode: 728722}},
		{name: "ipv6 listener", line: proc6Listen,
			want: procRow{local: ap("[::]:34123"), remote: ap("[::]:0"), state: 0x0A, uid: 0, inode: 728720}},
		{name: "other address", line: "   0: 0A00020F:0016 0100000A:D431 01 00000000:00000000 00:00000000 00000000  1000        0 12 1 0",
			want: procRow{local: ap("15.2.0.10:22"), remote: ap("10.0.0.1:54321"), state: tcpEstablished, uid: 1000, inode: 12}},
		{name: "lower-case hex", line: "   0: 0100007f:c6cc 0100007f:a583 01 0:0 0:0 0 4294967295 0 1",
			want: procRow{local: ap("127.0.0.1:50892"), remote: ap("127.0.0.1:42371"), state: tcpEstablished, uid: 4294967295, inode: 1}},

		{name: "header", line: procHeader, bad: true},
		{name: "empty", line: "", bad: true},
		{name: "too few fields", line: "   0: 0100007F:C6CC 0100007F:A583 01 00000000:00000000 00:00000000 00000000  1000", bad: true},
		{name: "uid too large", line: "   0: 0100007F:C6CC 0100007F:A583 01 0:0 0:0 0 4294967296 0 1", bad: true},
		{name: "uid not a number", line: "   0: 0100007F:C6CC 0100007F:A583 01 0:0 0:0 0 alice 0 1", bad: true},
		{name: "address of 6 digits", line: "   0: 00007F:C6CC 0100007F:A583 01 0:0 0:0 0 1000 0 1", bad: true},
		{name: "address not hex", line: "   0: 0100007G:C6CC 0100007F:A583 01 0:0 0:0 0 1000 0 1", bad: true},
		{name: "port of 5 digits", line: "   0: 0100007F:C6CC0 0100007F:A583 01 0:0 0:0 0 1000 0 1", bad: true},
		{name: "no port", line: "   0: 0100007F 0100007F:A583 01 0:0 0:0 0 1000 0 1", bad: true},
		{name: "state of 3 digits", line: "   0: 0100007F:C6CC 0100007F:A583 001 0:0 0:0 0 1000 0 1", bad: true},
		{name: "negative inode", line: "   0: 0100007F:C6CC 0100007F:A583 01 0:0 0:0 0 1000 0 -1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseProcLine([]byte(tt.line))
			if tt.bad {
				if ok {
					t.Fatalf("parsed %+v from a malformed line", got)
				}
				return
			}
			if !ok || got != tt.want {
				t.Fatalf("parseProcLine = %+v, %v\nwant            %+v", got, ok, tt.want)
			}
		})
	}
}

func TestParseProcLineAllocs(t *testing.T) {
	line := []byte(proc6Mapped)
	if n := testing.AllocsPerRun(100, func() { parseProcLine(line) }); n != 0 {
		t.Errorf("parseProcLine allocates %v times per line", n)
	}
}

func TestScanProc(t *testing.T) {
	ap := netip.MustParseAddrPort
	table := strings.Join([]string{procHeader, procListen, procTimeWait, procServer, procClient}, "\n") + "\n"
	table6 := strings.Join([]string{procHeader, proc6Listen, proc6Mapped, proc6Client}, "\n") // no final newline

	tests := []struct {
		name           string
		table          string
		client, server netip.AddrPort
		wantUID        uint32
		wantFound      bool
	}{
		// The server side of the connection (the agent's socket, uid 0) comes
		// first in the table and has the same addresses reversed: not taken.
		{"client side", table, ap("127.0.0.1:50892"), ap("127.0.0.1:42371"), 1000, true},
		{"time-wait not taken", table, ap("127.0.0.1:50890"), ap("127.0.0.1:42371"), 0, false},
		{"unknown", table, ap("127.0.0.1:1"), ap("127.0.0.1:42371"), 0, false},
		{"ipv6", table6, ap("[::1]:40612"), ap("[::1]:50993"), 1001, true},
		{"mapped", table6, ap("127.0.0.1:34123"), ap("127.0.0.1:35760"), 1002, true},
		{"header only", procHeader + "\n", ap("127.0.0.1:50892"), ap("127.0.0.1:42371"), 0, false},
		{"empty", "", ap("127.0.0.1:50892"), ap("127.0.0.1:42371"), 0, false},
	}
	for _, tt := range tests {
		// Buffers from one line to the whole table exercise lines split
		// across reads.
		for _, size := range []int{256, 300, 1000, procBufSize} {
			t.Run(fmt.Sprintf("%s/buf%d", tt.name, size), func(t *testing.T) {
				row, found, err := scanProc(chunked(tt.table, 97), make([]byte, size), tt.client, tt.server)
				if err != nil {
					t.Fatal(err)
				}
				if found != tt.wantFound || (found && row.uid != tt.wantUID) {
					t.Fatalf("found %v uid %d, want %v uid %d", found, row.uid, tt.wantFound, tt.wantUID)
				}
			})
		}
	}
}

func TestScanProcErrors(t *testing.T) {
	client, server := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	long := procHeader + "\n" + procClient + strings.Repeat(" ", 300) + "\n"
	if _, _, err := scanProc(strings.NewReader(long), make([]byte, 256), client, server); err == nil {
		t.Error("a line longer than the buffer was accepted")
	}
	garbage := procHeader + "\n" + procClient + "\n  7: something else\n"
	if _, _, err := scanProc(strings.NewReader(garbage), make([]byte, 1024), client, server); err == nil {
		t.Error("a malformed line was accepted")
	}
	broken := io.MultiReader(strings.NewReader(procHeader+"\n"), iotestErrReader{})
	if _, _, err := scanProc(broken, make([]byte, 1024), client, server); err == nil {
		t.Error("a read error was not reported")
	}
}

// chunked returns a reader that hands out s in chunks of n bytes.
func chunked(s string, n int) io.Reader {
	return &chunkReader{s: s, n: n}
}

type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := copy(p, r.s[:min(r.n, len(r.s))])
	r.s = r.s[k:]
	return k, nil
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func FuzzParseProcLine(f *testing.F) {
	for _, l := range []string{procHeader, procListen, procClient, procServer, procTimeWait, proc6Client, proc6Mapped, proc6Listen} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		row, ok := parseProcLine(line)
		if !ok {
			return
		}
		if row.local.Addr().Is4In6() || row.remote.Addr().Is4In6() {
			t.Fatalf("mapped address left in %+v", row)
		}
	})
}

func TestOwnerLoopback(t *testing.T) {
	me := currentUser(t)
	tests := []struct {
		name, listen, dial string
	}{
		{"ipv4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "[::1]:0", "::1"},
		// A dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1.
		{"dual-stack", "[::]:0", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t, tt.listen)
			port := ln.Addr().(*net.TCPAddr).Port
			dialed, accepted := connect(t, ln, net.JoinHostPort(tt.dial, strconv.Itoa(port)))
			client, server := endpoints(accepted)
			if tt.name == "dual-stack" && !client.Addr().Is4In6() {
				t.Fatalf("dual-stack listener reports %v, not a mapped address: the case is not exercised", client)
			}

			r := NewResolver(Options{})
			got, err := r.Owner(client, server)
			if err != nil {
				t.Fatal(err)
			}
			if got != me {
				t.Fatalf("Owner(%v, %v) = %+v, want %+v", client, server, got, me)
			}

			// Closed on both sides: no process holds the client socket any
			// more (it is gone, or a time-wait socket whose uid reads 0).
			accepted.Close()
			dialed.Close()
			r.Forget(client, server)
			if u, err := r.Owner(client, server); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Owner of a closed connection = %+v, %v; want ErrNotFound", u, err)
			}
		})
	}
}

func TestOwnerNotLocal(t *testing.T) {
	r := NewResolver(Options{})
	// Documentation addresses: no socket of this machine has them.
	_, err := r.Owner(netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:3128"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Owner of a foreign connection: %v, want ErrNotFound", err)
	}
	_, err = r.Owner(netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:3128"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Owner of a foreign IPv6 connection: %v, want ErrNotFound", err)
	}
}

// BenchmarkOwner measures Owner on a real loopback connection: cold (a cache
// miss, which asks the kernel: sock_diag, or /proc/net/tcp where sock_diag is
// not available) and warm (a hit). The warm run reports cold/warm, and both
// report how many rows the kernel's tables had, which is what the cold cost
// grows with when it reads /proc (BenchmarkLookup compares the two ways).
func BenchmarkOwner(b *testing.B) {
	ln := listen(b, "127.0.0.1:0")
	_, accepted := connect(b, ln, ln.Addr().String())
	client, server := endpoints(accepted)
	r := NewResolver(Options{})
	if _, err := r.Owner(client, server); err != nil {
		b.Fatal(err)
	}
	rows := procRows(b)

	var coldNs float64
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Forget(client, server)
			if _, err := r.Owner(client, server); err != nil {
				b.Fatal(err)
			}
		}
		coldNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(float64(rows), "rows")
	})
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Owner(client, server); err != nil {
				b.Fatal(err)
			}
		}
		warmNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if coldNs > 0 && warmNs > 0 {
			b.ReportMetric(coldNs/warmNs, "cold/warm")
		}
		b.ReportMetric(float64(rows), "rows")
	})
}

// procRows counts the rows of /proc/net/tcp and tcp6.
func procRows(b *testing.B) int {
	n := 0
	for _, name := range []string{procTCP, procTCP6} {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		n += max(bytes.Count(data, []byte("\n"))-1, 0)
	}
	return n
}
