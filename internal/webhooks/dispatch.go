package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Delivery statuses.
const (
	DeliveryPending   = "PENDING"
	DeliverySucceeded = "SUCCEEDED"
	DeliveryFailed    = "FAILED"
	DeliveryCancelled = "CANCELLED"
)

// prefixDelivery starts delivery ids. Deliveries are not in SPEC §3's list
// of ids because only the delivery log shows them.
const prefixDelivery = "whd-"

// Delivery is one event to be sent to one endpoint, and its outcome.
type Delivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	ID                string `bun:"id,pk"`
	BusinessID        string `bun:"business_id"`
	EventID           string `bun:"event_id"`
	WebhookEndpointID string `bun:"webhook_endpoint_id"`
	// Redelivery is true for a delivery asked for through the API.
	Redelivery   bool   `bun:"redelivery"`
	Status       string `bun:"status"`
	AttemptCount int    `bun:"attempt_count"`
	// NextAttemptAt is when the next attempt is due (business clock);
	// set only while PENDING.
	NextAttemptAt *time.Time `bun:"next_attempt_at"`
	// Created is when the delivery was made (business clock); its 3 days of
	// retries count from here.
	Created time.Time `bun:"created"`
	Updated time.Time `bun:"updated"`
}

// dispatchBatch bounds the events one Dispatch transaction takes.
const dispatchBatch = 500

// queued is an event waiting in webhook_event_queue.
type queued struct {
	EventID    string    `bun:"event_id"`
	BusinessID string    `bun:"business_id"`
	Type       string    `bun:"type"`
	Created    time.Time `bun:"created"`
}

// Dispatch turns queued events into deliveries, up to dispatchBatch events
// per transaction until the queue is empty, and returns the endpoints that
// got new deliveries (to be sent; see RunEndpoint). An event goes to every
// ENABLED endpoint of its business that subscribes to its type and was
// created no later than the event (by the business's clock). Several
// processes may dispatch at once: each takes different events (SKIP
// LOCKED), and an automatic delivery is unique per event and endpoint.
func (s *Service) Dispatch(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for {
		var got []string
		var n int
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			got, n, err = dispatchOnce(ctx, tx, s.clock.Now())
			return err
		})
		if err != nil {
			return out, err
		}
		for _, id := range got {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		if n < dispatchBatch {
			return out, nil
		}
	}
}

func dispatchOnce(ctx context.Context, tx bun.Tx, system time.Time) ([]string, int, error) {
	var events []queued
	// The queue's rows are taken first, then their events by key: joined in
	// one step, PostgreSQL may merge the queue with the whole events table
	// in id order, reading every event ever written to reach the queued
	// ones (a quarter of a second per batch at 200,000 events).
	err := tx.NewRaw(`WITH q AS MATERIALIZED (
			SELECT event_id FROM webhook_event_queue ORDER BY event_id LIMIT ? FOR UPDATE SKIP LOCKED)
		SELECT q.event_id, e.business_id, e.type, e.created
		FROM q JOIN events AS e ON e.id = q.event_id
		ORDER BY q.event_id`, dispatchBatch).Scan(ctx, &events)
	if err != nil {
		return nil, 0, fmt.Errorf("read queued events: %w", err)
	}
	if len(events) == 0 {
		return nil, 0, nil
	}
	var businessIDs, eventIDs []string
	for _, ev := range events {
		businessIDs = append(businessIDs, ev.BusinessID)
		eventIDs = append(eventIDs, ev.EventID)
	}
	// KEY SHARE holds off a concurrent disable or delete (which lock the
	// endpoint FOR UPDATE and cancel its pending deliveries) until these
	// deliveries are committed, so none is left pending for an endpoint
	// that will never be sent to.
	var endpoints []*Endpoint
	err = tx.NewSelect().Model(&endpoints).
		Where("business_id IN (?)", bun.In(businessIDs)).Where("status = ?", StatusEnabled).Where("deleted_at IS NULL").
		For("KEY SHARE").Scan(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read webhook endpoints: %w", err)
	}
	var clocks []struct {
		ID         string     `bun:"id"`
		SandboxNow *time.Time `bun:"sandbox_now"`
	}
	if err := tx.NewRaw("SELECT id, sandbox_now FROM businesses WHERE id IN (?)", bun.In(businessIDs)).Scan(ctx, &clocks); err != nil {
		return nil, 0, fmt.Errorf("read business clocks: %w", err)
	}
	now := map[string]time.Time{}
	for _, c := range clocks {
		now[c.ID] = truncate(businessNow(c.SandboxNow, system))
	}
	byBusiness := map[string][]*Endpoint{}
	for _, e := range endpoints {
		byBusiness[e.BusinessID] = append(byBusiness[e.BusinessID], e)
	}
	var deliveries []*Delivery
	var woken []string
	wake := map[string]bool{}
	for _, ev := range events {
		for _, e := range byBusiness[ev.BusinessID] {
			if e.Created.After(ev.Created) || !e.Subscribed(ev.Type) {
				continue
			}
			at := now[ev.BusinessID]
			deliveries = append(deliveries, &Delivery{ID: billing.NewID(prefixDelivery), BusinessID: ev.BusinessID, EventID: ev.EventID,
				WebhookEndpointID: e.ID, Status: DeliveryPending, NextAttemptAt: &at, Created: at, Updated: at})
			if !wake[e.ID] {
				wake[e.ID] = true
				woken = append(woken, e.ID)
			}
		}
	}
	if len(deliveries) > 0 {
		_, err := tx.NewInsert().Model(&deliveries).
			On("CONFLICT (event_id, webhook_endpoint_id) WHERE NOT redelivery DO NOTHING").Exec(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("insert deliveries: %w", err)
		}
	}
	if _, err := tx.NewRaw("DELETE FROM webhook_event_queue WHERE event_id IN (?)", bun.In(eventIDs)).Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("dequeue events: %w", err)
	}
	return woken, len(events), nil
}

// Retry schedule (SPEC §4.9): exponential backoff for 3 days.
const (
	// firstRetryDelay follows the first failed attempt; each later failure
	// doubles the delay.
	firstRetryDelay = time.Minute
	// maxRetryDelay caps the delay between two attempts.
	maxRetryDelay = 12 * time.Hour
	// RetryWindow is how long a delivery is retried, from its creation, and
	// how long an endpoint may fail before it is disabled.
	RetryWindow = 72 * time.Hour
)

// NextAttempt returns when a delivery created at created is next tried,
// after its attempt-th attempt (1 for the first) failed at failedAt, all by
// the business's clock: failedAt plus 1 minute doubled for each earlier
// failure, capped at 12 hours, and never later than 3 days after created,
// when the last attempt is made. It returns false when that last attempt
// has been made: the delivery has failed.
func NextAttempt(created time.Time, attempt int, failedAt time.Time) (time.Time, bool) {
	deadline := created.Add(RetryWindow)
	if !failedAt.Before(deadline) {
		return time.Time{}, false
	}
	delay := maxRetryDelay
	if attempt >= 1 && attempt <= 16 {
		delay = min(firstRetryDelay<<(attempt-1), maxRetryDelay)
	}
	next := failedAt.Add(delay)
	if next.After(deadline) {
		next = deadline
	}
	return next, true
}
