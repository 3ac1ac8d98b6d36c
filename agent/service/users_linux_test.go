package service

import (
	"fmt"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigie/agent/internal/osusers"
	"vigie/platform/admin"
)

// asUser runs the test binary as u for one GET (see runClient), through
// the agent when proxy is set.
func asUser(t *testing.T, env *osusers.Env, u *user.User, proxy, target string) (int, string) {
	t.Helper()
	cmd := env.Command(u, env.Bin)
	cmd.Env = append(os.Environ(), clientEnv+"="+target, "VIGIE_TEST_PROXY="+proxy, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(interface{ Stderr() []byte }); ok {
			stderr = string(ee.Stderr())
		}
		t.Fatalf("GET %s as %s: %v %s", target, u.Username, err, stderr)
	}
	code, body, _ := strings.Cut(string(out), "\n")
	n, _ := strconv.Atoi(code)
	return n, body
}

// asUserLoad runs the test binary as u for n GETs of target-<i>, four at
// a time (see runClients), and returns the status code of each.
func asUserLoad(t *testing.T, env *osusers.Env, u *user.User, proxy, target string, n int) (map[string]int, error) {
	cmd := env.Command(u, env.Bin)
	cmd.Env = append(os.Environ(), clientEnv+"="+target, "VIGIE_TEST_PROXY="+proxy, "VIGIE_TEST_COUNT="+strconv.Itoa(n), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("GETs as %s: %w", u.Username, err)
	}
	codes := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		code, u, _ := strings.Cut(line, " ")
		codes[u], _ = strconv.Atoi(code)
	}
	return codes, nil
}

// TestTwoUsersOneAgent runs one agent for the whole machine and two real OS
// users behind it: each request carries its own user's token, and a user
// who has not signed in gets the sign-in, never the other user's token,
// also while both browse at once.
func TestTwoUsersOneAgent(t *testing.T) {
	env := osusers.Setup(t)
	ua, ub := env.Users[0], env.Users[1]
	o := newOrigin(t)
	p := startPlatform(t, o)
	s := newSigner(t, p)
	s.as(ua.Uid, "alice")
	s.as(ub.Uid, "bob")
	// The browser's last step, the agent's loopback callback, must come
	// from the user's own socket: it runs as that user. Bob's waits for
	// bRelease: he stays signed out while both users browse at once.
	bRelease := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(bRelease) }) }
	t.Cleanup(release)
	s.callback = func(userID, callback string) error {
		if userID == ub.Uid {
			<-bRelease
		}
		for _, u := range env.Users {
			if u.Uid == userID {
				if code, body := asUser(t, env, u, "", callback); code != http.StatusOK {
					return fmt.Errorf("callback as %s: %d %.300s", u.Username, code, body)
				}
				return nil
			}
		}
		return fmt.Errorf("callback for unknown user %s", userID)
	}
	a := startAgent(t, agentConfig(t, p), Options{LeaveOS: true, OpenBrowser: s.open, Dial: o.dial})
	eventually(t, 10*time.Second, "the agent has its configuration", func() bool {
		return a.syncer.Current().PAC != nil && a.syncer.Current().Config.Gateway != ""
	})
	proxyURL := "http://" + a.Addr()
	login := func(u *user.User) {
		t.Helper()
		select {
		case err := <-s.errs:
			if err != nil {
				t.Fatalf("sign-in of %s: %v", u.Username, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the sign-in of %s did not finish", u.Username)
		}
	}
	refused := func(code int) bool { return code == http.StatusFound || code == http.StatusProxyAuthRequired }

	// Alice's OS user signs in; Bob's, not yet, must not ride on her token.
	if code, body := asUser(t, env, ua, proxyURL, "http://www.example.com/a-before"); !refused(code) {
		t.Fatalf("user a before sign-in: %d %.200s", code, body)
	}
	login(ua)
	if code, body := asUser(t, env, ub, proxyURL, "http://www.example.com/b-before"); !refused(code) {
		t.Fatalf("user b, not signed in, while a is: %d %.200s", code, body)
	}
	// Both at once, over keep-alive connections: a's requests all go as
	// a, none of b's gets a's token (the gateway refuses them with a 407,
	// which the agent answers with a 403 saying to sign in: these are not
	// page loads).
	const n = 40
	loads := map[string]map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range env.Users {
		wg.Go(func() {
			codes, err := asUserLoad(t, env, u, proxyURL, "http://load.example.com/"+u.Username, n)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			loads[u.Uid] = codes
			mu.Unlock()
		})
	}
	wg.Wait()
	for uid, codes := range loads {
		for path, code := range codes {
			if want := uid == ua.Uid; len(codes) != n || (code == http.StatusOK) != want || !want && code != http.StatusForbidden {
				t.Fatalf("user %s, at once with the other: %s: %d (%d answers)", uid, path, code, len(codes))
			}
		}
	}
	release()
	login(ub)
	for _, c := range []struct {
		u    *user.User
		path string
	}{{ua, "/a"}, {ub, "/b"}, {ua, "/a2"}} {
		if code, body := asUser(t, env, c.u, proxyURL, "http://www.example.com"+c.path); code != http.StatusOK || !strings.Contains(body, "origin says hello") {
			t.Fatalf("%s as %s: %d %.200s", c.path, c.u.Username, code, body)
		}
	}
	// The test process's own user (root) has no session: refused too.
	if code, _, err := get(through(t, a), "http://www.example.com/root"); err != nil || !refused(code) {
		t.Fatalf("the agent's own user without a session: %d %v", code, err)
	}

	// The gateway logged three refusals without a user (it records no
	// path before authentication) and each user's requests as that user.
	want := map[string]string{"/a": "alice", "/a2": "alice", "/b": "bob"}
	var recs []admin.AccessView
	eventually(t, 10*time.Second, "every request is in the access log", func() bool {
		recs = accessLog(t, p, "www.example.com")
		return len(recs) >= len(want)+3
	})
	refusals := 0
	for _, r := range recs {
		if r.Rule == "no_token" {
			refusals++
			if r.User != "" {
				t.Errorf("a refusal names user %q: %+v", r.User, r)
			}
			continue
		}
		if who, ok := want[r.Path]; !ok || !strings.Contains(r.User, who) || r.Status != 200 {
			t.Errorf("%s was logged as user %q (status %d), want %q", r.Path, r.User, r.Status, who)
		}
	}
	if refusals != 3 || len(recs) != len(want)+3 {
		t.Errorf("%d records, %d refusals: %+v", len(recs), refusals, recs)
	}
	// The load, in the access log: every one of a's requests as alice,
	// every one of b's refused without a user.
	eventually(t, 10*time.Second, "the load is in the access log", func() bool { return len(accessLog(t, p, "load.example.com")) >= 2*n })
	perUser := map[string]int{}
	for _, r := range accessLog(t, p, "load.example.com") {
		switch {
		case r.Rule == "no_token" && r.User == "":
			perUser["refused"]++
		case r.Status == 200 && strings.Contains(r.User, "alice") && strings.HasPrefix(r.Path, "/"+ua.Username+"-"):
			perUser["alice"]++
		default:
			t.Errorf("load record: %+v", r)
		}
	}
	if perUser["alice"] != n || perUser["refused"] != n {
		t.Errorf("load in the access log: %v", perUser)
	}
	if bad := o.leaked(); len(bad) > 0 {
		t.Errorf("an origin saw %q", bad)
	}
	for _, u := range env.Users {
		if st := a.Report(u.Uid, u.Username); st.User.State != "connected" {
			t.Errorf("%s: %+v", u.Username, st.User)
		}
	}
}
