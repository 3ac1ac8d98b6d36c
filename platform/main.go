// Command platform runs Vigie's cloud side: SAML service provider, token
// service, SCIM directory, admin API and revocation feed (the filtering
// gateway and configuration distribution come with their issues). See
// docs/design.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"vigie/platform/config"
	"vigie/platform/demo"
	"vigie/platform/server"
)

const usage = `platform — the Vigie platform (SAML SP, tokens, SCIM, admin API, revocation feed)

Usage:
  platform serve --config FILE              run all platform services
  platform demo [--dir DIR] [--listen ADDR] [--gateway ADDR]
                                            embedded demo: SQLite in DIR (default
                                            .vigie-demo), a demo tenant, a built-in
                                            IdP with two users, the gateway on
                                            127.0.0.1:3128; prints what to do next
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{Dir: *dir, Listen: *listen, GatewayListen: *gateway, Out: stdout, Logger: log})
}
