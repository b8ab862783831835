package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// idempotencyTTL is how long an API request's idempotency key finds the
// payment request it created (real time), as the API keeps its records.
const idempotencyTTL = 24 * time.Hour

var errKeyReused = &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonIdempotency,
	Message: "idempotency key has been used before with a different request"}

// Create creates the payment request of a decoded POST /payment_requests
// body for biz at now (its clock), asks the provider, and returns the
// request as the provider left it. idempotencyKey and body are the API
// request's: when an earlier run of the same request was cut short, Create
// finds what it committed and carries on with the same provider key, so a
// retry never pays twice. A provider that does not answer leaves the
// request PENDING (the reconciler asks again); a provider that refuses the
// request outright (KindInvalid) leaves nothing, and Create returns a 400.
func (s *Service) Create(ctx context.Context, biz *business.Business, now time.Time, p CreateParams, idempotencyKey string, body []byte) (*PaymentRequest, error) {
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return nil, err
	}
	if cfg.Active == "" {
		return nil, errNoProvider
	}
	now = truncate(now)
	hash := sha256.Sum256(body)
	var pr *PaymentRequest
	var existing bool
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if idempotencyKey != "" {
			found, err := s.byIdempotencyKey(ctx, tx, biz.ID, idempotencyKey)
			if err != nil {
				return err
			}
			if found != nil {
				if string(found.RequestHash) != string(hash[:]) {
					return errKeyReused
				}
				pr, existing = found, true
				return nil
			}
		}
		pr = &PaymentRequest{
			ID: billing.NewID(billing.PrefixPaymentRequest), BusinessID: biz.ID, Type: p.Type, ReferenceID: p.ReferenceID,
			Country: p.Country, Currency: string(p.Amount.Currency), RequestAmount: p.Amount.Amount, CaptureMethod: captureMethodAutomatic,
			ChannelCode: p.ChannelCode, ChannelProperties: p.ChannelProperties, Description: p.Description, Metadata: p.Metadata,
			Provider: string(cfg.Active),
		}
		pr.ProviderKey = pr.ID
		if idempotencyKey != "" {
			expires := s.clock.Now().Add(idempotencyTTL)
			pr.IdempotencyKey, pr.RequestHash, pr.IdempotencyExpiresAt = &idempotencyKey, hash[:], &expires
		}
		if p.Type == TypePay {
			if err := s.chargeTarget(ctx, tx, pr, *p.PaymentTokenID, p.CustomerID, p.ChannelCode != ""); err != nil {
				return err
			}
		} else if err := s.payer(ctx, tx, biz.ID, now, pr, p); err != nil {
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
	return s.send(ctx, biz, pr, now, true)
}

// byIdempotencyKey returns the payment request an API request with key
// created in the last 24 hours, or nil. An older request gives its key up,
// so that the key can be used again as the API's convention says.
func (s *Service) byIdempotencyKey(ctx context.Context, tx bun.Tx, businessID, key string) (*PaymentRequest, error) {
	if _, err := tx.NewUpdate().Model((*PaymentRequest)(nil)).
		Set("idempotency_key = NULL, request_hash = NULL, idempotency_expires_at = NULL").
		Where("business_id = ?", businessID).Where("idempotency_key = ?", key).
		Where("idempotency_expires_at <= ?", s.clock.Now()).Exec(ctx); err != nil {
		return nil, fmt.Errorf("release idempotency key: %w", err)
	}
	pr := new(PaymentRequest)
	err := tx.NewSelect().Model(pr).Where("business_id = ?", businessID).Where("idempotency_key = ?", key).For("UPDATE").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find payment request by idempotency key: %w", err)
	}
	return pr, nil
}

// payer sets the customer of a PAY_AND_SAVE: customer_id, which must be
// the business's, or the inline customer, matched by reference_id or
// created.
func (s *Service) payer(ctx context.Context, tx bun.Tx, businessID string, now time.Time, pr *PaymentRequest, p CreateParams) error {
	if p.NewCustomer == nil {
		c, err := customers.Get(ctx, tx, businessID, *p.CustomerID)
		if err != nil {
			return err
		}
		pr.CustomerID = c.ID
		return nil
	}
	// Two requests may create the same customer at once: the loser's insert
	// does nothing, and it finds the winner's customer on a second look.
	for attempt := 0; ; attempt++ {
		list, _, err := customers.List(ctx, tx, businessID, customers.Filter{ReferenceID: p.NewCustomer.ReferenceID, Page: billing.Page{Limit: 1}})
		if err != nil {
			return err
		}
		if len(list) == 1 {
			pr.CustomerID = list[0].ID
			return nil
		}
		c, err := customers.Create(ctx, tx, businessID, now, *p.NewCustomer)
		if billing.CodeOf(err) == billing.ECONFLICT && attempt == 0 {
			continue
		}
		if err != nil {
			return err
		}
		pr.CustomerID = c.ID
		return nil
	}
}

// chargeTarget sets what a PAY charges: the business's ACTIVE token
// tokenID, whose customer, country, currency and channel the request must
// match. Another business's token is not found; another customer's is a
// validation error naming payment_token_id.
func (s *Service) chargeTarget(ctx context.Context, tx bun.Tx, pr *PaymentRequest, tokenID string, customerID *string, channelGiven bool) error {
	tok, err := getToken(ctx, tx, pr.BusinessID, tokenID, false)
	if err != nil {
		return err
	}
	return target(pr, tok, customerID, channelGiven)
}

// target is chargeTarget with the token read.
func target(pr *PaymentRequest, tok *PaymentToken, customerID *string, channelGiven bool) error {
	var v billing.Validation
	if customerID != nil && *customerID != "" && *customerID != tok.CustomerID {
		v.Add("payment_token_id", "belongs to another customer than customer_id")
	}
	v.Check(tok.Status == TokenActive, "payment_token_id", "is "+tok.Status+"; only an ACTIVE token can be charged")
	v.Check(pr.Country == tok.Country, "country", "must be the token's country, "+tok.Country)
	v.Check(pr.Currency == tok.Currency, "currency", "must be the token's currency, "+tok.Currency)
	v.Check(!channelGiven || pr.ChannelCode == tok.ChannelCode, "channel_code", "must be the token's channel, "+tok.ChannelCode)
	if err := v.Err(); err != nil {
		return err
	}
	pr.CustomerID, pr.PaymentTokenID, pr.ChannelCode, pr.Provider = tok.CustomerID, &tok.ID, tok.ChannelCode, tok.Provider
	return nil
}

// insert stores a new payment request in SENDING, due for the reconciler
// 15 minutes from now in case its answer is never recorded.
func (s *Service) insert(ctx context.Context, tx bun.Tx, pr *PaymentRequest, now time.Time) error {
	pr.sending(now)
	_, err := tx.NewInsert().Model(pr).Exec(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonIdempotency,
			Message: "a payment request with this idempotency key is being created; retry the request"}
	}
	if err != nil {
		return fmt.Errorf("insert payment request: %w", err)
	}
	return nil
}

// sending makes pr a new request in SENDING at now.
func (pr *PaymentRequest) sending(now time.Time) {
	pr.Status = StatusSending
	pr.Actions = []providers.Action{}
	pr.NextCheckAt = ptr(nextCheck(now, 0))
	pr.Created, pr.Updated = now, now
}

// ChargeParams asks for a charge of a saved token, as the engine charges
// cycles.
type ChargeParams struct {
	PaymentTokenID string
	Amount         billing.Money
	ReferenceID    string
	Description    *string
	// IdempotencyKey is the provider idempotency key, unique per business:
	// "<cycle id>/<attempt>/<action>" for cycle charges. Charging again with
	// the same key returns the same payment request (resuming it when it
	// was cut short) and never charges twice.
	IdempotencyKey string
}

// validate checks what a charge needs before any token is read.
func (p *ChargeParams) validate() error {
	var v billing.Validation
	v.Check(p.IdempotencyKey != "" && len(p.IdempotencyKey) <= 255, "idempotency_key", "must be 1 to 255 characters")
	if _, err := billing.NewMoney("amount", p.Amount.Amount, p.Amount.Currency); err != nil {
		v.Merge("amount", err)
	}
	v.Check(p.Amount.Amount.Sign() > 0, "amount", "must be greater than 0")
	checkText(&v, "reference_id", &p.ReferenceID, true, maxReference)
	return v.Err()
}

// sameAs reports whether found, the request stored under p's key, is the
// charge p asks for (the same token and amount), so that p resumes it
// rather than reusing its key for another charge.
func (p *ChargeParams) sameAs(found *PaymentRequest) bool {
	return found.PaymentTokenID != nil && *found.PaymentTokenID == p.PaymentTokenID && found.Amount().Equal(p.Amount)
}

// request is the new PAY request of business businessID that charges tok
// for p, not yet stored; an error when tok cannot be charged for it.
func (p *ChargeParams) request(businessID string, tok *PaymentToken) (*PaymentRequest, error) {
	pr := &PaymentRequest{
		ID: billing.NewID(billing.PrefixPaymentRequest), BusinessID: businessID, Type: TypePay, ReferenceID: p.ReferenceID,
		Country: tok.Country, Currency: string(p.Amount.Currency), RequestAmount: p.Amount.Amount, CaptureMethod: captureMethodAutomatic,
		Description: p.Description, ProviderKey: p.IdempotencyKey,
	}
	return pr, target(pr, tok, nil, false)
}

// Charge creates a PAY payment request for p and asks the provider,
// like Create; a repeat with the same key returns the request so far.
// A request that is PENDING afterwards is settled later by callback or by
// the reconciler. Charge returns the business's validation errors for a
// token that is not ACTIVE or does not fit the amount's currency.
func (s *Service) Charge(ctx context.Context, biz *business.Business, now time.Time, p ChargeParams) (*PaymentRequest, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	now = truncate(now)
	var pr *PaymentRequest
	var existing bool
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		found := new(PaymentRequest)
		err := tx.NewSelect().Model(found).Where("business_id = ?", biz.ID).Where("provider_key = ?", p.IdempotencyKey).For("UPDATE").Scan(ctx)
		if err == nil {
			if !p.sameAs(found) {
				return errKeyReused
			}
			pr, existing = found, true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find payment request by provider key: %w", err)
		}
		tok, err := getToken(ctx, tx, biz.ID, p.PaymentTokenID, false)
		if err != nil {
			return err
		}
		if pr, err = p.request(biz.ID, tok); err != nil {
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

// PaymentLinkParams asks for a hosted page where a customer pays an
// amount owed.
type PaymentLinkParams struct {
	CustomerID  string
	Country     string
	Amount      billing.Money
	ReferenceID string
	Description *string
	LineItems   []providers.LineItem
	SuccessURL  string
	CancelURL   string
	// ChannelCode is the channel to pay with, for providers whose links go
	// to one channel (Xendit); empty lets the provider choose.
	ChannelCode string
	// IdempotencyKey is the provider idempotency key, unique per business.
	IdempotencyKey string
}

// linkChannel is the channel code of a payment link whose provider has
// not yet said which channel it uses.
const linkChannel = "PAYMENT_LINK"

// CreatePaymentLink creates a PAY payment request paid on a hosted page of
// the business's provider, REQUIRES_ACTION with the page in actions once
// the provider answered. Its outcome comes by callback or reconciler, as
// for any payment request; nothing is saved.
func (s *Service) CreatePaymentLink(ctx context.Context, biz *business.Business, now time.Time, p PaymentLinkParams) (*PaymentRequest, error) {
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return nil, err
	}
	if cfg.Active == "" {
		return nil, errNoProvider
	}
	if want, ok := providers.CurrencyOf(p.Country); !ok || want != p.Amount.Currency {
		return nil, billing.Invalid("currency", "must be the currency of country "+p.Country)
	}
	var v billing.Validation
	v.Check(p.Amount.Amount.Sign() > 0, "amount", "must be greater than 0")
	if _, err := billing.NewMoney("amount", p.Amount.Amount, p.Amount.Currency); err != nil {
		v.Merge("amount", err)
	}
	v.Check(p.IdempotencyKey != "" && len(p.IdempotencyKey) <= 255, "idempotency_key", "must be 1 to 255 characters")
	v.Check(validURL(p.SuccessURL), "success_url", "must be an absolute http or https URL")
	v.Check(validURL(p.CancelURL), "cancel_url", "must be an absolute http or https URL")
	checkText(&v, "reference_id", &p.ReferenceID, true, maxReference)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now = truncate(now)
	channel := p.ChannelCode
	if channel == "" {
		channel = linkChannel
	}
	props, err := linkProperties(p)
	if err != nil {
		return nil, err
	}
	pr := &PaymentRequest{
		ID: billing.NewID(billing.PrefixPaymentRequest), BusinessID: biz.ID, CustomerID: p.CustomerID, Type: TypePay,
		ReferenceID: p.ReferenceID, Country: p.Country, Currency: string(p.Amount.Currency), RequestAmount: p.Amount.Amount,
		CaptureMethod: captureMethodAutomatic, ChannelCode: channel, ChannelProperties: props, Description: p.Description,
		PaymentLink: true, Provider: string(cfg.Active), ProviderKey: p.IdempotencyKey,
	}
	var existing bool
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		found := new(PaymentRequest)
		err := tx.NewSelect().Model(found).Where("business_id = ?", biz.ID).Where("provider_key = ?", p.IdempotencyKey).Scan(ctx)
		if err == nil {
			pr, existing = found, true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
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
