// Package jobs holds the engine's River job kinds and their workers. Workers
// are thin: they lock the rows they act on, re-check them, and call the
// domain packages. Rows are the truth and jobs only a trigger (SPEC §2), so a
// lost, late or repeated job never loses or repeats work.
package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/tagihan/billing/metering"
	"github.com/uptrace/bun"
)

// Deps are what workers need.
type Deps struct {
	// DB is the engine's database (bun over the same pool as River).
	DB *bun.DB
	// Clock is the system clock.
	Clock billing.Clock
	// Payments is the payment service, for the reconciler and the sandbox
	// provider's callbacks. When nil, the payment jobs are not registered.
	Payments *payments.Service
	// Webhooks delivers events to webhook endpoints; Notify sends customer
	// notifications. When nil, their jobs are not registered.
	Webhooks *webhooks.Service
	Notify   *notify.Service
	// Engine runs the cycles' due work (fixing amounts, charges). When nil,
	// the engine's jobs are not registered.
	Engine *engine.Service
}

// How soon a job is picked up. River's defaults (100 ms between fetches,
// a poll every second) leave a job scheduled for an instant waiting up to
// a second after it: River makes scheduled jobs available ahead of time,
// and only the poll fetches them once their time has come. Cycles due at
// one moment then started up to a second late, and the helper triggers
// and the sandbox's callback deliveries each waited up to 100 ms. An idle
// process polls five times a second instead of once: one indexed query
// each (docs/engine.md, "Scheduling").
const (
	fetchCooldown     = 10 * time.Millisecond
	fetchPollInterval = 200 * time.Millisecond
)

// Config configures the River client.
type Config struct {
	// Work says whether this client works jobs (roles all and worker) or only
	// inserts them (role api).
	Work bool
	// MaxWorkers bounds the jobs worked at once by this process. Defaults to 50.
	MaxWorkers int
	// CleanupInterval is how often expired idempotency records are deleted.
	// Defaults to one hour.
	CleanupInterval time.Duration
	// Logger receives River's logs. Defaults to discarding.
	Logger *slog.Logger
	// TestOnly sets River's test mode (see river.Config.TestOnly).
	TestOnly bool
}

// NewClient returns a River client over pool with every worker and periodic
// job of the engine registered. Start it to work jobs; River elects one
// leader among all processes to run the periodic jobs.
func NewClient(pool *pgxpool.Pool, deps Deps, cfg Config) (*river.Client[pgx.Tx], error) {
	if cfg.MaxWorkers == 0 {
		cfg.MaxWorkers = 50
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &IdempotencyCleanupWorker{deps: deps}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &UsagePartitionsWorker{partitions: metering.NewPartitions(pool), clock: deps.Clock}); err != nil {
		return nil, err
	}
	if deps.Payments != nil {
		if err := river.AddWorkerSafely(workers, &PaymentReconcileWorker{deps: deps}); err != nil {
			return nil, err
		}
		if err := river.AddWorkerSafely(workers, &SandboxCallbacksWorker{deps: deps}); err != nil {
			return nil, err
		}
	}
	if err := addOutboundWorkers(workers, deps); err != nil {
		return nil, err
	}
	rc := &river.Config{
		Workers:           workers,
		Logger:            cfg.Logger,
		TestOnly:          cfg.TestOnly,
		FetchCooldown:     fetchCooldown,
		FetchPollInterval: fetchPollInterval,
	}
	if cfg.Work {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}}
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.CleanupInterval),
				func() (river.JobArgs, *river.InsertOpts) { return IdempotencyCleanupArgs{}, nil },
				&river.PeriodicJobOpts{ID: IdempotencyCleanupArgs{}.Kind(), RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(usagePartitionsInterval),
				func() (river.JobArgs, *river.InsertOpts) { return UsagePartitionsArgs{}, nil },
				&river.PeriodicJobOpts{ID: UsagePartitionsArgs{}.Kind(), RunOnStart: true}),
		}
		if deps.Payments != nil {
			rc.PeriodicJobs = append(rc.PeriodicJobs,
				river.NewPeriodicJob(river.PeriodicInterval(reconcileInterval),
					func() (river.JobArgs, *river.InsertOpts) { return PaymentReconcileArgs{}, nil },
					&river.PeriodicJobOpts{ID: PaymentReconcileArgs{}.Kind(), RunOnStart: true}),
				river.NewPeriodicJob(river.PeriodicInterval(sandboxSweepInterval),
					func() (river.JobArgs, *river.InsertOpts) { return SandboxCallbacksArgs{}, nil },
					&river.PeriodicJobOpts{ID: SandboxCallbacksArgs{}.Kind(), RunOnStart: true}))
		}
		addOutbound(rc, deps)
	}
	var periodic *river.Config
	if cfg.Work {
		periodic = rc
	}
	if err := addEngine(workers, periodic, deps, cfg.Logger); err != nil {
		return nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}
