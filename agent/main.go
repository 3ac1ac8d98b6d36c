// Command agent is Vigie's endpoint agent: a local forward proxy that routes
// every request by the tenant's PAC file, DIRECT or through the platform's
// gateway with the OS user's token (see docs/design.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"vigie/pac/pactester"
)

const usage = `agent — the Vigie endpoint agent

Usage:
  agent run [--config FILE] [--user-mode]   run the agent (as the OS service,
                                  or for the current user only with --user-mode)
  agent status [--json]           this user's and the agent's state
  agent login                     sign in (opens the browser)
  agent logout                    sign out and revoke this user's session
  agent diag [-o FILE]            write a support bundle (no tokens in it)
  agent pac -p FILE -u URL [...]  evaluate a PAC file (agent pac --help)
  agent help                      show this text

The configuration (platform_url, tenant, enrollment_secret,
distribution_key, port, state_dir) is /etc/vigie/agent.yaml, or
~/.config/vigie/agent.yaml with --user-mode.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "pac":
		return pactester.Main(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run", "status", "login", "logout", "diag":
	case "install", "uninstall":
		fmt.Fprintf(stderr, "agent %s: the packages (.deb, MSI, pkg) install the service; see the installer issue\n", cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "agent: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	fs := flag.NewFlagSet("agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default /etc/vigie/agent.yaml; ~/.config/vigie/agent.yaml with --user-mode)")
	userMode := fs.Bool("user-mode", false, "serve the current OS user only and change nothing on the OS")
	asJSON := fs.Bool("json", false, "status: print the status API's JSON")
	out := fs.String("o", "", "diag: write the bundle here (default vigie-diag-<time>.tar.gz)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	c := &cli{configPath: *configPath, userMode: *userMode, stdout: stdout, stderr: stderr}
	switch cmd {
	case "run":
		return c.run(ctx)
	case "status":
		return c.status(ctx, *asJSON)
	case "login":
		return c.login(ctx)
	case "logout":
		return c.logout(ctx)
	default:
		return c.diag(ctx, *out)
	}
}
