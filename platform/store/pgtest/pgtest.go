// Package pgtest gives tests a fresh PostgreSQL database on a throwaway
// server: Debian's PostgreSQL binaries (package postgresql) run from a
// temporary directory, started once per test binary, on 127.0.0.1 and a
// free port, with fsync off. It is for tests only: the server trusts every
// local connection.
//
// The server lives as long as the test binary: on Linux the kernel stops it
// when the binary exits (parent-death signal), so a test needs no TestMain.
// Its directory cannot be removed then, so each start removes the
// directories of servers whose test binary has gone.
//
// Without PostgreSQL binaries (or off Linux) tests that ask for a database
// are skipped, unless VIGIE_REQUIRE_POSTGRES=1, as in CI, makes that a
// failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// RequireEnv names the environment variable that turns a missing
// PostgreSQL from a skip into a failure.
const RequireEnv = "VIGIE_REQUIRE_POSTGRES"

// errUnavailable is wrapped by start's error when this machine cannot run
// the server at all, as opposed to failing to: a reason to skip.
var errUnavailable = errors.New("PostgreSQL is unavailable")

// server is the running PostgreSQL.
type server struct {
	port  int
	admin *sql.DB // on database "postgres", to create the test databases
	log   *tail
}

var (
	once     sync.Once
	srv      *server
	startErr error
)

// DSN creates a new, empty database on the throwaway server and returns its
// URL. The database is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { srv, startErr = start() })
	if startErr != nil {
		if errors.Is(startErr, errUnavailable) && os.Getenv(RequireEnv) != "1" {
			t.Skipf("pgtest: %v; skipping (set %s=1 to fail instead)", startErr, RequireEnv)
		}
		t.Fatalf("pgtest: %v", startErr)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v\nserver log:\n%s", err, srv.log)
	}
	t.Cleanup(func() {
		// WITH (FORCE): a pool the test left open must not keep the
		// database alive.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return srv.url(name)
}

func (s *server) url(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// connectAdmin opens the pool DSN uses to create databases.
func (s *server) connectAdmin(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(s.url("postgres"))
	if err != nil {
		return err
	}
	s.admin = stdlib.OpenDB(*cfg)
	s.admin.SetMaxIdleConns(2)
	if err := s.admin.PingContext(ctx); err != nil {
		return fmt.Errorf("connect: %w\nserver log:\n%s", err, s.log)
	}
	return nil
}

// tail keeps the last lines of the server's log, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 50 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s string
	for _, l := range t.lines {
		s += "\t" + l + "\n"
	}
	return s
}
