package payments

import (
	"context"
	"errors"
	"fmt"

	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/providers"
)

// ReconcileDue settles up to limit payment requests whose check is due by
// their business's clock (SPEC §5.3): requests still not final 15 minutes
// after they were sent, then at doubling intervals up to six hours. It
// returns how many it looked at. One request's failure is logged and does
// not stop the others.
func (s *Service) ReconcileDue(ctx context.Context, limit int) (int, error) {
	var due []struct {
		ID         string `bun:"id"`
		BusinessID string `bun:"business_id"`
	}
	err := s.db.NewRaw(`SELECT pr.id, pr.business_id FROM payment_requests AS pr
		JOIN businesses AS b ON b.id = pr.business_id
		WHERE pr.next_check_at IS NOT NULL AND pr.next_check_at <= coalesce(b.sandbox_now, ?)
		ORDER BY pr.next_check_at LIMIT ?`, s.clock.Now(), limit).Scan(ctx, &due)
	if err != nil {
		return 0, fmt.Errorf("find payment requests to reconcile: %w", err)
	}
	for _, d := range due {
		if err := s.Reconcile(ctx, d.BusinessID, d.ID); err != nil {
			s.log.Warn("reconcile payment request", "payment_request_id", d.ID, "error", err.Error())
		}
	}
	return len(due), nil
}

// Reconcile asks the provider about one payment request whose check is
// due, and settles it through the same state machine as callbacks. A
// request whose sending was cut short (SENDING) is sent again with its
// provider key, which makes the provider answer what it did the first time
// (or do it now, if the first call never arrived); any other is looked up.
// When nothing changed, or the provider could not be asked (the error is
// returned), the next check is scheduled later.
func (s *Service) Reconcile(ctx context.Context, businessID, id string) error {
	biz, now, err := s.businessNow(ctx, s.db, businessID)
	if err != nil {
		return err
	}
	pr, err := s.get(ctx, s.db, businessID, id, false)
	if err != nil {
		return err
	}
	if pr.NextCheckAt == nil || pr.NextCheckAt.After(now) {
		return nil
	}
	before := pr.Status
	var after *PaymentRequest
	var askErr error
	if pr.Status == StatusSending {
		after, askErr = s.send(ctx, biz, pr, now, false)
	} else {
		after, askErr = s.lookup(ctx, biz, pr, now)
	}
	if after != nil && (after.Status != before || after.Final()) {
		return nil
	}
	// Nothing changed (or the provider could not be asked): ask again later,
	// so that a request that keeps failing never holds up the others.
	if after != nil {
		pr = after
	}
	_, err = s.db.NewUpdate().Model((*PaymentRequest)(nil)).
		Set("checks = checks + 1").Set("next_check_at = ?", nextCheck(now, pr.Checks+1)).
		Where("id = ?", pr.ID).Where("status = ?", before).Where("next_check_at IS NOT NULL").Exec(ctx)
	if err != nil {
		return fmt.Errorf("schedule the next check of %s: %w", pr.ID, err)
	}
	return askErr
}

// lookup asks the provider for the state of a request it accepted and
// records the answer. A provider that does not know the request, or does
// not answer, changes nothing; the request is asked about again later.
func (s *Service) lookup(ctx context.Context, biz *business.Business, pr *PaymentRequest, now time.Time) (*PaymentRequest, error) {
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return pr, err
	}
	prov, err := s.provider(pr.Provider)
	if err != nil {
		return pr, err
	}
	ref := providers.PaymentRef{BusinessID: pr.BusinessID, IdempotencyKey: pr.ProviderKey, Now: now}
	if pr.ProviderRef != nil {
		ref.ProviderRef = *pr.ProviderRef
	}
	res, err := prov.GetPayment(ctx, cfg, ref)
	if errors.Is(err, providers.ErrNotFound) {
		return pr, fmt.Errorf("%s has no payment request %s", pr.Provider, pr.ProviderKey)
	}
	if err != nil {
		return pr, err
	}
	return s.record(ctx, pr.BusinessID, pr.ID, res, now)
}
