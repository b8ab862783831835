package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing/internal/business"
)

// Engine scheduling timings (docs/engine.md, "Scheduling").
const (
	// engineScheduleInterval is how often the leader looks for cycles of
	// live businesses that are due, or fall due within engineLookAhead,
	// and inserts their triggers.
	engineScheduleInterval = 30 * time.Second
	// engineLookAhead is how far ahead triggers are inserted; longer than
	// the interval, so that every due time is seen by at least one run
	// before it comes.
	engineLookAhead = time.Minute
	// engineDueTimeout bounds one trigger's run; work left when it ends
	// (a very large batch of due cycles) is picked up by the next schedule
	// run's trigger.
	engineDueTimeout = 10 * time.Minute
)

// EngineScheduleArgs asks for the triggers of the live businesses' due
// cycles to be inserted. It runs on the leader every 30 seconds, and at
// start.
type EngineScheduleArgs struct{}

// Kind names the job.
func (EngineScheduleArgs) Kind() string { return "engine_schedule" }

// EngineScheduleWorker inserts an EngineDueArgs trigger per live business
// and due time (engine.Service.LiveWakes): scheduled at the time for
// what falls due within the next minute, and at once for what is due
// already (the sweep: a trigger lost, an engine that was down, a cycle
// created due). Sandbox businesses get none: their work runs when their
// clock is advanced.
type EngineScheduleWorker struct {
	river.WorkerDefaults[EngineScheduleArgs]
	deps Deps
}

// Work inserts the triggers.
func (w *EngineScheduleWorker) Work(ctx context.Context, job *river.Job[EngineScheduleArgs]) error {
	now := w.deps.Clock.Now()
	wakes, err := w.deps.Engine.LiveWakes(ctx, now, now.Add(engineLookAhead))
	if err != nil {
		return err
	}
	if len(wakes) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(wakes))
	for i, wk := range wakes {
		params[i] = river.InsertManyParams{Args: EngineDueArgs{BusinessID: wk.BusinessID, At: wk.At},
			InsertOpts: &river.InsertOpts{ScheduledAt: wk.At, UniqueOpts: river.UniqueOpts{ByArgs: true}}}
	}
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertMany(ctx, params); err != nil {
		return fmt.Errorf("insert %d engine triggers: %w", len(params), err)
	}
	return nil
}

// EngineDueArgs triggers the work due for live business BusinessID at At:
// one job per business and due time, however many of its cycles fall due
// then (unique by its args, so the schedule runs that see one due time
// insert it once).
//
// Helper is 0 for such a trigger. A trigger whose worker finds more than a
// batch due inserts helpers 1, 2, … (one per other due-work slot of the
// business, engine.Config.DueWorkers) with its own BusinessID and At, so
// that the business's work is shared by that many workers at once instead
// of one; a helper inserts none.
type EngineDueArgs struct {
	BusinessID string    `json:"business_id"`
	At         time.Time `json:"at"`
	Helper     int       `json:"helper,omitempty"`
}

// Kind names the job.
func (EngineDueArgs) Kind() string { return "engine_due" }

// EngineDueWorker runs everything due for the business by the system clock
// (engine.Service.RunDueBusiness), in batches of cycles locked with SKIP
// LOCKED, so that several triggers and several processes share the work
// and none of it is done twice. A trigger that finds nothing due (another
// did it) does nothing.
type EngineDueWorker struct {
	river.WorkerDefaults[EngineDueArgs]
	deps Deps
	log  *slog.Logger
}

// Timeout covers a large business's due work.
func (w *EngineDueWorker) Timeout(*river.Job[EngineDueArgs]) time.Duration { return engineDueTimeout }

// Work runs the business's due work; a sandbox business is left to its
// clock.
func (w *EngineDueWorker) Work(ctx context.Context, job *river.Job[EngineDueArgs]) error {
	biz, err := business.Get(ctx, w.deps.DB, job.Args.BusinessID)
	if err != nil {
		return err
	}
	if biz.Sandbox() {
		return nil
	}
	var helpers func(context.Context, int)
	if job.Args.Helper == 0 {
		helpers = func(ctx context.Context, n int) { w.insertHelpers(ctx, job.Args, n) }
	}
	if _, _, err := w.deps.Engine.TryRunDueBusiness(ctx, biz.ID, w.deps.Clock.Now(), helpers); err != nil {
		return fmt.Errorf("run due work of business %s: %w", biz.ID, err)
	}
	return nil
}

// insertHelpers inserts helpers 1..n of trigger args. One that cannot be
// inserted is logged, not an error: the work goes on with fewer workers,
// and the next schedule run's trigger adds another.
func (w *EngineDueWorker) insertHelpers(ctx context.Context, args EngineDueArgs, n int) {
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: EngineDueArgs{BusinessID: args.BusinessID, At: args.At, Helper: i + 1},
			InsertOpts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}}
	}
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertMany(ctx, params); err != nil {
		w.log.Warn("insert the helpers of a business's due work; the worker goes on without them", "business_id", args.BusinessID,
			"error", err.Error())
	}
}

// wakeEngine inserts a trigger for the due work of live business id now,
// unique per business and second, so that a burst of wake-ups (many
// cycles made due in one transaction) inserts one job.
func wakeEngine(ctx context.Context, client *river.Client[pgx.Tx], deps Deps, id string) error {
	at := deps.Clock.Now().UTC().Truncate(time.Second)
	_, err := client.Insert(ctx, EngineDueArgs{BusinessID: id, At: at},
		&river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
	return err
}

// addEngine registers the engine's scheduling workers and its periodic
// job when deps has an engine.
func addEngine(workers *river.Workers, rc *river.Config, deps Deps, log *slog.Logger) error {
	if deps.Engine == nil {
		return nil
	}
	if err := river.AddWorkerSafely(workers, &EngineScheduleWorker{deps: deps}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, &EngineDueWorker{deps: deps, log: log}); err != nil {
		return err
	}
	if rc != nil {
		rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(engineScheduleInterval),
			func() (river.JobArgs, *river.InsertOpts) { return EngineScheduleArgs{}, nil },
			&river.PeriodicJobOpts{ID: EngineScheduleArgs{}.Kind(), RunOnStart: true}))
	}
	return nil
}
