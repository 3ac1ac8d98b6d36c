package identity

// The lsof(8) lookup that owner_darwin.go uses. It is in a portable file
// because lsof prints the same thing on Linux, so its tests run in CI against
// a real lsof; on systems other than macOS it is unused and not linked in.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"time"
)

// lsofTimeout bounds one run of lsof. It usually takes tens of milliseconds;
// more means the system is in trouble, and the connection is better refused
// than left waiting.
const lsofTimeout = 5 * time.Second

// lsofMaxOutput bounds what is read from lsof. Selecting one port keeps the
// output to a few lines per process holding that port.
const lsofMaxOutput = 1 << 20

// lsofOwner returns an ownerID that runs the lsof at path (an absolute path:
// the agent runs as root and must not take lsof from $PATH).
//
// It asks for the TCP sockets whose local or remote port is the client's
// port, in field output: a "p<pid>" line starts each process, "u<uid>" gives
// its user, and each socket is an "n<local>-><remote>" line. The owner is the
// user of the process that holds the socket local=client, remote=server.
//
// lsof sees other users' processes only when run as root, as the agent's
// service is; in user mode it finds the current user's sockets only, and
// others' connections get ErrNotFound, which is right for that mode.
func lsofOwner(path string) func(client, server netip.AddrPort) (string, error) {
	return func(client, server netip.AddrPort) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), lsofTimeout)
		defer cancel()
		var out cappedBuffer
		var stderr cappedBuffer
		cmd := exec.CommandContext(ctx, path, "-n", "-P", "-w", "-iTCP:"+strconv.Itoa(int(client.Port())), "-Fpun")
		cmd.Stdout = &out
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && exit.ExitCode() == 1 && out.Len() == 0 && stderr.Len() == 0:
			// lsof's answer for "nothing matches".
		case err != nil:
			return "", fmt.Errorf("identity: %s: %w: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
		}
		id, found, err := parseLsof(out.Bytes(), client, server)
		if err != nil {
			return "", fmt.Errorf("identity: %s: %w", path, err)
		}
		if !found {
			return "", fmt.Errorf("%w: no process holds a socket from %v to %v (closed meanwhile, or not from this machine)",
				ErrNotFound, client, server)
		}
		return id, nil
	}
}

// parseLsof reads lsof -F output and returns the uid of the processes that
// hold the socket client -> server. A socket held by processes of different
// users (inherited across a change of user) has no single owner: that is an
// error, not a pick.
func parseLsof(out []byte, client, server netip.AddrPort) (id string, found bool, err error) {
	var uid []byte // of the current process set
	var owner []byte
	for len(out) > 0 {
		line := out
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			out = nil
		}
		if len(line) == 0 {
			continue
		}
		switch line[0] {
		case 'p':
			uid = nil
		case 'u':
			uid = line[1:]
		case 'n':
			local, remote, ok := parseLsofName(line[1:])
			if !ok || local != client || remote != server {
				continue
			}
			if _, err := strconv.ParseUint(string(uid), 10, 32); err != nil {
				return "", false, fmt.Errorf("socket %v -> %v listed without a numeric user (%q)", client, server, uid)
			}
			if owner != nil && !bytes.Equal(owner, uid) {
				return "", false, fmt.Errorf("socket %v -> %v is held by processes of users %s and %s", client, server, owner, uid)
			}
			owner = uid
		}
	}
	if owner == nil {
		return "", false, nil
	}
	return string(owner), true, nil
}

// parseLsofName parses lsof's name of a connected socket,
// "127.0.0.1:51234->127.0.0.1:3128" or "[::1]:51234->[::1]:3128". Listening
// sockets ("*:3128", "127.0.0.1:3128") do not parse.
func parseLsofName(b []byte) (local, remote netip.AddrPort, ok bool) {
	l, r, ok := bytes.Cut(b, []byte("->"))
	if !ok {
		return local, remote, false
	}
	// lsof may add " (STATE)" after the name in some modes.
	if i := bytes.IndexByte(r, ' '); i >= 0 {
		r = r[:i]
	}
	local, err := netip.ParseAddrPort(string(l))
	if err != nil {
		return local, remote, false
	}
	remote, err = netip.ParseAddrPort(string(r))
	if err != nil {
		return local, remote, false
	}
	return plain(local), plain(remote), true
}

// cappedBuffer is a bytes.Buffer that refuses to grow past lsofMaxOutput.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > lsofMaxOutput {
		return 0, fmt.Errorf("more than %d bytes of output", lsofMaxOutput)
	}
	return b.Buffer.Write(p)
}
