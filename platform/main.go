// Command platform runs Vigie's cloud side: SAML service provider, token
// service, SCIM directory, filtering gateway, configuration distribution and
// the admin API (see docs/design.md).
//
// Only the usage text exists so far; the identity issue brings `serve` and
// `demo`.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `platform — the Vigie platform (SAML SP, tokens, SCIM, gateway, admin)

Usage:
  platform serve --config FILE   run all platform services (not built yet)
  platform demo [--dir DIR]      embedded demo platform (not built yet)
  platform help                  show this text
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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve", "demo":
		fmt.Fprintf(stderr, "platform %s: not built yet; see the open issues\n", args[0])
		return 2
	default:
		fmt.Fprintf(stderr, "platform: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
