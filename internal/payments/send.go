package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// send asks the provider to carry out pr, which is committed in SENDING
// with its provider key, and records the answer. It is how a request is
// first sent and how a request cut short is resumed (the same key makes
// the provider return its first answer). A transient failure leaves pr in
// SENDING for the reconciler. A refusal (KindInvalid) of a request the API
// is creating (fromAPI) deletes it, so that the 400 changes nothing;
// otherwise it fails the request.
func (s *Service) send(ctx context.Context, biz *business.Business, pr *PaymentRequest, now time.Time, fromAPI bool) (*PaymentRequest, error) {
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return nil, err
	}
	prov, err := s.provider(pr.Provider)
	if err != nil {
		return nil, err
	}
	res, err := s.call(ctx, prov, cfg, pr, now)
	if s.cfg.AfterProviderCallFunc != nil {
		if herr := s.cfg.AfterProviderCallFunc(ctx, pr.ID); herr != nil {
			return nil, herr
		}
	}
	if e, ok := providers.AsError(err); ok && e.Kind == providers.KindInvalid && fromAPI {
		return nil, s.discard(ctx, pr, e)
	}
	res, ok := s.answer(pr, res, err)
	if !ok {
		return s.get(ctx, s.db, pr.BusinessID, pr.ID, false)
	}
	return s.record(ctx, pr.BusinessID, pr.ID, res, now)
}

// call makes the provider call that carries out pr.
func (s *Service) call(ctx context.Context, prov providers.Provider, cfg providers.Config, pr *PaymentRequest, now time.Time) (providers.Result, error) {
	amount := pr.Amount()
	meta := pr.Metadata
	description := ""
	if pr.Description != nil {
		description = *pr.Description
	}
	switch {
	case pr.Type == TypePay && !pr.PaymentLink:
		tok, err := getToken(ctx, s.db, pr.BusinessID, *pr.PaymentTokenID, false)
		if err != nil {
			return providers.Result{}, err
		}
		return prov.Charge(ctx, cfg, chargeRequest(pr, tok, now))
	}
	c, err := customers.Get(ctx, s.db, pr.BusinessID, pr.CustomerID)
	if err != nil {
		return providers.Result{}, err
	}
	if pr.PaymentLink {
		items, err := lineItems(pr)
		if err != nil {
			return providers.Result{}, err
		}
		channel := pr.ChannelCode
		if channel == linkChannel {
			channel = ""
		}
		return prov.CreatePaymentLink(ctx, cfg, providers.PaymentLinkRequest{
			BusinessID: pr.BusinessID, IdempotencyKey: pr.ProviderKey, Reference: pr.ID, Customer: payer(c), Country: pr.Country,
			Amount: amount, ChannelCode: channel, Description: description, LineItems: items,
			SuccessURL: stringProp(pr.ChannelProperties, "success_return_url"), CancelURL: stringProp(pr.ChannelProperties, "failure_return_url"),
			Now: now,
		})
	}
	return prov.StartLinking(ctx, cfg, providers.LinkRequest{
		BusinessID: pr.BusinessID, IdempotencyKey: pr.ProviderKey, Reference: pr.ID, Customer: payer(c), Country: pr.Country,
		Amount: amount, ChannelCode: pr.ChannelCode, ChannelProperties: pr.ChannelProperties,
		SuccessReturnURL: stringProp(pr.ChannelProperties, "success_return_url"), FailureReturnURL: stringProp(pr.ChannelProperties, "failure_return_url"),
		Description: description, Metadata: meta, Now: now,
	})
}

// chargeRequest is the provider call that charges tok for pr, a PAY
// request of a saved token.
func chargeRequest(pr *PaymentRequest, tok *PaymentToken, now time.Time) providers.ChargeRequest {
	description := ""
	if pr.Description != nil {
		description = *pr.Description
	}
	return providers.ChargeRequest{
		BusinessID: pr.BusinessID, IdempotencyKey: pr.ProviderKey, Reference: pr.ID, TokenRef: tok.ProviderTokenRef,
		Country: pr.Country, Amount: pr.Amount(), ChannelCode: pr.ChannelCode, Description: description, Metadata: pr.Metadata, Now: now,
	}
}

// payer is what a provider may know of the customer.
func payer(c *customers.Customer) providers.Customer {
	p := providers.Customer{ID: c.ID, Type: c.Type}
	if d := c.IndividualDetail; d != nil {
		p.GivenNames, p.Surname = deref(d.GivenNames), deref(d.Surname)
	}
	if d := c.BusinessDetail; d != nil {
		p.BusinessName = deref(d.BusinessName)
	}
	p.Email, p.MobileNumber = deref(c.Email), deref(c.MobileNumber)
	return p
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func stringProp(props map[string]json.RawMessage, name string) string {
	var s string
	_ = json.Unmarshal(props[name], &s)
	return s
}

// discard deletes a request the provider refused before it was ever
// accepted, and returns the refusal as a 400: a validation error naming
// the field when the provider named one, else INVALID_VALUE_ERROR.
func (s *Service) discard(ctx context.Context, pr *PaymentRequest, e *providers.Error) error {
	if _, err := s.db.NewDelete().Model((*PaymentRequest)(nil)).Where("id = ?", pr.ID).Where("status = ?", StatusSending).Exec(ctx); err != nil {
		return fmt.Errorf("discard refused payment request %s: %w", pr.ID, err)
	}
	if e.Field != "" {
		return &billing.Error{Code: billing.EINVALID, Reason: billing.ReasonValidation, Message: e.Message,
			Fields: []billing.FieldError{{Field: e.Field, Message: e.Message}}}
	}
	return &billing.Error{Code: billing.EINVALID, Reason: billing.ReasonInvalidValue,
		Message: fmt.Sprintf("the payment provider (%s) refused the request: %s", e.Provider, e.Message)}
}

// record applies a provider's answer to the request in its own
// transaction and returns the request as it then is.
func (s *Service) record(ctx context.Context, businessID, id string, res providers.Result, now time.Time) (*PaymentRequest, error) {
	var pr *PaymentRequest
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if pr, err = s.get(ctx, tx, businessID, id, true); err != nil {
			return err
		}
		_, err = s.apply(ctx, tx, pr, res, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pr, nil
}

// lineItem is a payment link's line as stored in channel_properties.
type lineItem struct {
	Name       string         `json:"name"`
	UnitAmount billing.Number `json:"unit_amount"`
	Quantity   int64          `json:"quantity"`
}

// linkProperties keeps what a payment link's provider needs, so that the
// request can be sent again from its row alone.
func linkProperties(p PaymentLinkParams) (map[string]json.RawMessage, error) {
	items := make([]lineItem, len(p.LineItems))
	total := billing.Money{Amount: decimal.Zero, Currency: p.Amount.Currency}
	for i, it := range p.LineItems {
		if it.UnitAmount.Currency != p.Amount.Currency || it.Quantity <= 0 || it.Name == "" {
			return nil, billing.Invalid(fmt.Sprintf("line_items[%d]", i), "must have a name, a positive quantity and the payment's currency")
		}
		items[i] = lineItem{Name: it.Name, UnitAmount: billing.NumberOf(it.UnitAmount.Amount), Quantity: it.Quantity}
		total.Amount = total.Amount.Add(it.UnitAmount.Amount.Mul(decimal.NewFromInt(it.Quantity)))
	}
	if len(items) > 0 && !total.Equal(p.Amount) {
		return nil, billing.Invalid("line_items", "must add up to the amount")
	}
	props := map[string]json.RawMessage{}
	for name, v := range map[string]any{"success_return_url": p.SuccessURL, "failure_return_url": p.CancelURL, "line_items": items} {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		props[name] = raw
	}
	return props, nil
}

// lineItems reads back the line items linkProperties stored.
func lineItems(pr *PaymentRequest) ([]providers.LineItem, error) {
	var items []lineItem
	if raw, ok := pr.ChannelProperties["line_items"]; ok {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("payment request %s: read line items: %w", pr.ID, err)
		}
	}
	out := make([]providers.LineItem, len(items))
	for i, it := range items {
		out[i] = providers.LineItem{Name: it.Name, Quantity: it.Quantity,
			UnitAmount: billing.Money{Amount: it.UnitAmount.Decimal, Currency: billing.Currency(pr.Currency)}}
	}
	return out, nil
}
