package health

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestNetworkChanges adds and removes an address on a dummy link in a
// network namespace of its own, and expects a notification.
func TestNetworkChanges(t *testing.T) {
	if os.Getenv("VIGIE_IN_NETNS") != "" {
		watchInNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	ns := "vigie-netwatch-test"
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// The watcher must run inside the namespace: re-run this test there.
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestNetworkChanges$", "-test.v")
	cmd.Env = append(os.Environ(), "VIGIE_IN_NETNS="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in the namespace: %v\n%s", err, out)
	}
}

func watchInNamespace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := NetworkChanges(ctx)
	if ch == nil {
		t.Fatal("no netlink socket")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link: %v %s", err, out)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification for a link change")
	}
}
