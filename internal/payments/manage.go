package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// Get returns the business's payment request id, or DATA_NOT_FOUND (also
// for a malformed id and for another business's request).
func (s *Service) Get(ctx context.Context, db bun.IDB, businessID, id string) (*PaymentRequest, error) {
	return s.get(ctx, db, businessID, id, false)
}

// GetToken returns the business's payment token id, or DATA_NOT_FOUND.
func (s *Service) GetToken(ctx context.Context, db bun.IDB, businessID, id string) (*PaymentToken, error) {
	return getToken(ctx, db, businessID, id, false)
}

// Tokens returns those of the business's payment tokens ids that exist,
// by id, with one query.
func (s *Service) Tokens(ctx context.Context, db bun.IDB, businessID string, ids []string) (map[string]*PaymentToken, error) {
	return tokensByID(ctx, db, businessID, ids)
}

func forbidden(format string, args ...any) error {
	return billing.Errorf(billing.EFORBIDDEN, billing.ReasonForbidden, format, args...)
}

// providerRefusal turns a provider's refusal into a 403 naming it; other
// errors (the provider did not answer) are returned as they are, so the
// request fails with 500 and changes nothing.
func providerRefusal(err error, what string) error {
	if e, ok := providers.AsError(err); ok && e.Kind != providers.KindTransient {
		return forbidden("the payment provider (%s) could not %s: %s", e.Provider, what, e.Message)
	}
	return err
}

// Cancel cancels a payment request that waits for the customer
// (REQUIRES_ACTION), at the provider first and then in tx (the API
// request's transaction). Any other status is 403.
func (s *Service) Cancel(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id string) (*PaymentRequest, error) {
	pr, err := s.get(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	if pr.Status != StatusRequiresAction {
		return nil, forbidden("only a payment request in REQUIRES_ACTION can be cancelled; this one is %s", pr.APIStatus())
	}
	cfg, err := s.config(ctx, tx, biz)
	if err != nil {
		return nil, err
	}
	prov, err := s.provider(pr.Provider)
	if err != nil {
		return nil, err
	}
	ref := providers.PaymentRef{BusinessID: biz.ID, IdempotencyKey: pr.ProviderKey, ProviderRef: deref(pr.ProviderRef), Now: now}
	if err := prov.CancelPayment(ctx, cfg, ref); err != nil {
		return nil, providerRefusal(err, "cancel the payment request")
	}
	if _, err := s.apply(ctx, tx, pr, providers.Result{Status: providers.StatusCanceled}, now); err != nil {
		return nil, err
	}
	return pr, nil
}

// CancelToken makes an ACTIVE token unusable, at the provider and then in
// tx; cancelling a CANCELED token again returns it unchanged. An EXPIRED
// token is 403.
func (s *Service) CancelToken(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id string) (*PaymentToken, error) {
	tok, err := getToken(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	switch tok.Status {
	case TokenCanceled:
		return tok, nil
	case TokenActive:
	default:
		return nil, forbidden("only an ACTIVE token can be cancelled; this one is %s", tok.Status)
	}
	cfg, err := s.config(ctx, tx, biz)
	if err != nil {
		return nil, err
	}
	prov, err := s.provider(tok.Provider)
	if err != nil {
		return nil, err
	}
	if err := prov.CancelToken(ctx, cfg, tok.ProviderTokenRef); err != nil {
		return nil, providerRefusal(err, "cancel the payment token")
	}
	tok.Status, tok.Updated = TokenCanceled, truncate(now)
	if _, err := tx.NewUpdate().Model(tok).Column("status", "updated").WherePK().Exec(ctx); err != nil {
		return nil, fmt.Errorf("cancel payment token %s: %w", id, err)
	}
	return tok, nil
}

// SimulateResult is the answer to a simulation (Xendit's): the payment is
// being processed and its outcome arrives by callback.
type SimulateResult struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Simulate plays the customer of a sandbox business's payment request
// that waits for them (REQUIRES_ACTION): it completes the provider's
// page as if they paid p.Amount (by default the request's amount). The
// outcome, decided by the sandbox's test amounts, arrives by callback.
// A live business, a request of another provider or in another status is 403.
func (s *Service) Simulate(ctx context.Context, db bun.IDB, biz *business.Business, now time.Time, id string, p SimulateParams) (SimulateResult, error) {
	if !biz.Sandbox() {
		return SimulateResult{}, forbidden("simulate is for sandbox businesses; a live business's customers pay for real")
	}
	pr, err := s.get(ctx, db, biz.ID, id, false)
	if err != nil {
		return SimulateResult{}, err
	}
	if pr.Provider != string(providers.Sandbox) {
		return SimulateResult{}, forbidden("only payment requests of the sandbox provider can be simulated; this one went to %s", pr.Provider)
	}
	if pr.Status != StatusRequiresAction {
		return SimulateResult{}, forbidden("only a payment request in REQUIRES_ACTION waits for the customer; this one is %s", pr.APIStatus())
	}
	amount := pr.Amount()
	if p.Amount != nil {
		if amount, err = billing.NewMoney("amount", p.Amount.Decimal, amount.Currency); err != nil {
			return SimulateResult{}, err
		}
	}
	prov, err := s.provider(pr.Provider)
	if err != nil {
		return SimulateResult{}, err
	}
	sim, ok := prov.(providers.Simulator)
	if !ok {
		return SimulateResult{}, fmt.Errorf("payments: provider %s cannot simulate", pr.Provider)
	}
	cfg, err := s.config(ctx, db, biz)
	if err != nil {
		return SimulateResult{}, err
	}
	ref := providers.PaymentRef{BusinessID: biz.ID, IdempotencyKey: pr.ProviderKey, ProviderRef: deref(pr.ProviderRef), Now: now}
	if err := sim.Simulate(ctx, cfg, ref, amount); err != nil {
		return SimulateResult{}, providerRefusal(err, "simulate the payment")
	}
	return SimulateResult{Status: StatusPending,
		Message: "The customer's payment is being simulated; its result arrives by callback (payment.capture or payment.failure)."}, nil
}
