// Command agent is Vigie's endpoint agent: a local forward proxy that routes
// every request by the tenant's PAC file, DIRECT or through the platform's
// gateway with the OS user's token (see docs/design.md).
//
// So far it has the PAC tester; the agent issue brings the rest.
package main

import (
	"fmt"
	"io"
	"os"

	"vigie/pac/pactester"
)

const usage = `agent — the Vigie endpoint agent

Usage:
  agent pac -p FILE -u URL [...]   evaluate a PAC file (agent pac --help)
  agent run [--config FILE]        run the agent (not built yet)
  agent status | login | logout | install | uninstall   (not built yet)
  agent help                       show this text
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "pac":
		return pactester.Main(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run", "status", "login", "logout", "install", "uninstall":
		fmt.Fprintf(stderr, "agent %s: not built yet; see the open issues\n", args[0])
		return 2
	default:
		fmt.Fprintf(stderr, "agent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
