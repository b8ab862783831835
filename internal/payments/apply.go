package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// rank orders the statuses a payment request moves through; a request only
// ever moves to a higher rank. So a late or repeated answer never moves it
// backwards (no PENDING after SUCCEEDED, no FAILED after SUCCEEDED), and
// SUCCEEDED, the record that money was taken, beats everything: a capture
// reported after a failure, cancellation or expiry is still recorded.
func rank(status string) int {
	switch status {
	case StatusSending:
		return 0
	case StatusRequiresAction:
		return 1
	case StatusPending:
		return 2
	case StatusFailed, StatusCanceled, StatusExpired:
		return 3
	case StatusSucceeded:
		return 4
	}
	return -1
}

// apply records a provider's answer on pr, which tx has locked, at now
// (the business clock). It is the one state machine behind synchronous
// answers, callbacks and the reconciler. A success records the payment,
// saves the token of a Pay and Save (with the customer's consent) and emits
// payment.capture and payment_token.activation; a failure records the
// failed payment and emits payment.failure; all in tx. It reports whether
// pr changed.
func (s *Service) apply(ctx context.Context, tx bun.IDB, pr *PaymentRequest, res providers.Result, now time.Time) (bool, error) {
	now = truncate(now)
	changed := s.noteAnswer(pr, res)
	to := string(res.Status)
	if rank(to) <= rank(pr.Status) {
		if changed {
			return true, s.save(ctx, tx, pr)
		}
		return false, nil
	}
	if pr.Status == StatusFailed || pr.Status == StatusCanceled || pr.Status == StatusExpired {
		s.log.Warn("provider reports a capture after the payment request ended; recording the payment",
			"payment_request_id", pr.ID, "status", pr.Status)
	}
	var tok *PaymentToken
	switch to {
	case StatusRequiresAction:
		pr.Actions = res.Actions
		pr.NextCheckAt, pr.Checks = ptr(nextCheck(now, 0)), 0
	case StatusPending:
		pr.NextCheckAt, pr.Checks = ptr(nextCheck(now, 0)), 0
	case StatusSucceeded:
		var err error
		if tok, err = s.succeed(ctx, tx, pr, res, now); err != nil {
			return false, err
		}
	case StatusFailed:
		if err := s.fail(ctx, tx, pr, res, now); err != nil {
			return false, err
		}
	case StatusCanceled, StatusExpired:
	default:
		return false, fmt.Errorf("payment request %s: provider answered unknown status %q", pr.ID, to)
	}
	pr.moveTo(to, now)
	if err := s.save(ctx, tx, pr); err != nil {
		return false, err
	}
	if pr.Final() && s.cfg.SettledFunc != nil {
		if err := s.cfg.SettledFunc(ctx, tx, pr, tok, now); err != nil {
			return false, fmt.Errorf("payment request %s settled: %w", pr.ID, err)
		}
	}
	return true, nil
}

// noteAnswer records on pr what an answer res says besides its status:
// the provider's id of the request (the first one given is kept), the
// channel a payment link's provider chose, and a link's expiry. It
// reports whether pr changed.
func (s *Service) noteAnswer(pr *PaymentRequest, res providers.Result) bool {
	changed := false
	if res.ProviderRef != "" {
		switch {
		case pr.ProviderRef == nil:
			pr.ProviderRef, changed = &res.ProviderRef, true
		case *pr.ProviderRef != res.ProviderRef:
			s.log.Warn("provider answered with another id for a payment request; keeping the first",
				"payment_request_id", pr.ID, "provider_ref", *pr.ProviderRef, "answered", res.ProviderRef)
		}
	}
	if pr.PaymentLink && pr.ChannelCode == linkChannel && res.ChannelCode != "" {
		pr.ChannelCode, changed = res.ChannelCode, true
	}
	if res.ExpiresAt != nil && (pr.ExpiresAt == nil || !pr.ExpiresAt.Equal(*res.ExpiresAt)) {
		pr.ExpiresAt, changed = ptr(truncate(*res.ExpiresAt)), true
	}
	return changed
}

// moveTo sets pr's status to at now; a final request is no longer
// checked and has nothing left for the customer to do.
func (pr *PaymentRequest) moveTo(status string, now time.Time) {
	pr.Status = status
	if pr.Final() {
		pr.NextCheckAt = nil
		pr.Actions = []providers.Action{}
	}
	pr.Updated = now
}

func (s *Service) save(ctx context.Context, tx bun.IDB, pr *PaymentRequest) error {
	if pr.Actions == nil {
		pr.Actions = []providers.Action{}
	}
	_, err := tx.NewUpdate().Model(pr).WherePK().
		Column("status", "failure_code", "actions", "latest_payment_id", "payment_token_id", "provider_ref",
			"channel_code", "next_check_at", "checks", "expires_at", "updated").Exec(ctx)
	if err != nil {
		return fmt.Errorf("update payment request %s: %w", pr.ID, err)
	}
	return nil
}

// succeed records the captured payment of pr and, for a Pay and Save, the
// token it saved (which it returns); then emits payment.capture (carrying
// payment_token_id) and payment_token.activation.
func (s *Service) succeed(ctx context.Context, tx bun.IDB, pr *PaymentRequest, res providers.Result, now time.Time) (*PaymentToken, error) {
	var tok *PaymentToken
	if pr.Type == TypePayAndSave && pr.PaymentTokenID == nil {
		if res.TokenRef == "" {
			s.log.Error("provider reported a Pay and Save captured without a token; no token saved", "payment_request_id", pr.ID)
		} else {
			tok = &PaymentToken{
				ID: billing.NewID(billing.PrefixPaymentToken), BusinessID: pr.BusinessID, CustomerID: pr.CustomerID,
				ReferenceID: pr.ReferenceID, Provider: pr.Provider, ProviderTokenRef: res.TokenRef, Country: pr.Country,
				Currency: pr.Currency, ChannelCode: pr.ChannelCode, Status: TokenActive, Description: pr.Description,
				Metadata: pr.Metadata, ConsentedAt: now, ConsentChannelCode: pr.ChannelCode, ConsentPaymentRequestID: pr.ID,
				Created: now, Updated: now,
			}
			if _, err := tx.NewInsert().Model(tok).Exec(ctx); err != nil {
				return nil, fmt.Errorf("save payment token: %w", err)
			}
			pr.PaymentTokenID = &tok.ID
		}
	}
	py, err := s.payment(ctx, tx, pr, res, now)
	if err != nil {
		return nil, err
	}
	captured(pr, py, now)
	if err := s.savePayment(ctx, tx, py); err != nil {
		return nil, err
	}
	if _, err := outbox.Emit(ctx, tx, pr.BusinessID, outbox.PaymentCapture, now, newPaymentEvent(pr, py)); err != nil {
		return nil, err
	}
	if tok != nil {
		if _, err := outbox.Emit(ctx, tx, pr.BusinessID, outbox.PaymentTokenActivation, now, tok); err != nil {
			return nil, err
		}
	}
	return tok, nil
}

// fail records the failed payment of pr and emits payment.failure.
func (s *Service) fail(ctx context.Context, tx bun.IDB, pr *PaymentRequest, res providers.Result, now time.Time) error {
	py, err := s.payment(ctx, tx, pr, res, now)
	if err != nil {
		return err
	}
	declined(pr, py, res)
	if err := s.savePayment(ctx, tx, py); err != nil {
		return err
	}
	_, err = outbox.Emit(ctx, tx, pr.BusinessID, outbox.PaymentFailure, now, newPaymentEvent(pr, py))
	return err
}

// payment returns pr's payment, locked, or a new one (not yet stored).
func (s *Service) payment(ctx context.Context, tx bun.IDB, pr *PaymentRequest, res providers.Result, now time.Time) (*Payment, error) {
	py := new(Payment)
	err := tx.NewSelect().Model(py).Where("payment_request_id = ?", pr.ID).For("UPDATE").Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return newPayment(pr, res, now), nil
	case err != nil:
		return nil, fmt.Errorf("read payment: %w", err)
	}
	py.refresh(pr, res, now)
	return py, nil
}

// newPayment is the first payment of pr, which the answer res settles at
// now, not yet stored.
func newPayment(pr *PaymentRequest, res providers.Result, now time.Time) *Payment {
	py := &Payment{ID: billing.NewID(billing.PrefixPayment), BusinessID: pr.BusinessID, PaymentRequestID: pr.ID,
		CustomerID: pr.CustomerID, Currency: pr.Currency, Amount: pr.RequestAmount, ChannelCode: pr.ChannelCode, Created: now}
	py.refresh(pr, res, now)
	return py
}

// refresh brings payment py of pr up to the answer res at now.
func (py *Payment) refresh(pr *PaymentRequest, res providers.Result, now time.Time) {
	py.PaymentTokenID = pr.PaymentTokenID
	if res.PaymentRef != "" {
		py.ProviderPaymentRef = &res.PaymentRef
	}
	py.Updated = now
}

// captured makes py the captured payment of pr, at now.
func captured(pr *PaymentRequest, py *Payment, now time.Time) {
	py.Status, py.FailureCode = StatusSucceeded, nil
	py.CaptureID, py.CapturedAt = ptr(billing.NewID(prefixCapture)), &now
	pr.LatestPaymentID, pr.FailureCode = &py.ID, nil
}

// declined makes py the failed payment of pr, with the failure code of
// the answer res (PAYMENT_FAILED when it gives none).
func declined(pr *PaymentRequest, py *Payment, res providers.Result) {
	code := res.FailureCode
	if code == "" {
		code = "PAYMENT_FAILED"
	}
	py.Status, py.FailureCode = StatusFailed, &code
	pr.LatestPaymentID, pr.FailureCode = &py.ID, &code
}

func (s *Service) savePayment(ctx context.Context, tx bun.IDB, py *Payment) error {
	_, err := tx.NewInsert().Model(py).On("CONFLICT (id) DO UPDATE").
		Set("status = EXCLUDED.status, failure_code = EXCLUDED.failure_code, payment_token_id = EXCLUDED.payment_token_id, " +
			"provider_payment_ref = EXCLUDED.provider_payment_ref, capture_id = EXCLUDED.capture_id, " +
			"captured_at = EXCLUDED.captured_at, updated = EXCLUDED.updated").Exec(ctx)
	if err != nil {
		return fmt.Errorf("save payment: %w", err)
	}
	return nil
}

// get returns the business's payment request id, locked when forUpdate,
// or DATA_NOT_FOUND.
func (s *Service) get(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*PaymentRequest, error) {
	if !billing.ValidID(billing.PrefixPaymentRequest, id) {
		return nil, billing.NotFound("payment request")
	}
	pr := new(PaymentRequest)
	q := db.NewSelect().Model(pr).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("payment request")
	}
	if err != nil {
		return nil, fmt.Errorf("get payment request %s: %w", id, err)
	}
	return pr, nil
}

// getToken returns the business's payment token id, or DATA_NOT_FOUND
// (also for another business's token).
func getToken(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*PaymentToken, error) {
	if !billing.ValidID(billing.PrefixPaymentToken, id) {
		return nil, billing.NotFound("payment token")
	}
	t := new(PaymentToken)
	q := db.NewSelect().Model(t).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("payment token")
	}
	if err != nil {
		return nil, fmt.Errorf("get payment token %s: %w", id, err)
	}
	return t, nil
}
