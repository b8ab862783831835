package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/migrations"
)

func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// migrateCmd runs billing migrate up | down [--all] | status.
func migrateCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"migrate: say up, down or status"}
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.Bool("all", false, "with down: roll back every migration, River's too")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{"migrate: " + err.Error()}
	}
	db, closeDB, err := openDatabase(ctx, cfg, cliLogger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		done, err := m.Up(ctx)
		if err != nil {
			return err
		}
		report(stdout, "applied", done)
	case "down":
		done, err := m.Down(ctx, *all)
		if err != nil {
			return err
		}
		report(stdout, "rolled back", done)
	case "status":
		list, err := m.Status(ctx)
		if err != nil {
			return err
		}
		pending := 0
		for _, mig := range list {
			state := "applied"
			if !mig.Applied {
				state = "pending"
				pending++
			}
			fmt.Fprintf(stdout, "%-8s %-7s %s\n", state, mig.Kind, mig.Name)
		}
		fmt.Fprintf(stdout, "%d migrations, %d pending\n", len(list), pending)
	default:
		return usageError{"migrate: say up, down or status"}
	}
	return nil
}

func report(w io.Writer, verb string, done migrations.Applied) {
	if len(done) == 0 {
		fmt.Fprintf(w, "nothing to do: no migration %s\n", verb)
		return
	}
	for _, d := range done {
		fmt.Fprintf(w, "%s %s\n", verb, d)
	}
}

// businessCmd runs billing business create --name … --mode sandbox|live.
// The API key is printed once, alone on the last line, so that scripts can
// capture it with tail -n 1.
func businessCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"business: say create"}
	}
	fs := flag.NewFlagSet("business create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "the business's name")
	modeFlag := fs.String("mode", "", "sandbox or live")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{"business create: " + err.Error()}
	}
	mode, err := business.ParseMode(*modeFlag)
	if err != nil {
		return usageError{"business create: --mode must be sandbox or live"}
	}
	if *name == "" {
		return usageError{"business create: --name is required"}
	}
	db, closeDB, err := openDatabase(ctx, cfg, cliLogger(stderr))
	if err != nil {
		return err
	}
	defer closeDB()
	// A fresh database gets its schema here too, so that this can be the
	// first command ever run.
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return err
	}
	if _, err := m.Up(ctx); err != nil {
		return err
	}
	b, key, err := business.Create(ctx, db.Bun, billing.SystemClock{}, business.CreateParams{Name: *name, Mode: mode})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created %s business %q (%s).\nIts API key is shown once, on the next line; keep it secret:\n%s\n",
		map[business.Mode]string{business.ModeSandbox: "sandbox", business.ModeLive: "live"}[b.Mode], b.Name, b.ID, key)
	return nil
}
