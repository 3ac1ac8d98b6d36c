package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"vigie/agent/proxy"
	"vigie/agent/service"
)

type cli struct {
	configPath     string
	userMode       bool
	stdout, stderr io.Writer
}

func (c *cli) config() (*service.Config, string, error) {
	path := c.configPath
	if path == "" {
		path = service.DefaultConfigPath(c.userMode)
		// The local commands work for any user with the service's
		// configuration, or with a user-mode one.
		if _, err := os.Stat(path); err != nil && !c.userMode {
			if alt := service.DefaultConfigPath(true); fileExists(alt) {
				path = alt
			}
		}
	}
	cfg, err := service.LoadConfig(path, c.userMode)
	return cfg, path, err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (c *cli) fail(cmd string, err error) int {
	fmt.Fprintf(c.stderr, "agent %s: %v\n", cmd, err)
	return 1
}

func (c *cli) run(ctx context.Context) int {
	cfg, _, err := c.config()
	if err != nil {
		return c.fail("run", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return c.fail("run", err)
	}
	logFile := service.LogFile(cfg.StateDir)
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(io.MultiWriter(c.stderr, logFile), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := service.Options{UserMode: c.userMode, Logger: log}
	if c.userMode {
		opts.OpenBrowser = func(_, url string) error { return openBrowser(url) }
	}
	if err := service.Run(ctx, cfg, opts); err != nil {
		log.Error("agent: stopped", "err", err)
		return 1
	}
	return 0
}

// local talks to the running agent's own endpoints, never through a proxy.
func (c *cli) local(ctx context.Context, method, path string) (*http.Response, error) {
	cfg, _, err := c.config()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(proxy.LocalHeader, "1")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the agent running? %w", err)
	}
	return resp, nil
}

func (c *cli) statusJSON(ctx context.Context) ([]byte, error) {
	resp, err := c.local(ctx, "GET", "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("the agent answered %s: %s", resp.Status, b)
	}
	return b, err
}

func (c *cli) status(ctx context.Context, asJSON bool) int {
	b, err := c.statusJSON(ctx)
	if err != nil {
		return c.fail("status", err)
	}
	if asJSON {
		c.stdout.Write(b)
		return 0
	}
	var st service.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return c.fail("status", err)
	}
	printStatus(c.stdout, &st)
	return 0
}

func printStatus(w io.Writer, st *service.Status) {
	fmt.Fprintf(w, "tenant      %s (device %s)\nplatform    %s\n", st.Tenant, st.Device, st.PlatformURL)
	if u := st.User; u != nil {
		name := u.Name
		if name == "" {
			name = u.UserID
		}
		fmt.Fprintf(w, "you         %s: %s\n", name, u.State)
		if u.LoggedIn {
			fmt.Fprintf(w, "token       expires %s; sign-in again by %s\n", when(u.AccessExpires), when(u.SessionExpires))
		} else {
			fmt.Fprintf(w, "token       none: run `agent login`\n")
		}
		if u.LastError != "" {
			fmt.Fprintf(w, "last error  %s\n", u.LastError)
		}
	}
	switch p := st.Probe; {
	case p == nil:
		fmt.Fprintf(w, "gateway     none configured yet\n")
	case p.Up:
		fmt.Fprintf(w, "gateway     %s up (continuity: %s)\n", p.Target, st.Continuity)
	default:
		fmt.Fprintf(w, "gateway     %s DOWN since %s: %s (continuity: %s)\n", p.Target, when(p.LastChange), p.LastError, st.Continuity)
	}
	for _, kind := range []string{"config", "pac", "ca", "release"} {
		s, ok := st.Sync[kind]
		if !ok {
			continue
		}
		line := fmt.Sprintf("version %d, last sync %s", s.Version, when(s.LastSuccess))
		if s.LastError != "" {
			line += ", failing: " + s.LastError
		}
		fmt.Fprintf(w, "%-11s %s\n", kind, line)
	}
	k := st.Counters
	fmt.Fprintf(w, "traffic     %d requests, %d tunnels: %d direct, %d gateway, %d other proxy, %d refused, %d failed\n",
		k.Requests, k.Tunnels, k.Direct, k.Gateway, k.OtherProxy, k.Refused, k.Failed)
	if n := len(st.FailOpen); n > 0 {
		p := st.FailOpen[n-1]
		end := "ongoing"
		if !p.End.IsZero() {
			end = when(p.End)
		}
		fmt.Fprintf(w, "fail-open   %d recent periods; last %s → %s: %s\n", n, when(p.Start), end, p.Reason)
	}
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func (c *cli) login(ctx context.Context) int {
	cfg, _, err := c.config()
	if err != nil {
		return c.fail("login", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/login", cfg.Port)
	if err := openBrowser(url); err != nil {
		fmt.Fprintf(c.stdout, "Open %s in your browser to sign in.\n", url)
		return 0
	}
	fmt.Fprintf(c.stdout, "Your browser opens %s; sign in there.\n", url)
	return 0
}

func (c *cli) logout(ctx context.Context) int {
	resp, err := c.local(ctx, "POST", "/logout")
	if err != nil {
		return c.fail("logout", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return c.fail("logout", fmt.Errorf("%s: %s", resp.Status, b))
	}
	fmt.Fprintln(c.stdout, "Signed out.")
	return 0
}

func (c *cli) diag(ctx context.Context, out string) int {
	cfg, path, err := c.config()
	if err != nil {
		return c.fail("diag", err)
	}
	now := time.Now()
	if out == "" {
		out = "vigie-diag-" + now.UTC().Format("20060102T150405Z") + ".tar.gz"
	}
	st, stErr := c.statusJSON(ctx)
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return c.fail("diag", err)
	}
	if err := errors.Join(service.Diag(f, path, cfg, st, stErr, now), f.Close()); err != nil {
		os.Remove(out)
		return c.fail("diag", err)
	}
	abs, _ := filepath.Abs(out)
	fmt.Fprintf(c.stdout, "Wrote %s (tokens and secrets redacted).\n", abs)
	return 0
}
