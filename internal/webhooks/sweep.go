package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// sweepLimit bounds the endpoints one DueEndpoints call returns.
const sweepLimit = 1000

// DueEndpoints returns the endpoints that have deliveries due by their
// business's clock and no live lease: those whose trigger was lost, whose
// retry came due, or whose sandbox clock moved. With businessID set, only
// that business's.
func (s *Service) DueEndpoints(ctx context.Context, businessID string) ([]string, error) {
	var ids []string
	q := s.db.NewRaw(`SELECT DISTINCT d.webhook_endpoint_id FROM webhook_deliveries AS d
		JOIN businesses AS b ON b.id = d.business_id
		JOIN webhook_endpoints AS e ON e.id = d.webhook_endpoint_id
		WHERE d.status = ? AND d.next_attempt_at <= COALESCE(b.sandbox_now, ?)
		AND (e.lease_until IS NULL OR e.lease_until < ?) AND (? = '' OR d.business_id = ?)
		LIMIT ?`, DeliveryPending, s.clock.Now(), s.clock.Now(), businessID, businessID, sweepLimit)
	if err := q.Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("find due deliveries: %w", err)
	}
	return ids, nil
}

// NextDue returns when the business's next pending delivery is due, by its
// clock, and false when none is pending. Advancing a sandbox clock uses it
// to run deliveries in time order.
func (s *Service) NextDue(ctx context.Context, businessID string) (time.Time, bool, error) {
	var at sql.NullTime
	err := s.db.NewRaw("SELECT min(next_attempt_at) FROM webhook_deliveries WHERE business_id = ? AND status = ?",
		businessID, DeliveryPending).Scan(ctx, &at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, fmt.Errorf("next due delivery: %w", err)
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return at.Time.UTC(), true, nil
}

// RunDue sends every delivery of the business due by its clock now,
// endpoint by endpoint, and returns the attempts made. An endpoint another
// process is sending to is left to it.
func (s *Service) RunDue(ctx context.Context, businessID string) (int, error) {
	ids, err := s.DueEndpoints(ctx, businessID)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, id := range ids {
		for {
			n, more, err := s.RunEndpoint(ctx, id)
			total += n
			if err != nil {
				return total, err
			}
			if !more || ctx.Err() != nil {
				break
			}
		}
	}
	return total, ctx.Err()
}
