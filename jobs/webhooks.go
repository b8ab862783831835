package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tagihan/billing/internal/wake"
)

// Queues of outbound work, apart from the default queue so that a slow
// endpoint or mail server never holds up billing jobs.
const (
	// QueueWebhooks works webhook deliveries, one job per endpoint at a
	// time.
	QueueWebhooks = "webhooks"
	// QueueNotifications works customer notifications.
	QueueNotifications = "notifications"
)

// Outbound timings and sizes.
const (
	// outboundSweepInterval is how often the leader dispatches events and
	// enqueues deliveries and notifications that are due without a job (a
	// lost wake-up, a retry that came due, a sandbox clock that moved).
	outboundSweepInterval = 15 * time.Second
	// webhookWorkers and notificationWorkers are each queue's jobs at once
	// per process.
	webhookWorkers      = 20
	notificationWorkers = 10
	// webhookJobTimeout covers one RunEndpoint: a minute of sending plus
	// the attempt in flight.
	webhookJobTimeout = 2 * time.Minute
)

// uniqueQueued makes a job unique by its args among jobs not yet finished.
// River requires the running state in the set; a trigger that finds its
// job running inserts a follow-up (see enqueue).
var uniqueQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}}

// WebhookDeliverArgs asks for the due deliveries of one endpoint to be
// sent. After is set on a follow-up: the id of the job that was already
// running for the endpoint when new deliveries were made, and might have
// finished looking before they were committed.
type WebhookDeliverArgs struct {
	EndpointID string `json:"endpoint_id"`
	After      int64  `json:"after,omitempty"`
}

// Kind names the job.
func (WebhookDeliverArgs) Kind() string { return "webhook_deliver" }

// InsertOpts puts the job on the webhooks queue, unique per endpoint.
func (WebhookDeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWebhooks, UniqueOpts: uniqueQueued}
}

// WebhookDeliverWorker sends an endpoint's due deliveries
// (webhooks.Service.RunEndpoint).
type WebhookDeliverWorker struct {
	river.WorkerDefaults[WebhookDeliverArgs]
	deps Deps
}

// Timeout covers a full run of RunEndpoint.
func (w *WebhookDeliverWorker) Timeout(*river.Job[WebhookDeliverArgs]) time.Duration {
	return webhookJobTimeout
}

// Work sends the endpoint's due deliveries; when it stopped with more due
// (its minute is up, or the engine is stopping) it snoozes to run again.
func (w *WebhookDeliverWorker) Work(ctx context.Context, job *river.Job[WebhookDeliverArgs]) error {
	_, more, err := w.deps.Webhooks.RunEndpoint(ctx, job.Args.EndpointID)
	if err != nil {
		return fmt.Errorf("deliver to endpoint %s: %w", job.Args.EndpointID, err)
	}
	if more {
		return river.JobSnooze(0)
	}
	return nil
}

// OutboundSweepArgs asks for queued events to be dispatched and for every
// due delivery and notification to get a job. It runs periodically on the
// leader, and at start.
type OutboundSweepArgs struct{}

// Kind names the job.
func (OutboundSweepArgs) Kind() string { return "outbound_sweep" }

// OutboundSweepWorker is the sweeper of webhook deliveries and
// notifications.
type OutboundSweepWorker struct {
	river.WorkerDefaults[OutboundSweepArgs]
	deps Deps
}

// Work dispatches and enqueues.
func (w *OutboundSweepWorker) Work(ctx context.Context, job *river.Job[OutboundSweepArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	return Sweep(ctx, client, w.deps)
}

// Sweep dispatches queued events and enqueues a job for every endpoint
// with due deliveries and every due notification, for deps' services that
// are set.
func Sweep(ctx context.Context, client *river.Client[pgx.Tx], deps Deps) error {
	if deps.Webhooks != nil {
		if err := dispatch(ctx, client, deps); err != nil {
			return err
		}
		due, err := deps.Webhooks.DueEndpoints(ctx, "")
		if err != nil {
			return err
		}
		for _, id := range due {
			if err := enqueue(ctx, client, WebhookDeliverArgs{EndpointID: id}); err != nil {
				return err
			}
		}
	}
	if deps.Notify != nil {
		due, err := deps.Notify.DueIDs(ctx, "")
		if err != nil {
			return err
		}
		for _, id := range due {
			if _, err := client.Insert(ctx, NotificationSendArgs{NotificationID: id}, nil); err != nil {
				return fmt.Errorf("enqueue notification %s: %w", id, err)
			}
		}
	}
	return nil
}

// dispatch turns queued events into deliveries and enqueues the endpoints
// that got some.
func dispatch(ctx context.Context, client *river.Client[pgx.Tx], deps Deps) error {
	endpoints, err := deps.Webhooks.Dispatch(ctx)
	for _, id := range endpoints {
		if err := enqueue(ctx, client, WebhookDeliverArgs{EndpointID: id}); err != nil {
			return err
		}
	}
	return err
}

// enqueue inserts an endpoint's job. When its unique job is already
// running, that job may have looked for due deliveries before the caller's
// were committed, so a follow-up is inserted, unique per running job.
func enqueue(ctx context.Context, client *river.Client[pgx.Tx], args WebhookDeliverArgs) error {
	res, err := client.Insert(ctx, args, nil)
	if err != nil {
		return fmt.Errorf("enqueue endpoint %s: %w", args.EndpointID, err)
	}
	if res.UniqueSkippedAsDuplicate && res.Job != nil && res.Job.State == rivertype.JobStateRunning && args.After == 0 {
		args.After = res.Job.ID
		if _, err := client.Insert(ctx, args, nil); err != nil {
			return fmt.Errorf("enqueue endpoint %s follow-up: %w", args.EndpointID, err)
		}
	}
	return nil
}

// Wake listens for the wake-ups that transactions send when they commit
// (package wake) and turns them into work until ctx is done: queued events
// are dispatched at once, and endpoints and notifications get their jobs.
// Run it in every process that works jobs; ready, when not nil, is closed
// once it listens. What it misses, Sweep finds.
func Wake(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], deps Deps, log *slog.Logger, ready chan<- struct{}) {
	wake.Listen(ctx, pool, log, ready, func(ctx context.Context, topic string) {
		var err error
		kind, id, _ := strings.Cut(topic, ":")
		switch {
		case kind == wake.TopicWebhooks && deps.Webhooks != nil:
			err = dispatch(ctx, client, deps)
		case kind == wake.TopicWebhookEndpoint && deps.Webhooks != nil && id != "":
			err = enqueue(ctx, client, WebhookDeliverArgs{EndpointID: id})
		case kind == wake.TopicNotification && deps.Notify != nil && id != "":
			_, err = client.Insert(ctx, NotificationSendArgs{NotificationID: id}, nil)
		case kind == wake.TopicEngine && deps.Engine != nil && id != "":
			err = wakeEngine(ctx, client, deps, id)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("wake-up not acted on; the periodic sweep will", "topic", topic, "error", err.Error())
		}
	})
}

// addOutboundWorkers registers the webhook and notification workers whose
// services deps has.
func addOutboundWorkers(workers *river.Workers, deps Deps) error {
	if deps.Webhooks != nil {
		if err := river.AddWorkerSafely(workers, &WebhookDeliverWorker{deps: deps}); err != nil {
			return err
		}
	}
	if deps.Notify != nil {
		if err := river.AddWorkerSafely(workers, &NotificationSendWorker{deps: deps}); err != nil {
			return err
		}
	}
	if deps.Webhooks != nil || deps.Notify != nil {
		return river.AddWorkerSafely(workers, &OutboundSweepWorker{deps: deps})
	}
	return nil
}

// addOutbound adds the outbound queues and the sweep to a working client.
func addOutbound(rc *river.Config, deps Deps) {
	if deps.Webhooks == nil && deps.Notify == nil {
		return
	}
	rc.Queues[QueueWebhooks] = river.QueueConfig{MaxWorkers: webhookWorkers}
	rc.Queues[QueueNotifications] = river.QueueConfig{MaxWorkers: notificationWorkers}
	rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(outboundSweepInterval),
		func() (river.JobArgs, *river.InsertOpts) { return OutboundSweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: OutboundSweepArgs{}.Kind(), RunOnStart: true}))
}
