package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// Retries: a send that fails for a reason that may pass is tried again
// 1 minute later, then 5, 25 and 125 minutes later (business clock);
// after MaxTries it has failed.
const (
	MaxTries       = 5
	firstRetry     = time.Minute
	retryFactor    = 5
	leaseMargin    = 30 * time.Second
	sweepBatchSize = 1000
)

// NextTry returns when a notification is tried again after its tries-th
// try failed at failedAt, and false when it has had MaxTries.
func NextTry(tries int, failedAt time.Time) (time.Time, bool) {
	if tries >= MaxTries {
		return time.Time{}, false
	}
	d := firstRetry
	for i := 1; i < tries; i++ {
		d *= retryFactor
	}
	return failedAt.Add(d), true
}

// permanentError is a failure that retrying cannot cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// Send sends the queued notification id if it is due by its business's
// clock, and records the outcome: SENT; or, after a failure, due again
// later (NextTry), or FAILED with notification.failed emitted when the
// failure is final or MaxTries are spent. It does nothing for a
// notification that is not due, not QUEUED, or being sent by another
// process (a lease on the row, by the system clock).
func (s *Service) Send(ctx context.Context, id string) error {
	n, now, err := s.claim(ctx, id)
	if err != nil || n == nil {
		return err
	}
	var sendErr error
	switch {
	case !s.configured(n.Channel):
		sendErr = errSkipped
	case n.Channel == ChannelEmail:
		sendErr = s.sendEmail(ctx, n)
	default:
		sendErr = s.sendGateway(ctx, n)
	}
	if sendErr != nil && ctx.Err() != nil {
		// The engine is stopping: the try did not finish, so it is not
		// counted; the lease runs out and the notification is sent later.
		return ctx.Err()
	}
	return s.record(context.WithoutCancel(ctx), n.ID, now, sendErr)
}

// errSkipped: the channel's sender went away since the message was queued
// (another engine process without it took the job).
var errSkipped = errors.New("skipped")

// claim leases the notification when it is QUEUED and due, and returns it
// with its business's clock reading.
func (s *Service) claim(ctx context.Context, id string) (*Notification, time.Time, error) {
	system := s.clock.Now()
	var row struct {
		Notification `bun:",extend"`
		SandboxNow   *time.Time `bun:"sandbox_now"`
	}
	err := s.db.NewRaw(`UPDATE notifications AS n SET lease_until = ?
		FROM businesses AS b
		WHERE n.id = ? AND b.id = n.business_id AND n.status = ?
		AND n.next_try_at <= COALESCE(b.sandbox_now, ?) AND (n.lease_until IS NULL OR n.lease_until < ?)
		RETURNING n.*, b.sandbox_now`, system.Add(s.timeout+leaseMargin), id, StatusQueued, system, system).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("claim notification %s: %w", id, err)
	}
	now := system
	if row.SandboxNow != nil {
		now = row.SandboxNow.UTC()
	}
	return &row.Notification, now.Truncate(time.Microsecond), nil
}

// record stores the outcome of one try made at now (business clock).
func (s *Service) record(ctx context.Context, id string, now time.Time, sendErr error) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		n := new(Notification)
		if err := tx.NewSelect().Model(n).Where("id = ?", id).For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("lock notification %s: %w", id, err)
		}
		if n.Status != StatusQueued {
			return nil
		}
		n.LeaseUntil, n.Updated = nil, now
		var final bool
		switch {
		case sendErr == nil:
			n.Tries++
			n.Status, n.SentAt, n.NextTryAt, n.StatusReason = StatusSent, &now, nil, nil
		case errors.Is(sendErr, errSkipped):
			n.Status, n.NextTryAt, n.StatusReason = StatusSkippedNoChannel, nil, ptr(notConfigured(n.Channel))
		default:
			n.Tries++
			n.StatusReason = ptr(sendErr.Error())
			next, ok := NextTry(n.Tries, now)
			var pe permanentError
			if !ok || errors.As(sendErr, &pe) {
				n.Status, n.NextTryAt, final = StatusFailed, nil, true
			} else {
				n.NextTryAt = &next
			}
		}
		_, err := tx.NewUpdate().Model(n).WherePK().
			Column("status", "status_reason", "tries", "next_try_at", "lease_until", "updated", "sent_at").Exec(ctx)
		if err != nil {
			return fmt.Errorf("update notification %s: %w", id, err)
		}
		if final {
			if _, err := outbox.Emit(ctx, tx, n.BusinessID, outbox.NotificationFailed, now, n); err != nil {
				return err
			}
			s.log.Warn("notification failed", "business_id", n.BusinessID, "notification_id", n.ID, "channel", string(n.Channel), "tries", n.Tries)
		}
		return nil
	})
}

// DueIDs returns queued notifications due by their business's clock and
// not leased, oldest first: those whose trigger was lost, whose retry came
// due, or whose sandbox clock moved. With businessID set, only that
// business's.
func (s *Service) DueIDs(ctx context.Context, businessID string) ([]string, error) {
	var ids []string
	now := s.clock.Now()
	err := s.db.NewRaw(`SELECT n.id FROM notifications AS n JOIN businesses AS b ON b.id = n.business_id
		WHERE n.status = ? AND n.next_try_at <= COALESCE(b.sandbox_now, ?) AND (n.lease_until IS NULL OR n.lease_until < ?)
		AND (? = '' OR n.business_id = ?)
		ORDER BY n.next_try_at, n.id LIMIT ?`, StatusQueued, now, now, businessID, businessID, sweepBatchSize).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("find due notifications: %w", err)
	}
	return ids, nil
}

// NextDue returns when the business's next queued notification is due, by
// its clock, and false when none is queued. Advancing a sandbox clock uses
// it to send notifications in time order.
func (s *Service) NextDue(ctx context.Context, businessID string) (time.Time, bool, error) {
	var at sql.NullTime
	err := s.db.NewRaw("SELECT min(next_try_at) FROM notifications WHERE business_id = ? AND status = ?",
		businessID, StatusQueued).Scan(ctx, &at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due notification: %w", err)
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return at.Time.UTC(), true, nil
}

// SendDue sends every notification of the business due by its clock now,
// oldest first, and returns how many it tried.
func (s *Service) SendDue(ctx context.Context, businessID string) (int, error) {
	ids, err := s.DueIDs(ctx, businessID)
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.Send(ctx, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}
