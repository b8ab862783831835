package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/jobs"
	"github.com/tagihan/billing/migrations"
	"github.com/uptrace/bun"
	"golang.org/x/time/rate"
)

// serve runs the engine until ctx is cancelled (SIGINT or SIGTERM), then
// shuts down gracefully: it stops taking requests, lets requests and jobs in
// flight finish (up to SHUTDOWN_TIMEOUT), closes the pool, and stops the
// private cluster if it started it.
func serve(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	role := fs.String("role", "all", "all (API and workers), api, or worker")
	noMigrate := fs.Bool("no-migrate", false, "do not apply pending migrations on start")
	keyFile := fs.String("sandbox-key-file", "", "on an empty database, create the sandbox business \"Demo Utility\" and keep its API key in this file")
	if err := fs.Parse(args); err != nil {
		return usageError{"serve: " + err.Error()}
	}
	if *role != "all" && *role != "api" && *role != "worker" {
		return usageError{"serve: --role must be all, api or worker"}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	setGCPercent(os.Getenv)

	db, closeDB, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB()

	migrator, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return err
	}
	if !*noMigrate {
		applied, err := migrator.Up(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			log.Info("applied migrations", "migrations", applied)
		}
	}
	if *keyFile != "" {
		if err := bootstrapSandbox(ctx, db.Bun, *keyFile, stdout); err != nil {
			return err
		}
	}

	work := *role != "api"
	// The sandbox provider triggers the delivery of its callbacks through
	// River; the client is made below, before any request can trigger it.
	var riverClient *river.Client[pgx.Tx]
	// A payment request that settles activates the plan waiting for it, in
	// its transaction; the engine is made right below, before any request.
	var engineService *engine.Service
	paymentService := newPayments(db, cfg, log, func(ctx context.Context, businessID string) {
		if _, err := riverClient.Insert(ctx, jobs.SandboxCallbacksArgs{BusinessID: businessID}, nil); err != nil {
			log.Warn("enqueue sandbox callbacks; the periodic sweep delivers them", "business_id", businessID, "error", err.Error())
		}
	}, func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
		return engineService.Settled(ctx, tx, pr, tok, now)
	}, func(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
		return engineService.SettledBatch(ctx, tx, prs, now)
	})
	webhookService, notifyService := newOutbound(db, cfg, log)
	engineService = newEngine(db, cfg, log, paymentService, notifyService)
	deps := jobs.Deps{DB: db.Bun, Clock: billing.SystemClock{}, Payments: paymentService, Webhooks: webhookService, Notify: notifyService,
		Engine: engineService}
	riverClient, err = jobs.NewClient(db.Pool, deps,
		jobs.Config{Work: work, MaxWorkers: cfg.Workers, Logger: log.With("component", "river")})
	if err != nil {
		return err
	}
	if work {
		// River's own context must outlive the signal: shutdown stops it below.
		if err := riverClient.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
	}
	// Commits that make outbound work wake this process's workers; the
	// listener stops with the signal.
	waitWake := func() {}
	if work {
		waitWake = startWake(ctx, db, riverClient, deps, log)
	}

	server := api.New(api.Config{
		DB:        db,
		Logger:    log,
		RateLimit: rate.Limit(cfg.RateLimit),
		RateBurst: cfg.RateBurst,
		Ready:     readiness(db, migrator),
		Payments:  paymentService,
		Webhooks:  webhookService,
		Engine:    engineService,
		Notify:    notifyService,
	})
	handler := server.Handler()
	if *role == "worker" {
		handler = server.OpsHandler()
	}
	httpServer := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	fmt.Fprintf(stdout, "billing %s (role %s) listening on http://%s\n", Version, *role, ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "error", err.Error())
	}
	if work {
		if err := riverClient.Stop(shutdownCtx); err != nil {
			log.Warn("jobs did not finish in time; cancelling them (River retries them)", "error", err.Error())
			cancelCtx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			_ = riverClient.StopAndCancel(cancelCtx)
		}
	}
	waitWake()
	log.Info("stopped")
	return nil
}

// readiness reports whether the database answers and has every migration.
func readiness(db *postgres.DB, m *migrations.Migrator) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := db.Pool.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		n, err := m.Pending(ctx)
		if err != nil {
			return fmt.Errorf("migration status: %w", err)
		}
		if n > 0 {
			return billing.Errorf(billing.EINTERNAL, billing.ReasonServer, "%d migrations pending; run billing migrate up", n)
		}
		return nil
	}
}

// demoBusinessName is the sandbox business make run creates.
const demoBusinessName = "Demo Utility"

// bootstrapSandbox creates the sandbox business "Demo Utility" on an empty
// database and keeps its API key in keyFile (mode 0600); on later runs it
// says where the key is. An advisory lock keeps two engines starting at once
// from both creating it.
func bootstrapSandbox(ctx context.Context, db *bun.DB, keyFile string, stdout io.Writer) error {
	var key string
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(0x64656d6f)); err != nil {
			return err
		}
		n, err := business.Count(ctx, tx)
		if err != nil || n > 0 {
			return err
		}
		_, key, err = business.Create(ctx, tx, billing.SystemClock{}, business.CreateParams{Name: demoBusinessName, Mode: business.ModeSandbox})
		return err
	})
	if err != nil {
		return fmt.Errorf("create the demo sandbox business: %w", err)
	}
	if key == "" {
		if _, err := os.Stat(keyFile); err == nil {
			fmt.Fprintf(stdout, "The API key of the sandbox business %q is in %s\n", demoBusinessName, keyFile)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("save the sandbox API key: %w", err)
	}
	fmt.Fprintf(stdout, "Created the sandbox business %q. Its API key, shown once and kept in %s:\n%s\n", demoBusinessName, keyFile, key)
	return nil
}

// servingGCPercent is the garbage collector's target (GOGC) of a serving
// process when GOGC is not set: the heap may grow to three times what is
// live before a collection, instead of twice. The engine's batches
// allocate much short-lived memory (rows read, event documents), and at
// Go's default of 100 collecting it took about a tenth of the engine's
// CPU in the charging benchmark; the price is a larger heap (docs/operations.md).
const servingGCPercent = 200

// setGCPercent sets servingGCPercent unless the environment sets GOGC,
// which the runtime has then applied already.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(servingGCPercent)
	}
}
