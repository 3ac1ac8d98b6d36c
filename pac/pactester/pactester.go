// Package pactester is the `agent pac` command: it evaluates a PAC file for
// one URL the way the agent will, and prints what the script returned. It is
// compatible with pacparser's pactester for -p, -u, -h and -c, and adds
// --now and --dns so that administrators (and tests) can pin the clock and
// DNS.
package pactester

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"vigie/pac"
)

const usage = `Usage: agent pac -p FILE -u URL [-h HOST] [-c IP[,IP...]] [--now TIME] [--dns NAME=IP[,NAME=IP...]]

Evaluates the PAC file for the URL and prints exactly what FindProxyForURL
returned (exit 0); errors go to stderr (exit 1).

  -p FILE     the PAC file
  -u URL      the URL to look up, for example https://www.example.com/
  -h HOST     the host argument (default: the URL's host)
  -c IPS      the machine's addresses, comma-separated: myIpAddress() is the
              first IPv4 one, myIpAddressEx() all of them (default: this
              machine's)
  --now TIME  the time the date functions see, RFC 3339
              (2026-11-23T09:30:00+01:00) or local (2026-11-23T09:30:00);
              they use the local time zone (TZ) unless given "GMT"
  --dns TABLE replace DNS by this table: NAME=IP pairs, comma-separated; a
              name listed twice has both addresses; other names do not
              resolve and no real DNS is asked
`

// Main runs the command with args (without the program and subcommand
// names) and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if err := run(args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "agent pac: %s\n", indentDetail(err))
		return 1
	}
	return 0
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent pac", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("p", "", "")
	rawURL := fs.String("u", "", "")
	host := fs.String("h", "", "")
	client := fs.String("c", "", "")
	now := fs.String("now", "", "")
	dns := fs.String("dns", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%v\n\n%s", err, usage)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), usage)
	case *file == "":
		return fmt.Errorf("missing -p FILE: the PAC file to evaluate\n\n%s", usage)
	case *rawURL == "":
		return fmt.Errorf("missing -u URL: the URL to look up\n\n%s", usage)
	}

	opts := pac.Options{Name: *file, CacheTTL: -1}
	if *client != "" {
		addrs, err := parseAddrs(*client)
		if err != nil {
			return err
		}
		opts.LocalAddrs = func() ([]netip.Addr, error) { return addrs, nil }
	}
	if *now != "" {
		t, err := parseNow(*now)
		if err != nil {
			return err
		}
		opts.Now = func() time.Time { return t }
	}
	if *dns != "" {
		r, err := pac.ParseStaticResolver(*dns)
		if err != nil {
			return err
		}
		opts.Resolver = r
	}
	opts.Alert = func(msg string) { fmt.Fprintf(stderr, "alert: %s\n", msg) }

	src, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	script, err := pac.New(src, opts)
	if err != nil {
		return err
	}
	res, err := script.Eval(context.Background(), *rawURL, *host)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.Raw)
	if res.RouteErr != nil {
		fmt.Fprintf(stderr, "agent pac: warning: %v\n", res.RouteErr)
	}
	return nil
}

func parseAddrs(list string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, s := range strings.Split(list, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("-c: %q is not an IP address", s)
		}
		addrs = append(addrs, a.Unmap())
	}
	return addrs, nil
}

func parseNow(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--now: %q is not a time like 2026-11-23T09:30:00+01:00 (RFC 3339) or 2026-11-23T09:30:00 (local)", s)
}

// indentDetail adds the offending source line, and a caret under the column,
// to script errors.
func indentDetail(err error) string {
	var line, col int
	var src string
	var se *pac.SyntaxError
	var xe *pac.ScriptError
	switch {
	case errors.As(err, &se):
		line, col, src = se.Line, se.Column, se.Source
	case errors.As(err, &xe):
		line, col, src = xe.Line, xe.Column, xe.Source
	}
	msg := strings.TrimPrefix(err.Error(), "pac: ")
	if src == "" || line == 0 {
		return msg
	}
	prefix := fmt.Sprintf("  %d | ", line)
	var caret strings.Builder
	caret.WriteString(strings.Repeat(" ", len(prefix)))
	for _, r := range src[:min(max(col-1, 0), len(src))] {
		if r == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
	}
	return fmt.Sprintf("%s\n%s%s\n%s^", msg, prefix, src, caret.String())
}
