package health

import (
	"context"

	"golang.org/x/sys/unix"
)

// NetworkChanges returns a channel that receives a value (coalesced) when
// the machine's addresses, links or routes change: a Wi-Fi join, a VPN, a
// cable. It listens on a netlink socket until ctx ends. On error (no
// netlink, as in some sandboxes) it returns nil: callers then rely on
// their timers alone.
func NetworkChanges(ctx context.Context) <-chan struct{} {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil
	}
	// A receive timeout lets the reader notice ctx's end.
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil
	}
	ch := make(chan struct{}, 1)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 16<<10)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil && err != unix.ENOBUFS {
				return
			}
			if n > 0 || err == unix.ENOBUFS { // ENOBUFS: events were lost, so something changed
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}
