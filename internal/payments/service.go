// Package payments is the engine's payment service (SPEC §4.2, §6): payment
// requests (Pay and Save, and charges of saved tokens), payment tokens and
// payments, the state machine that provider answers, callbacks and the
// reconciler all go through, and each business's provider settings.
//
// The service never holds a database transaction while it waits for a
// provider: it commits a payment request with the provider idempotency key
// first, calls the provider, and records the answer in a second
// transaction. A request cut short between the two is found again (by the
// API request's idempotency key, by the caller's provider key, or by the
// reconciler) and resumed with the same provider key, so the provider
// never makes a second payment.
package payments

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// Config configures a Service.
type Config struct {
	// DB is the engine's database.
	DB *bun.DB
	// Clock is the system clock: it dates callback receipts, judges
	// signature tolerances and the 24 hours of idempotency keys, and is the
	// clock of live businesses. Defaults to billing.SystemClock.
	Clock billing.Clock
	// Providers are the adapters the engine can use, by their Name.
	Providers []providers.Provider
	// PublicBaseURL is the engine's public address (https://billing.example.com),
	// used to register WooshPay webhook endpoints. Empty means WooshPay
	// webhook secrets must be configured by hand.
	PublicBaseURL string
	// Logger receives warnings the service cannot return (a provider that
	// answers inconsistently). Defaults to discarding.
	Logger *slog.Logger
	// SettledFunc, when set, is called in the transaction that brings a
	// payment request to a final state (SUCCEEDED, FAILED, CANCELED or
	// EXPIRED), after the request, its payment and its events are written.
	// tok is the token a successful Pay and Save saved, else nil. An error
	// rolls the whole change back, so what the function writes commits
	// exactly with the payment's outcome. A request can settle twice: a
	// capture reported after a failure moves it from FAILED to SUCCEEDED.
	// The engine sets it to activate a plan when its Pay and Save succeeds.
	// Nil: nothing is called.
	SettledFunc func(ctx context.Context, tx bun.IDB, pr *PaymentRequest, tok *PaymentToken, now time.Time) error
	// SettledBatchFunc, when set, is called instead of SettledFunc for the
	// requests ChargeBatch settles together: in the one transaction that
	// records them, after their requests, payments and events are written,
	// with every request in it PAY, charged with a token, and brought from
	// SENDING to SUCCEEDED or FAILED by the provider's answer. An error
	// rolls the whole batch back. Nil: SettledFunc is called for each.
	SettledBatchFunc func(ctx context.Context, tx bun.IDB, prs []*PaymentRequest, now time.Time) error
	// AfterProviderCallFunc is a test seam: when set, it runs after a
	// provider answered and before the answer is recorded; an error makes
	// the service return at once, as if the process died there. Nil in
	// production.
	AfterProviderCallFunc func(ctx context.Context, paymentRequestID string) error
}

// Service is the payment service.
type Service struct {
	db        *bun.DB
	clock     billing.Clock
	log       *slog.Logger
	providers map[providers.Name]providers.Provider
	cfg       Config
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = billing.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: cfg.DB, clock: cfg.Clock, log: cfg.Logger, providers: map[providers.Name]providers.Provider{}, cfg: cfg}
	for _, p := range cfg.Providers {
		s.providers[p.Name()] = p
	}
	return s
}

// Timings of the reconciler (SPEC §5.3): a request not final is first
// asked about 15 minutes after it was sent, then at doubling intervals up
// to six hours, by the business clock.
const (
	firstCheck = 15 * time.Minute
	maxCheck   = 6 * time.Hour
)

// nextCheck returns when a request asked about checks times should next be
// asked about.
func nextCheck(now time.Time, checks int) time.Time {
	d := firstCheck
	for i := 0; i < checks && d < maxCheck; i++ {
		d *= 2
	}
	return now.Add(min(d, maxCheck))
}

func (s *Service) provider(name string) (providers.Provider, error) {
	p, ok := s.providers[providers.Name(name)]
	if !ok {
		return nil, fmt.Errorf("payments: provider %q is not configured in this engine", name)
	}
	return p, nil
}

// errNoProvider answers a live business that has not chosen a provider.
var errNoProvider = &billing.Error{Code: billing.EFORBIDDEN, Reason: billing.ReasonForbidden,
	Message: "this business has no payment provider configured; choose one with POST /provider_settings"}

// businessNow reads a business and its clock's time.
func (s *Service) businessNow(ctx context.Context, db bun.IDB, businessID string) (*business.Business, time.Time, error) {
	biz, err := business.Get(ctx, db, businessID)
	if err != nil {
		return nil, time.Time{}, err
	}
	return biz, biz.Clock().Now(), nil
}

// truncate is PostgreSQL's precision.
func truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func ptr[T any](v T) *T { return &v }
