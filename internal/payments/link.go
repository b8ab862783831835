package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// LinkParams asks to save a customer's payment method without charging
// them: a Pay and Save of amount 0, as the engine starts it from a plan's
// authorization page.
type LinkParams struct {
	CustomerID  string
	Country     string
	ChannelCode string
	ReferenceID string
	Description *string
	// Metadata is passed to the provider; the saved token inherits it.
	Metadata map[string]json.RawMessage
	// SuccessReturnURL and FailureReturnURL are where the provider's page
	// sends the customer back.
	SuccessReturnURL string
	FailureReturnURL string
	// IdempotencyKey is the provider idempotency key, unique per business.
	// Linking again with the same key returns the same payment request
	// (resuming it when it was cut short), whatever the other parameters.
	IdempotencyKey string
}

// Link creates a PAY_AND_SAVE payment request of amount 0 in the country's
// currency with the business's provider and asks the provider, like
// Create; a repeat with the same key returns the request so far. When the
// customer completes it, the request SUCCEEDED saves an ACTIVE token (and
// SettledFunc sees it); nothing is charged. A live business without a
// provider is 403; a bad channel or URL is a validation error; a provider
// that refuses leaves the request FAILED with its failure code.
func (s *Service) Link(ctx context.Context, biz *business.Business, now time.Time, p LinkParams) (*PaymentRequest, error) {
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return nil, err
	}
	if cfg.Active == "" {
		return nil, errNoProvider
	}
	currency, ok := providers.CurrencyOf(p.Country)
	var v billing.Validation
	if v.Check(ok, "country", "must be one of the payment countries") {
		checkChannel(&v, p.Country, p.ChannelCode)
	}
	v.Check(p.IdempotencyKey != "" && len(p.IdempotencyKey) <= 255, "idempotency_key", "must be 1 to 255 characters")
	v.Check(validURL(p.SuccessReturnURL), "success_return_url", "must be an absolute http or https URL of at most 2048 characters")
	v.Check(validURL(p.FailureReturnURL), "failure_return_url", "must be an absolute http or https URL of at most 2048 characters")
	checkText(&v, "reference_id", &p.ReferenceID, true, maxReference)
	if err := v.Err(); err != nil {
		return nil, err
	}
	props := map[string]json.RawMessage{}
	for name, u := range map[string]string{"success_return_url": p.SuccessReturnURL, "failure_return_url": p.FailureReturnURL} {
		raw, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		props[name] = raw
	}
	now = truncate(now)
	pr := &PaymentRequest{
		ID: billing.NewID(billing.PrefixPaymentRequest), BusinessID: biz.ID, CustomerID: p.CustomerID, Type: TypePayAndSave,
		ReferenceID: p.ReferenceID, Country: p.Country, Currency: string(currency), RequestAmount: decimal.Zero,
		CaptureMethod: captureMethodAutomatic, ChannelCode: p.ChannelCode, ChannelProperties: props, Description: p.Description,
		Metadata: p.Metadata, Provider: string(cfg.Active), ProviderKey: p.IdempotencyKey,
	}
	var existing bool
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		found := new(PaymentRequest)
		err := tx.NewSelect().Model(found).Where("business_id = ?", biz.ID).Where("provider_key = ?", p.IdempotencyKey).For("UPDATE").Scan(ctx)
		if err == nil {
			if found.Type != TypePayAndSave || found.CustomerID != p.CustomerID {
				return errKeyReused
			}
			pr, existing = found, true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find payment request by provider key: %w", err)
		}
		if _, err := customers.Get(ctx, tx, biz.ID, p.CustomerID); err != nil {
			return err
		}
		return s.insert(ctx, tx, pr, now)
	})
	if err != nil {
		return nil, err
	}
	if existing && pr.Status != StatusSending {
		return pr, nil
	}
	return s.send(ctx, biz, pr, now, false)
}
