package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/tagihan/billing/jobs"
)

// newOutbound builds the webhook and notification services from the
// configuration.
func newOutbound(db *postgres.DB, cfg config, log *slog.Logger) (*webhooks.Service, *notify.Service) {
	wh := webhooks.New(webhooks.Config{
		DB:     db.Bun,
		Guard:  webhooks.Guard{AllowPrivateSandbox: cfg.Outbound.PrivateURLs == "sandbox"},
		Logger: log.With("component", "webhooks"),
	})
	nt := notify.New(notify.Config{
		DB:                 db.Bun,
		SMTP:               cfg.Outbound.SMTP,
		WhatsAppGatewayURL: cfg.Outbound.WhatsAppGatewayURL,
		SMSGatewayURL:      cfg.Outbound.SMSGatewayURL,
		Logger:             log.With("component", "notify"),
	})
	return wh, nt
}

// startWake runs the wake listener (jobs.Wake) until ctx ends, and returns
// a function that waits for it to have stopped.
func startWake(ctx context.Context, db *postgres.DB, client *river.Client[pgx.Tx], deps jobs.Deps, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		jobs.Wake(ctx, db.Pool, client, deps, log.With("component", "wake"), nil)
	}()
	return func() { <-done }
}
