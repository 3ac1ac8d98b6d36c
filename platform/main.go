// Command platform runs Vigie's cloud side: SAML service provider, token
// service, SCIM directory, admin API, revocation feed, the filtering
// gateway and the agents' configuration distribution. See docs/design.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"vigie/platform/config"
	"vigie/platform/demo"
	"vigie/platform/server"
)

const usage = `platform — the Vigie platform (SAML SP, tokens, SCIM, admin API, gateway, agent distribution)

Usage:
  platform serve --config FILE              run all platform services
  platform demo [--dir DIR] [--listen ADDR] [--gateway ADDR] [--agent BIN]
                                            embedded demo: SQLite in DIR (default
                                            .vigie-demo), a demo tenant, a built-in
                                            IdP with two users, the gateway on
                                            127.0.0.1:3128, DIR/agent.yaml for an
                                            agent; with --agent, runs that agent
                                            binary in --user-mode too; prints what
                                            to do next
  platform gateway --config FILE            a gateway node only (the filtering proxy,
                                            /healthz and /metrics), sharing the store
  platform help                             show this text
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		err = serve(ctx, args[1:], stderr, log, false)
	case "gateway":
		err = serve(ctx, args[1:], stderr, log, true)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr, log)
	default:
		fmt.Fprintf(stderr, "platform: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "platform %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, args []string, stderr io.Writer, log *slog.Logger, gatewayOnly bool) error {
	name := "platform serve"
	if gatewayOnly {
		name = "platform gateway"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--config FILE is required")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: log, GatewayOnly: gatewayOnly})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	gln, err := srv.ListenGateway()
	if err != nil {
		return err
	}
	if gln != nil {
		log.Info("platform: gateway serving", "addr", gln.Addr().String())
	}
	log.Info("platform: serving", "addr", ln.Addr().String(), "base_url", cfg.BaseURL)
	return srv.Serve(ctx, ln, gln)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("platform demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".vigie-demo", "folder for the demo's database, keys and tokens")
	listen := fs.String("listen", "127.0.0.1:8080", "loopback address to serve the API on")
	gateway := fs.String("gateway", "127.0.0.1:3128", "loopback address to serve the filtering proxy on")
	agentBin := fs.String("agent", "", "agent binary to run in --user-mode against the demo (go tool task demo passes it)")
	agentPort := fs.Int("agent-port", 3129, "the agent's port, written to DIR/agent.yaml")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agentBin == "" {
		return demo.Run(ctx, demo.Options{Dir: *dir, Listen: *listen, GatewayListen: *gateway, Out: stdout, Logger: log, AgentPort: *agentPort})
	}
	// The agent runs as a child: it stops with the demo, and the demo
	// stops if it dies, saying why.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	agentDone := make(chan error, 1)
	var started atomic.Bool
	ready := func(d *demo.Demo) {
		cmd := exec.CommandContext(ctx, *agentBin, "run", "--user-mode", "--config", d.AgentConfig)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			cancel(fmt.Errorf("demo: starting the agent: %w", err))
			return
		}
		started.Store(true)
		go func() {
			err := cmd.Wait()
			if ctx.Err() == nil {
				cancel(fmt.Errorf("demo: the agent stopped: %v", err))
			}
			agentDone <- err
		}()
		log.Info("demo: agent started", "pid", cmd.Process.Pid, "proxy", fmt.Sprintf("127.0.0.1:%d", *agentPort), "config", d.AgentConfig)
	}
	err := demo.Run(ctx, demo.Options{Dir: *dir, Listen: *listen, GatewayListen: *gateway, Out: stdout, Logger: log, AgentPort: *agentPort, Ready: ready})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	cancel(nil)
	if started.Load() {
		<-agentDone // WaitDelay bounds it
	}
	return err
}
