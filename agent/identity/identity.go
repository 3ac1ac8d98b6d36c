// Package identity tells which OS user owns a local TCP connection.
//
// The agent is a forward proxy on loopback that every OS user of the
// workstation goes through (DESIGN.md, flow 8). For each connection it
// accepts, it asks [Resolver.Owner] for the account behind the client socket,
// so that it attaches that user's token, and nobody else's, to that user's
// requests.
//
// It is for connections made from this machine to a listener on this
// machine. It is not an authentication of remote peers (a connection from
// another host has no local owner and gets [ErrNotFound]), not a process
// finder, and not a user directory. It never guesses: when the socket cannot
// be found or its owner cannot be established, Owner returns an error and the
// caller must refuse the connection rather than pick a user.
//
// The agent's use, per accepted connection:
//
//	client := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
//	server := conn.LocalAddr().(*net.TCPAddr).AddrPort()
//	u, err := resolver.Owner(client, server)
//	if err != nil {
//		conn.Close() // unknown owner: serve nobody's identity
//		return
//	}
//	defer conn.Close()
//	defer resolver.Forget(client, server) // runs before Close
//
// How each OS does it (owner_<os>.go):
//   - Linux: the uid of the client socket, which is the user that created it,
//     from an exact sock_diag (NETLINK_SOCK_DIAG) lookup of its 4-tuple:
//     microseconds, whatever the number of sockets. Where the kernel does not
//     answer sock_diag (built without inet_diag, or the netlink socket is
//     refused), the uid column of its row in /proc/net/tcp or tcp6, which
//     costs milliseconds once a few thousand sockets are open, as the kernel
//     prints them all for every read. The choice is made once, by looking up
//     a connection of its own.
//   - Windows: GetExtendedTcpTable gives the PID that owns the client socket;
//     that process's token gives the user's SID.
//   - macOS: lsof(8), the simplest correct way without cgo; it costs a process
//     start per lookup, which the cache amortises.
//   - Other systems: Owner returns an error wrapping [errors.ErrUnsupported].
package identity

import (
	"errors"
	"fmt"
	"net/netip"
	"os/user"
	"runtime"
	"sync"
	"time"
)

// User is an OS account.
type User struct {
	// ID identifies the account: the uid in decimal on Unix, the SID string
	// (S-1-5-21-…) on Windows. It is what to key per-user state on.
	ID string
	// Name is the account name ("alice"; "DOMAIN\alice" on Windows), for
	// people to read. Empty when the system does not know it.
	Name string
}

// ErrNotFound means that no local socket matches the connection: it closed in
// the meantime, or it does not come from this machine. Owner wraps it with
// the detail.
var ErrNotFound = errors.New("identity: socket not found")

// What each OS provides (owner_<os>.go sets them in init). A nil ownerID means
// this OS has no implementation.
var (
	// ownerID returns the ID of the user that owns the TCP socket whose local
	// address is client and remote address is server. Both are unmapped and
	// without zone. It returns an error wrapping ErrNotFound when there is no
	// such socket.
	ownerID func(client, server netip.AddrPort) (string, error)

	// accountName returns the account name of a user ID: "" without error
	// when the system positively does not know the ID, an error when it could
	// not tell.
	accountName = unixAccountName
)

// unixAccountName looks a uid up in the system's user database (NSS through
// libc where the build has it, /etc/passwd otherwise).
func unixAccountName(id string) (string, error) {
	u, err := user.LookupId(id)
	var unknown user.UnknownUserIdError
	if errors.As(err, &unknown) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

// Options configure a Resolver. The zero value is ready to use.
type Options struct {
	// Now is the clock for the caches. Default time.Now.
	Now func() time.Time

	// CacheTTL is how long the owner of one (client, server) pair is reused
	// without looking at the OS tables again. Default 2s; a negative value
	// turns the cache off.
	//
	// Ports are reused, so a cached answer is only right while the
	// connection it was found for is open. That holds while the caller keeps
	// the accepted connection: the kernel lets no other socket take the same
	// (client, server) pair while the server side of it exists. It can be
	// reused once the caller has closed its side: by the same client reusing
	// its port, or by another local user who binds that port on purpose.
	// Hence: call [Resolver.Forget] when closing a connection, and keep the
	// TTL short, so that a missed Forget exposes a window of seconds at most.
	// Failures are never cached.
	CacheTTL time.Duration
}

// DefaultCacheTTL is the CacheTTL used when Options leave it zero.
const DefaultCacheTTL = 2 * time.Second

// nameTTL is how long an account name is reused. Names change rarely (a
// rename); the ID, which is what matters for security, is never cached here.
const nameTTL = 5 * time.Minute

// sweepMin is the cache size under which expired entries are left in place.
const sweepMin = 64

// Resolver finds the owners of local TCP connections, with a short cache. It
// is safe for concurrent use.
type Resolver struct {
	now func() time.Time
	ttl time.Duration

	// lookup and name are ownerID and accountName; tests replace them.
	lookup func(client, server netip.AddrPort) (string, error)
	name   func(id string) (string, error)

	mu      sync.Mutex
	conns   map[connKey]connEntry
	names   map[string]nameEntry
	sweepAt int    // sweep expired conns when len(conns) reaches this
	forgets uint64 // number of Forget calls so far
}

type connKey struct{ client, server netip.AddrPort }

// connEntry is a cached owner or, when forgotten is not zero, the mark that
// Forget leaves: a lookup that started before that Forget, and so may have
// seen the closed connection, must not store its answer.
type connEntry struct {
	user      User
	expires   time.Time
	forgotten uint64 // the value of forgets after that Forget
}

type nameEntry struct {
	name    string
	expires time.Time
}

// NewResolver returns a Resolver for this OS.
func NewResolver(opts Options) *Resolver {
	r := &Resolver{
		now:     opts.Now,
		ttl:     opts.CacheTTL,
		lookup:  ownerID,
		name:    accountName,
		conns:   make(map[connKey]connEntry),
		names:   make(map[string]nameEntry),
		sweepAt: sweepMin,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.ttl == 0 {
		r.ttl = DefaultCacheTTL
	}
	return r
}

// Owner returns the user that owns the client socket of a local TCP
// connection. client is the connection's remote address as the listener sees
// it (the browser's socket) and server the listener's local address, the
// AddrPort of conn.RemoteAddr() and conn.LocalAddr() of an accepted
// connection. IPv4-mapped IPv6 addresses, as a dual-stack listener reports them, are fine.
//
// The error wraps ErrNotFound when there is no such socket (closed, or not
// from this machine). The OS is asked a second time before giving up, as a
// socket being set up or moved between the kernel's tables can be missed by
// one lookup.
func (r *Resolver) Owner(client, server netip.AddrPort) (User, error) {
	key, err := makeKey(client, server)
	if err != nil {
		return User{}, err
	}
	now := r.now()
	r.mu.Lock()
	e, ok := r.conns[key]
	started := r.forgets
	r.mu.Unlock()
	if ok && e.forgotten == 0 && now.Before(e.expires) {
		return e.user, nil
	}
	if r.lookup == nil {
		return User{}, fmt.Errorf("identity: finding the owner of a connection on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	}
	id, err := r.lookup(key.client, key.server)
	if errors.Is(err, ErrNotFound) {
		id, err = r.lookup(key.client, key.server)
	}
	if err != nil {
		return User{}, err
	}
	u := User{ID: id, Name: r.nameOf(id, now)}
	if r.ttl > 0 {
		r.mu.Lock()
		if e, ok := r.conns[key]; !ok || e.forgotten <= started {
			r.store(key, connEntry{user: u, expires: now.Add(r.ttl)}, now)
		}
		r.mu.Unlock()
	}
	return u, nil
}

// Forget drops what the cache holds for a connection. Call it when closing
// the connection, so that a later connection that reuses the same addresses
// and ports is looked up afresh. An Owner call for that connection still
// running when Forget is called returns its answer but does not cache it.
func (r *Resolver) Forget(client, server netip.AddrPort) {
	key, err := makeKey(client, server)
	if err != nil || r.ttl <= 0 {
		return
	}
	now := r.now()
	r.mu.Lock()
	r.forgets++
	r.store(key, connEntry{expires: now.Add(r.ttl), forgotten: r.forgets}, now)
	r.mu.Unlock()
}

// store adds an entry; r.mu is held. Once the map has grown past sweepAt it
// drops the expired entries, so that its size follows the connection rate
// times the TTL rather than the agent's uptime.
func (r *Resolver) store(key connKey, e connEntry, now time.Time) {
	if len(r.conns) >= r.sweepAt {
		for k, old := range r.conns {
			if !now.Before(old.expires) {
				delete(r.conns, k)
			}
		}
		r.sweepAt = max(2*len(r.conns), sweepMin)
	}
	r.conns[key] = e
}

// nameOf returns the account name of id, cached for nameTTL. A failed lookup
// gives "" (User.Name is for people; the ID is what counts) and is not
// cached; an ID the system does not know is cached as "".
func (r *Resolver) nameOf(id string, now time.Time) string {
	r.mu.Lock()
	e, ok := r.names[id]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.name
	}
	name, err := r.name(id)
	if err != nil {
		return ""
	}
	r.mu.Lock()
	if len(r.names) >= 4096 { // a bound, not a working size: IDs are few
		clear(r.names)
	}
	r.names[id] = nameEntry{name: name, expires: now.Add(nameTTL)}
	r.mu.Unlock()
	return name
}

// makeKey validates a connection's addresses and puts them in the form the
// cache and the OS lookups use: IPv4-mapped addresses as IPv4, no zone.
func makeKey(client, server netip.AddrPort) (connKey, error) {
	if !client.IsValid() || !server.IsValid() || client.Port() == 0 || server.Port() == 0 {
		return connKey{}, fmt.Errorf("identity: invalid connection %v -> %v", client, server)
	}
	return connKey{client: plain(client), server: plain(server)}, nil
}

// plain unmaps an IPv4-mapped IPv6 address and drops the zone.
func plain(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
