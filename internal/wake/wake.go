// Package wake lets a transaction ask the engine's workers to look for new
// work as soon as it commits, and lets workers listen for those requests.
//
// It is PostgreSQL's NOTIFY on one channel: a notification sent inside a
// transaction is delivered only when the transaction commits, and never if
// it rolls back, so a worker that wakes up always finds the rows it was
// woken for. Notifications are only a trigger: one lost while no worker
// listens is made up for by the periodic sweeps, because the rows are the
// truth.
package wake

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uptrace/bun"
)

// Channel is the notification channel. The events trigger of the webhook
// migration sends "webhooks" on it too.
const Channel = "billing_wake"

// Topics sent on Channel. A topic is one of these, or one of them with ":"
// and an id after it.
const (
	// TopicWebhooks asks for queued events to be dispatched to endpoints.
	TopicWebhooks = "webhooks"
	// TopicWebhookEndpoint, with ":<endpoint id>", asks for an endpoint's
	// due deliveries to be sent.
	TopicWebhookEndpoint = "webhook_endpoint"
	// TopicNotification, with ":<notification id>", asks for a queued
	// notification to be sent.
	TopicNotification = "notification"
	// TopicEngine, with ":<business id>", asks for a live business's due
	// cycles to be run; the engine migration's trigger on recurring_cycles
	// sends it when a cycle falls due within a minute.
	TopicEngine = "engine"
)

// Notify sends topic on Channel through db. Inside a transaction it is
// delivered when the transaction commits. PostgreSQL folds identical
// notifications of one transaction into one.
func Notify(ctx context.Context, db bun.IDB, topic string) error {
	if _, err := db.ExecContext(ctx, "SELECT pg_notify(?, ?)", Channel, topic); err != nil {
		return fmt.Errorf("notify %s: %w", topic, err)
	}
	return nil
}

// Listen calls handle with each topic sent on Channel until ctx is done. It
// holds one connection of pool; when the connection fails it takes another
// after a second (topics sent meanwhile are lost, which the sweeps make up
// for). ready, when not nil, is closed once the first LISTEN is in place.
func Listen(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, ready chan<- struct{}, handle func(ctx context.Context, topic string)) {
	for ctx.Err() == nil {
		err := listenOnce(ctx, pool, &ready, handle)
		if ctx.Err() != nil {
			return
		}
		log.Warn("wake listener lost its connection; listening again in a second", "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, ready *chan<- struct{}, handle func(ctx context.Context, topic string)) error {
	pooled, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left listening must not go back to the pool: take it.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	if *ready != nil {
		close(*ready)
		*ready = nil
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		handle(ctx, n.Payload)
	}
}
