package main

import (
	"context"
	"log/slog"

	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/tagihan/billing/providers/wooshpay"
	"github.com/tagihan/billing/providers/xendit"
)

// newPayments builds the payment service with every provider adapter, at
// the addresses configured. sandboxDue is called when the sandbox has
// callbacks due at once (it enqueues their delivery).
func newPayments(db *postgres.DB, cfg config, log *slog.Logger, sandboxDue func(ctx context.Context, businessID string)) *payments.Service {
	return payments.New(payments.Config{
		DB:            db.Bun,
		Logger:        log.With("component", "payments"),
		PublicBaseURL: cfg.PublicBaseURL,
		Providers: []providers.Provider{
			sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: sandboxDue}),
			xendit.New(xendit.Config{BaseURL: cfg.XenditBaseURL}),
			wooshpay.New(wooshpay.Config{BaseURL: cfg.WooshPayBaseURL}),
		},
	})
}
