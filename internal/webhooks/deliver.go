package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// leaseFor is how long an endpoint's lease lasts past its last renewal
// (system clock): longer than one attempt, so that only a process that
// died (or stalled that long) loses it.
func (s *Service) leaseFor() time.Duration { return s.timeout + 30*time.Second }

// RunEndpoint sends the due deliveries of one endpoint, oldest due first,
// one at a time, and returns how many attempts it made and whether it
// stopped with deliveries still due (after a minute of sending, or when ctx
// ended), in which case it should be run again. It holds the endpoint's
// lease while it sends: when another process holds it, RunEndpoint returns
// at once, and that process sends what is due. A disabled or deleted
// endpoint has its leftover pending deliveries cancelled.
func (s *Service) RunEndpoint(ctx context.Context, endpointID string) (attempts int, more bool, err error) {
	token := randomToken(16)
	got, err := s.acquire(ctx, endpointID, token)
	if err != nil || !got {
		return 0, false, err
	}
	started := s.clock.Now()
	release := func() error { return s.release(context.WithoutCancel(ctx), endpointID, token) }
	for {
		if ctx.Err() != nil || s.clock.Now().Sub(started) >= runBudget {
			return attempts, true, release()
		}
		job, err := s.claim(ctx, endpointID, token)
		if err != nil {
			_ = release()
			return attempts, false, err
		}
		if job == nil {
			// Release first, then look again: a delivery made after the
			// look is found by the job its maker enqueued, which now gets
			// the lease.
			if err := release(); err != nil {
				return attempts, false, err
			}
			due, err := s.anyDue(ctx, endpointID)
			if err != nil || !due {
				return attempts, false, err
			}
			if got, err := s.acquire(ctx, endpointID, token); err != nil || !got {
				return attempts, false, err
			}
			continue
		}
		res := s.send(ctx, job)
		if res.interrupted {
			return attempts, true, release()
		}
		attempts++
		if err := s.record(ctx, job, res); err != nil {
			_ = release()
			return attempts, false, err
		}
	}
}

// acquire takes the endpoint's lease when it is ENABLED and the lease is
// free or expired. For a disabled or deleted endpoint it cancels any
// pending delivery left and reports false.
func (s *Service) acquire(ctx context.Context, endpointID, token string) (bool, error) {
	now := s.clock.Now()
	res, err := s.db.NewUpdate().Model((*Endpoint)(nil)).
		Set("lease_token = ?", token).Set("lease_until = ?", now.Add(s.leaseFor())).
		Where("id = ?", endpointID).Where("status = ?", StatusEnabled).Where("deleted_at IS NULL").
		Where("(lease_until IS NULL OR lease_until < ?)", now).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("lease endpoint %s: %w", endpointID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	// Leased elsewhere, or not to be sent to: then nothing may stay pending.
	_, err = s.db.NewUpdate().Model((*Delivery)(nil)).
		Set("status = ?", DeliveryCancelled).Set("next_attempt_at = NULL").
		Set("updated = COALESCE((SELECT b.sandbox_now FROM businesses AS b WHERE b.id = delivery.business_id), ?)", truncate(now)).
		Where("webhook_endpoint_id = ?", endpointID).Where("status = ?", DeliveryPending).
		Where("EXISTS (SELECT 1 FROM webhook_endpoints AS e WHERE e.id = ? AND (e.status <> ? OR e.deleted_at IS NOT NULL))", endpointID, StatusEnabled).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("cancel deliveries of %s: %w", endpointID, err)
	}
	return false, nil
}

// release gives the lease back, if this run still holds it.
func (s *Service) release(ctx context.Context, endpointID, token string) error {
	_, err := s.db.NewUpdate().Model((*Endpoint)(nil)).Set("lease_token = NULL").Set("lease_until = NULL").
		Where("id = ?", endpointID).Where("lease_token = ?", token).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release endpoint %s: %w", endpointID, err)
	}
	return nil
}

// anyDue reports whether the endpoint has a delivery due by its business's
// clock.
func (s *Service) anyDue(ctx context.Context, endpointID string) (bool, error) {
	var due bool
	err := s.db.NewRaw(`SELECT EXISTS (SELECT 1 FROM webhook_deliveries AS d JOIN businesses AS b ON b.id = d.business_id
		WHERE d.webhook_endpoint_id = ? AND d.status = ? AND d.next_attempt_at <= COALESCE(b.sandbox_now, ?))`,
		endpointID, DeliveryPending, s.clock.Now()).Scan(ctx, &due)
	if err != nil {
		return false, fmt.Errorf("look for due deliveries of %s: %w", endpointID, err)
	}
	return due, nil
}

// attemptJob is everything one attempt needs, read when it is claimed.
type attemptJob struct {
	delivery *Delivery
	endpoint *Endpoint
	event    *outbox.Event
	sandbox  bool
	token    string    // the business's callback token
	now      time.Time // the business clock at the claim
}

// claim renews the lease and reads the endpoint's next due delivery with
// what sending it needs, or returns nil when none is due or the lease was
// lost.
func (s *Service) claim(ctx context.Context, endpointID, token string) (*attemptJob, error) {
	system := s.clock.Now()
	res, err := s.db.NewUpdate().Model((*Endpoint)(nil)).Set("lease_until = ?", system.Add(s.leaseFor())).
		Where("id = ?", endpointID).Where("lease_token = ?", token).
		Where("status = ?", StatusEnabled).Where("deleted_at IS NULL").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("renew lease of %s: %w", endpointID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	var row struct {
		Delivery      `bun:",extend"`
		SandboxNow    *time.Time `bun:"sandbox_now"`
		CallbackToken *string    `bun:"callback_token"`
	}
	err = s.db.NewSelect().Model(&row).
		ColumnExpr("delivery.*").ColumnExpr("b.sandbox_now").ColumnExpr("ws.callback_token").
		Join("JOIN businesses AS b ON b.id = delivery.business_id").
		Join("LEFT JOIN webhook_settings AS ws ON ws.business_id = delivery.business_id").
		Where("delivery.webhook_endpoint_id = ?", endpointID).Where("delivery.status = ?", DeliveryPending).
		Where("delivery.next_attempt_at <= COALESCE(b.sandbox_now, ?)", system).
		OrderExpr("delivery.next_attempt_at, delivery.id").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("next delivery of %s: %w", endpointID, err)
	}
	job := &attemptJob{delivery: &row.Delivery, sandbox: row.SandboxNow != nil,
		now: truncate(businessNow(row.SandboxNow, system)), endpoint: new(Endpoint), event: new(outbox.Event)}
	if row.CallbackToken != nil {
		job.token = *row.CallbackToken
	} else {
		// Every endpoint's creation makes the token; this only heals a
		// business whose settings row went missing.
		st, err := ensureSettings(ctx, s.db, row.BusinessID, job.now, false)
		if err != nil {
			return nil, err
		}
		job.token = st.CallbackToken
	}
	if err := s.db.NewSelect().Model(job.endpoint).Where("id = ?", endpointID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read endpoint %s: %w", endpointID, err)
	}
	if err := s.db.NewSelect().Model(job.event).Where("id = ?", row.EventID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read event %s: %w", row.EventID, err)
	}
	return job, nil
}

// Attempt is one logged try of a delivery.
type Attempt struct {
	bun.BaseModel `bun:"table:webhook_attempts"`

	DeliveryID    string `bun:"delivery_id,pk"`
	AttemptNumber int    `bun:"attempt_number,pk"`
	BusinessID    string `bun:"business_id"`
	URL           string `bun:"url"`
	// AttemptedAt is when the attempt started, by the business's clock.
	AttemptedAt time.Time `bun:"attempted_at"`
	// StatusCode is the answer's HTTP status; nil when none came.
	StatusCode *int `bun:"status_code"`
	// LatencyMS is how long the attempt took, by the system clock.
	LatencyMS       int     `bun:"latency_ms"`
	ResponseExcerpt string  `bun:"response_excerpt"`
	Error           *string `bun:"error"`
	Succeeded       bool    `bun:"succeeded"`
}

// record logs an attempt and moves the delivery on: SUCCEEDED on a 2xx;
// otherwise retried on the backoff schedule, or FAILED after 3 days. An
// endpoint whose attempts have all failed for 3 days is disabled, its other
// pending deliveries cancelled, and webhook_endpoint.disabled emitted.
func (s *Service) record(ctx context.Context, job *attemptJob, res result) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		d := new(Delivery)
		if err := tx.NewSelect().Model(d).Where("id = ?", job.delivery.ID).For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("lock delivery %s: %w", job.delivery.ID, err)
		}
		e := new(Endpoint)
		if err := tx.NewSelect().Model(e).Where("id = ?", d.WebhookEndpointID).For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("lock endpoint %s: %w", d.WebhookEndpointID, err)
		}
		now := job.now
		d.AttemptCount++
		a := &Attempt{DeliveryID: d.ID, AttemptNumber: d.AttemptCount, BusinessID: d.BusinessID, URL: job.endpoint.URL,
			AttemptedAt: now, StatusCode: res.status, LatencyMS: int(res.latency / time.Millisecond),
			ResponseExcerpt: res.excerpt, Error: res.errText(), Succeeded: res.ok()}
		if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
			return fmt.Errorf("log attempt: %w", err)
		}
		d.Updated = now
		pending := d.Status == DeliveryPending
		switch {
		case res.ok():
			if pending {
				d.Status, d.NextAttemptAt = DeliverySucceeded, nil
			}
			e.FailingSince = nil
		default:
			if e.FailingSince == nil {
				e.FailingSince = &now
			}
			if pending {
				if next, ok := NextAttempt(d.Created, d.AttemptCount, now); ok {
					d.NextAttemptAt = &next
				} else {
					d.Status, d.NextAttemptAt = DeliveryFailed, nil
				}
			}
		}
		if _, err := tx.NewUpdate().Model(d).WherePK().Column("status", "attempt_count", "next_attempt_at", "updated").Exec(ctx); err != nil {
			return fmt.Errorf("update delivery %s: %w", d.ID, err)
		}
		if !res.ok() && e.Status == StatusEnabled && e.DeletedAt == nil && now.Sub(*e.FailingSince) >= RetryWindow {
			return s.disableFailing(ctx, tx, e, d, now)
		}
		_, err := tx.NewUpdate().Model(e).WherePK().Column("failing_since").Exec(ctx)
		return err
	})
}

// disableFailing disables an endpoint that has failed for 3 days: the
// delivery just tried fails, the others are cancelled, and
// webhook_endpoint.disabled tells the business's other endpoints.
func (s *Service) disableFailing(ctx context.Context, tx bun.Tx, e *Endpoint, d *Delivery, now time.Time) error {
	reason := DisabledFailing
	e.Status, e.DisabledReason, e.DisabledAt, e.Updated = StatusDisabled, &reason, &now, now
	if _, err := tx.NewUpdate().Model(e).WherePK().Column("status", "disabled_reason", "disabled_at", "failing_since", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("disable endpoint %s: %w", e.ID, err)
	}
	if d.Status == DeliveryPending {
		if _, err := tx.NewUpdate().Model(d).WherePK().Set("status = ?", DeliveryFailed).Set("next_attempt_at = NULL").Exec(ctx); err != nil {
			return fmt.Errorf("fail delivery %s: %w", d.ID, err)
		}
	}
	if err := cancelPending(ctx, tx, e.ID, now); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, e.BusinessID, outbox.WebhookEndpointDisabled, now, e); err != nil {
		return err
	}
	s.log.Warn("webhook endpoint disabled: every attempt failed for 3 days", "business_id", e.BusinessID, "webhook_endpoint_id", e.ID)
	return nil
}
