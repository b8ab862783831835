// Package engine runs recurring plans (SPEC §4.4–§4.6, §5): it stores
// plans, their schedules and cycles; activates a plan when it has a saved
// payment method (at once, or when the customer completes Pay and Save on
// the plan's authorization page); creates each plan's next cycle with its
// scheduled timestamp, amount-fix time and usage window; lets the utility
// change plans, schedules and cycles within the rules of
// docs/billing-rules.md; deactivates plans; and estimates the usage
// charges of each open window.
//
// Every change is made in the caller's transaction (the API request's),
// with the events it emits, and locks the plan row first, then its cycles,
// so that concurrent changes of one plan apply one after the other.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// Config configures a Service.
type Config struct {
	// DB is the engine's database.
	DB *bun.DB
	// Payments is the payment service: it checks the tokens plans name and
	// runs the Pay and Save of the authorization page.
	Payments *payments.Service
	// PublicBaseURL is the engine's public address
	// (https://billing.example.com), from which the AUTH links of plans
	// are made. Empty: the address the API request came to.
	PublicBaseURL string
	// Logger receives what the service cannot return. Defaults to
	// discarding.
	Logger *slog.Logger
	// BatchSize is how many due cycles one step handles in one transaction
	// (see RunDueBusiness). Defaults to DefaultBatchSize (500).
	BatchSize int
	// DueWorkers is how many workers, across all engine processes, may run
	// one business's due work at once (TryRunDueBusiness). Defaults to
	// DefaultDueWorkers.
	DueWorkers int
	// Notify records the customer notifications of cycles, in the
	// transaction of each change (docs/notifications.md). Defaults to a
	// notify service without senders, which records every notification
	// SKIPPED_NO_CHANNEL.
	Notify *notify.Service
	// DefaultBaseURL is the engine's own address (http://HTTP_ADDR), from
	// which the pay-page links in notifications are made when
	// PublicBaseURL is empty. Both empty: notifications carry no link.
	DefaultBaseURL string
}

// Service is the plan service.
type Service struct {
	db *bun.DB
	// oneByOne turns off charging in sets (charge_batch.go,
	// settle_batch.go): every cycle goes through openAction and every
	// settled payment through Settled. Only tests set it, to check that
	// both paths write the same rows.
	oneByOne bool
	payments *payments.Service
	baseURL  string
	log      *slog.Logger
	// batchSize is Config.BatchSize; dueWorkers Config.DueWorkers.
	batchSize  int
	dueWorkers int
	notify     *notify.Service
	// linkBase starts the pay-page links of notifications ("" for none).
	linkBase string
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.DueWorkers <= 0 {
		cfg.DueWorkers = DefaultDueWorkers
	}
	if cfg.Notify == nil {
		cfg.Notify = notify.New(notify.Config{DB: cfg.DB, Logger: cfg.Logger})
	}
	linkBase := cfg.PublicBaseURL
	if linkBase == "" {
		linkBase = cfg.DefaultBaseURL
	}
	return &Service{db: cfg.DB, payments: cfg.Payments, baseURL: cfg.PublicBaseURL, log: cfg.Logger, batchSize: cfg.BatchSize,
		dueWorkers: cfg.DueWorkers,
		notify:     cfg.Notify, linkBase: strings.TrimSuffix(linkBase, "/")}
}

// BaseURL returns the address AUTH links start with: PublicBaseURL, else
// requestBase (the scheme and host an API request came to).
func (s *Service) BaseURL(requestBase string) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	return requestBase
}

// errIneligibleCycle answers a change of a cycle that can no longer change.
func errIneligibleCycle(format string, args ...any) error {
	return billing.Errorf(billing.EFORBIDDEN, billing.ReasonIneligibleCycle, format, args...)
}

func forbidden(format string, args ...any) error {
	return billing.Errorf(billing.EFORBIDDEN, billing.ReasonForbidden, format, args...)
}

// truncate is PostgreSQL's precision.
func truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// scanOne runs q into its model and turns "no row" into DATA_NOT_FOUND for
// what.
func scanOne(ctx context.Context, q *bun.SelectQuery, what string) error {
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.NotFound(what)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}
