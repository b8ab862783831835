// Command billing is the billing engine: one binary for the API and
// dashboard, the River workers, migrations and administration.
//
//	billing serve [--role all|api|worker] [--no-migrate] [--sandbox-key-file PATH]
//	billing migrate up|down [--all]|status
//	billing business create --name NAME --mode sandbox|live
//	billing version
//
// Configuration comes from the environment (see config.go and
// docs/operations.md); this package is the only one that reads it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tagihan/billing/internal/postgres"
)

// Version is the engine's version, set at build time with
// -ldflags "-X main.Version=…".
var Version = "dev"

const usage = `billing: a billing engine for usage-based subscription plans

Usage:
  billing serve [--role all|api|worker] [--no-migrate] [--sandbox-key-file PATH]
  billing migrate up | down [--all] | status
  billing business create --name NAME --mode sandbox|live
  billing version

Configuration is read from the environment; see docs/operations.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 on
// success, 1 on failure, 2 for usage errors and when no database can be found.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "billing:", err)
		return 2
	}
	switch args[0] {
	case "serve":
		err = serve(ctx, cfg, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, cfg, args[1:], stdout, stderr)
	case "business":
		err = businessCmd(ctx, cfg, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "billing", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "billing: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, postgres.ErrNoPostgres):
		fmt.Fprintln(stderr, "billing:", err)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "billing: %s\n\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintln(stderr, "billing:", err)
		return 1
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
