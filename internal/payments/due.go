package payments

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// NextDue returns the earliest time, by the business's clock, at which the
// payment service has work for the business: a sandbox callback to deliver
// or a payment request to reconcile. ok is false when there is none. The
// sandbox clock's advance uses it to run the business's work in time order.
func (s *Service) NextDue(ctx context.Context, businessID string) (t time.Time, ok bool, err error) {
	var at sql.NullTime
	if err := s.db.NewRaw(`SELECT min(next_check_at) FROM payment_requests WHERE business_id = ? AND next_check_at IS NOT NULL`,
		businessID).Scan(ctx, &at); err != nil {
		return time.Time{}, false, fmt.Errorf("next payment check: %w", err)
	}
	if at.Valid {
		t, ok = at.Time.UTC(), true
	}
	if src, err := s.sandboxSource(); err == nil {
		cb, cbOK, err := src.NextDue(ctx, businessID)
		if err != nil {
			return time.Time{}, false, err
		}
		if cbOK && (!ok || cb.Before(t)) {
			t, ok = cb, true
		}
	}
	return t, ok, nil
}

// RunDue does the business's payment work due by its clock: it delivers the
// sandbox callbacks due and reconciles the payment requests whose check is
// due. It returns how many items it handled; one request's failure is logged
// and does not stop the others.
func (s *Service) RunDue(ctx context.Context, businessID string) (int, error) {
	_, now, err := s.businessNow(ctx, s.db, businessID)
	if err != nil {
		return 0, err
	}
	n := 0
	if _, err := s.sandboxSource(); err == nil {
		delivered, err := s.DeliverSandboxCallbacks(ctx, businessID, now)
		if err != nil {
			return n, err
		}
		n += delivered
	}
	var ids []string
	if err := s.db.NewRaw(`SELECT id FROM payment_requests WHERE business_id = ? AND next_check_at IS NOT NULL AND next_check_at <= ?
		ORDER BY next_check_at, id`, businessID, now).Scan(ctx, &ids); err != nil {
		return n, fmt.Errorf("find payment requests to reconcile: %w", err)
	}
	for _, id := range ids {
		if err := s.Reconcile(ctx, businessID, id); err != nil {
			s.log.Warn("reconcile payment request", "payment_request_id", id, "error", err.Error())
		}
		n++
	}
	return n, nil
}
