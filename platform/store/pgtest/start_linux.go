package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const dirPrefix = "vigie-pgtest-"

// start initialises a cluster in a new temporary directory and runs the
// server, retrying on another port if the one it picked was taken meanwhile.
func start() (*server, error) {
	initdb, postgres, err := binaries()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if cred != nil {
		// initdb refuses to run as root, so the server runs as the postgres
		// user, which must own its directories.
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = dir
	cmd.Env = env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	for attempt := 1; ; attempt++ {
		s, err := run(postgres, dir, data, cred)
		if err == nil || attempt == 3 {
			return s, err
		}
	}
}

// binaries finds initdb and postgres: Debian's, the newest version, else
// on $PATH.
func binaries() (initdb, postgres string, err error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return vb - va
	})
	if len(found) == 0 {
		p, err := exec.LookPath("initdb")
		if err != nil {
			return "", "", fmt.Errorf("%w: no initdb in /usr/lib/postgresql/*/bin or $PATH (Debian: apt-get install postgresql)", errUnavailable)
		}
		found = []string{p}
	}
	initdb = found[0]
	postgres = filepath.Join(filepath.Dir(initdb), "postgres")
	if _, err := os.Stat(postgres); err != nil {
		return "", "", fmt.Errorf("%w: %s has no postgres beside it", errUnavailable, initdb)
	}
	return initdb, postgres, nil
}

// credential returns the postgres user's when running as root, nil
// otherwise (the server then runs as the current user).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, and there is no postgres user to run the server as (the Debian package creates it): %v", errUnavailable, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres: uid %q, gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func env() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
}

// run starts the server and waits until it accepts connections, which it
// says on its log.
func run(postgres, dir, data string, cred *syscall.Credential) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{port: port, log: new(tail)}
	cmd := exec.Command(postgres, "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		// A throwaway server: durability is not wanted, speed is.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// Tests run in parallel, each store with its own pool.
		"-c", "max_connections=300",
		"-c", "log_destination=stderr", "-c", "logging_collector=off", "-c", "lc_messages=C")
	cmd.Dir = dir
	cmd.Env = env()
	// SIGQUIT on the test binary's exit: PostgreSQL's immediate shutdown,
	// which also stops its backends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}

	started := make(chan error, 1)
	ready := make(chan struct{})
	isReady := ready // ready is set to nil once closed
	exited := make(chan struct{})
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process. Go ends a thread only when a
		// goroutine locked to it returns; this one stays locked, and alive,
		// as long as the server runs.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if ready != nil && strings.Contains(line, "database system is ready to accept connections") {
				close(ready)
				ready = nil
			}
		}
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	select {
	case <-isReady:
	case <-exited:
		return nil, fmt.Errorf("postgres exited before it was ready:\n%s", s.log)
	case <-timeout.C:
		cmd.Process.Signal(syscall.SIGQUIT)
		return nil, fmt.Errorf("postgres was not ready after a minute:\n%s", s.log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.connectAdmin(ctx); err != nil {
		cmd.Process.Signal(syscall.SIGQUIT)
		return nil, err
	}
	return s, nil
}

// freePort returns a port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sweep removes the directories of earlier servers whose test binary has
// exited (their server died with it). A directory without an owner yet is
// being set up by another test binary, unless it is old.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(dir)
			}
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && alive(pid) {
			continue // its test binary still runs
		}
		if alivePostmaster(dir) {
			continue // not stopped yet; a later sweep removes it
		}
		os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// alivePostmaster reports whether the server of dir still runs.
func alivePostmaster(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && pid > 0 && alive(pid)
}
