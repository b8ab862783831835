package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/tagihan/billing/providers/wooshpay"
	"github.com/tagihan/billing/providers/xendit"
	"github.com/uptrace/bun"
)

// newPayments builds the payment service with every provider adapter, at
// the addresses configured. sandboxDue is called when the sandbox has
// callbacks due at once (it enqueues their delivery); settled and
// settledBatch are called when payment requests reach a final state (the
// engine's Settled and SettledBatch).
func newPayments(db *postgres.DB, cfg config, log *slog.Logger, sandboxDue func(ctx context.Context, businessID string),
	settled func(context.Context, bun.IDB, *payments.PaymentRequest, *payments.PaymentToken, time.Time) error,
	settledBatch func(context.Context, bun.IDB, []*payments.PaymentRequest, time.Time) error) *payments.Service {
	return payments.New(payments.Config{
		DB:               db.Bun,
		Logger:           log.With("component", "payments"),
		PublicBaseURL:    cfg.PublicBaseURL,
		SettledFunc:      settled,
		SettledBatchFunc: settledBatch,
		Providers: []providers.Provider{
			sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: sandboxDue}),
			xendit.New(xendit.Config{BaseURL: cfg.XenditBaseURL}),
			wooshpay.New(wooshpay.Config{BaseURL: cfg.WooshPayBaseURL}),
		},
	})
}

// newEngine builds the plan service over the payment and notification
// services; its AUTH links start with PUBLIC_BASE_URL when it is set, and
// the pay links of its notifications with PUBLIC_BASE_URL, else the
// engine's own address (http://HTTP_ADDR).
func newEngine(db *postgres.DB, cfg config, log *slog.Logger, pay *payments.Service, nt *notify.Service) *engine.Service {
	return engine.New(engine.Config{DB: db.Bun, Payments: pay, Notify: nt, PublicBaseURL: cfg.PublicBaseURL,
		DefaultBaseURL: "http://" + cfg.HTTPAddr, Logger: log.With("component", "engine")})
}
