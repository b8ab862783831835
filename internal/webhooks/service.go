// Package webhooks delivers the engine's events (SPEC §4.9) to the
// endpoints each business registers: the endpoints themselves, the
// business's callback token, the dispatch of stored events into
// deliveries, and the signed HTTP delivery with its retries and log.
//
// The events table is the truth. A trigger queues every inserted event in
// webhook_event_queue in the inserting transaction; Dispatch turns queued
// events into one webhook_deliveries row per subscribed endpoint; RunEndpoint
// sends an endpoint's due deliveries one at a time under a lease on the
// endpoint, so that several engine processes never send one delivery at
// once and a slow endpoint holds up no other. River jobs only trigger these
// (see package jobs).
package webhooks

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Delivery timings.
const (
	// DefaultTimeout bounds one delivery attempt, from connecting to the
	// end of the answer's headers and excerpt.
	DefaultTimeout = 10 * time.Second
	// runBudget bounds how long one RunEndpoint keeps sending before it
	// hands over (system clock), so that shutdown and fairness never wait
	// on a long backlog.
	runBudget = time.Minute
	// excerptBytes is how much of an answer's body the log keeps.
	excerptBytes = 1024
	// MaxEndpoints bounds the endpoints of one business.
	MaxEndpoints = 16
)

// Config configures a Service.
type Config struct {
	// DB is the engine's database.
	DB *bun.DB
	// Clock is the system clock: the clock of live businesses, of leases,
	// of the signature's timestamp and of attempt latencies. Sandbox
	// businesses use their stored clock for everything they schedule.
	// Defaults to billing.SystemClock.
	Clock billing.Clock
	// Guard holds the outbound-safety rules (whether sandbox businesses may
	// reach private addresses, and the resolver).
	Guard Guard
	// Timeout bounds one delivery attempt. Defaults to DefaultTimeout (10 s).
	Timeout time.Duration
	// Logger receives what the service cannot return (an endpoint disabled
	// for failing). Defaults to discarding.
	Logger *slog.Logger
}

// Service manages endpoints and delivers events.
type Service struct {
	db      *bun.DB
	clock   billing.Clock
	guard   *Guard
	timeout time.Duration
	log     *slog.Logger
	// clients by whether they may reach private addresses.
	strict, permissive *http.Client
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = billing.SystemClock{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := cfg.Guard
	s := &Service{db: cfg.DB, clock: cfg.Clock, guard: &g, timeout: cfg.Timeout, log: cfg.Logger}
	s.strict = s.newClient(false)
	s.permissive = s.newClient(true)
	return s
}

// newClient returns the HTTP client for deliveries of live (sandbox false)
// or sandbox businesses. It never follows redirects (a 3xx is a failed
// attempt), uses no proxy, and checks every address it dials (see Guard).
func (s *Service) newClient(sandbox bool) *http.Client {
	return &http.Client{
		Timeout: s.timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           s.guard.dialer(sandbox, s.timeout),
			TLSHandshakeTimeout:   s.timeout,
			ResponseHeaderTimeout: s.timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// client returns the HTTP client for a business.
func (s *Service) client(sandbox bool) *http.Client {
	if sandbox {
		return s.permissive
	}
	return s.strict
}

// businessNow is the clock reading of a business: its sandbox clock, or
// the system clock for a live business.
func businessNow(sandboxNow *time.Time, system time.Time) time.Time {
	if sandboxNow != nil {
		return sandboxNow.UTC()
	}
	return system
}

// randomToken returns n random bytes in hex.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("webhooks: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// truncate is PostgreSQL's precision.
func truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
