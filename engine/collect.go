package engine

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
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// Paying an invoice outside its cycle's attempts (SPEC §5.5): with a saved
// token (POST /invoices/{id}/pay) or on a payment link, a hosted page of
// the business's provider (POST /invoices/{id}/payment_link, and the pay
// pages linked from notifications). Each payment is a row of
// invoice_payments with its provider key, committed before the provider
// is called; its outcome comes through Settled like a cycle's.

// Kinds of invoice payment.
const (
	invoicePay  = "PAY"
	invoiceLink = "PAYMENT_LINK"
)

// invoicePayment is one payment of an invoice outside its cycle's
// attempts, numbered per invoice.
type invoicePayment struct {
	bun.BaseModel `bun:"table:invoice_payments"`

	BusinessID       string          `bun:"business_id"`
	InvoiceID        string          `bun:"invoice_id,pk"`
	Number           int             `bun:"number,pk"`
	Kind             string          `bun:"kind"`
	Amount           decimal.Decimal `bun:"amount,type:numeric"`
	PaymentTokenID   *string         `bun:"payment_token_id"`
	ProviderKey      string          `bun:"provider_key"`
	PaymentRequestID *string         `bun:"payment_request_id"`
	Created          time.Time       `bun:"created"`
}

// PayInvoiceParams is the body of POST /invoices/{id}/pay.
type PayInvoiceParams struct {
	PaymentTokenID string `json:"payment_token_id"`
}

// DecodePayInvoice reads the body of POST /invoices/{id}/pay; unknown
// fields are rejected (an engine-only resource).
func DecodePayInvoice(body []byte) (PayInvoiceParams, error) {
	var p PayInvoiceParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return p, err
	}
	var v billing.Validation
	v.Check(p.PaymentTokenID != "", "payment_token_id", "is required")
	return p, v.Err()
}

// payable checks that invoice inv (locked, with its cycle c) can be paid
// now: OPEN and not awaiting review or held, or UNCOLLECTIBLE; and no
// charge of it under way (a cycle attempt in flight, or another payment
// of kind kind waiting for its outcome) and, for a payment with a token,
// no payment link open for it. Else 403 REQUEST_FORBIDDEN_ERROR.
func payable(ctx context.Context, tx bun.IDB, inv *Invoice, c *Cycle, kind string, now time.Time) (*invoicePayment, error) {
	switch {
	case inv.Status == InvoiceStatusOpen && !inv.Chargeable():
		return nil, forbidden("invoice %s is %s: it can be paid once finance releases or approves it", inv.ID, inv.ReviewStatus)
	case inv.Status != InvoiceStatusOpen && inv.Status != InvoiceStatusUncollectible:
		return nil, forbidden("invoice %s is %s: there is nothing to pay", inv.ID, inv.Status)
	case chargingNow(c):
		return nil, forbidden("a charge of invoice %s is under way; try again once its outcome is known", inv.ID)
	}
	if kind == invoicePay {
		hold, err := openLink(ctx, tx, inv, now)
		if err != nil {
			return nil, err
		}
		if hold != nil {
			return nil, forbidden("%s", hold.explain(inv))
		}
	}
	return openPayment(ctx, tx, inv, kind, now)
}

// openPayment returns the latest payment of kind of inv whose payment
// request has not reached a final state, or was never recorded and is
// younger than chargeLease (its request is recorded before the provider
// is called, so one missing after that was never made: a crash or a
// refusal before it, and the payment is abandoned), or nil.
func openPayment(ctx context.Context, tx bun.IDB, inv *Invoice, kind string, now time.Time) (*invoicePayment, error) {
	var rows []*invoicePayment
	err := underWay(tx.NewSelect().Model(&rows), "invoice_payment", now).
		Where("invoice_payment.invoice_id = ?", inv.ID).Where("invoice_payment.kind = ?", kind).
		OrderExpr("invoice_payment.number DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the payments of invoice %s: %w", inv.ID, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0], nil
}

// underWay joins q, a query of invoice_payments aliased alias, to the
// payment requests (as pr) and keeps the payments under way at now: those
// whose request has not reached a final state, and those never recorded
// that are younger than chargeLease (a request is recorded before its
// provider is called, so one missing after that was never made).
func underWay(q *bun.SelectQuery, alias string, now time.Time) *bun.SelectQuery {
	return underWaySince(q, alias, now.Add(-chargeLease))
}

// underWaySince is underWay with the creation time after which a payment
// never recorded is under way (now less chargeLease) given as a value, or
// as a bind parameter (bun.Safe("$2")) in a postgres.Statement.
func underWaySince(q *bun.SelectQuery, alias string, since any) *bun.SelectQuery {
	return q.Join("LEFT JOIN payment_requests AS pr ON pr.business_id = "+alias+".business_id AND pr.provider_key = "+alias+".provider_key").
		Where("(pr.id IS NULL AND "+alias+".created > ?) OR pr.status IN (?)", since,
			bun.In([]string{payments.StatusSending, payments.StatusRequiresAction, payments.StatusPending}))
}

// linkHold is an open payment link of an invoice, which holds back other
// charges of it until Until: a customer may be paying on it.
type linkHold struct {
	Until            time.Time
	PaymentRequestID *string
}

func (h *linkHold) explain(inv *Invoice) string {
	if h.PaymentRequestID == nil {
		return fmt.Sprintf("a payment link of invoice %s is being made; try again in a few minutes", inv.ID)
	}
	return fmt.Sprintf("payment link %s of invoice %s is open until %s, and the customer may be paying on it; "+
		"cancel it (POST /payment_requests/%s/cancel) or wait for it to expire", *h.PaymentRequestID, inv.ID, billing.FormatTime(h.Until), *h.PaymentRequestID)
}

// linkValidity is how long a payment link whose provider gave no expiry
// holds back other charges of its invoice.
const linkValidity = 24 * time.Hour

// openLink returns the payment link of inv that holds back other charges
// of it at now, or nil: a link the customer can still pay on (waiting for
// the customer, until its expiry — or linkValidity after it was made when
// the provider gave none), a link payment under way (PENDING: held for
// another chargeLease, then looked at again), or a link being made. Were a
// retry or a forced attempt to charge the token meanwhile, a customer
// paying on the link would pay the cycle twice.
func openLink(ctx context.Context, tx bun.IDB, inv *Invoice, now time.Time) (*linkHold, error) {
	var rows []struct {
		Created   time.Time  `bun:"created"`
		RequestID *string    `bun:"request_id"`
		Status    *string    `bun:"status"`
		ExpiresAt *time.Time `bun:"expires_at"`
	}
	err := underWay(tx.NewSelect().TableExpr("invoice_payments AS ip"), "ip", now).
		ColumnExpr("ip.created, pr.id AS request_id, pr.status, pr.expires_at").
		Where("ip.invoice_id = ?", inv.ID).Where("ip.kind = ?", invoiceLink).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read the payment links of invoice %s: %w", inv.ID, err)
	}
	var hold *linkHold
	for _, r := range rows {
		var until time.Time
		switch {
		case r.RequestID == nil:
			until = r.Created.Add(chargeLease)
		case *r.Status == payments.StatusRequiresAction && r.ExpiresAt != nil:
			until = *r.ExpiresAt
		case *r.Status == payments.StatusRequiresAction:
			until = r.Created.Add(linkValidity)
		default: // paid on the provider's page, its outcome awaited
			until = now.Add(chargeLease)
		}
		if until.After(now) && (hold == nil || until.After(hold.Until)) {
			hold = &linkHold{Until: until.UTC(), PaymentRequestID: r.RequestID}
		}
	}
	return hold, nil
}

// newPayment stores the next payment of inv (locked) of kind, for what it
// owes now.
func newPayment(ctx context.Context, tx bun.IDB, inv *Invoice, kind string, tokenID *string, now time.Time) (*invoicePayment, error) {
	var n int
	if err := tx.NewSelect().Model((*invoicePayment)(nil)).ColumnExpr("coalesce(max(number), 0)").
		Where("invoice_id = ?", inv.ID).Scan(ctx, &n); err != nil {
		return nil, fmt.Errorf("count the payments of invoice %s: %w", inv.ID, err)
	}
	verb := "pay"
	if kind == invoiceLink {
		verb = "link"
	}
	ip := &invoicePayment{BusinessID: inv.BusinessID, InvoiceID: inv.ID, Number: n + 1, Kind: kind, Amount: inv.AmountDue(),
		PaymentTokenID: tokenID, ProviderKey: fmt.Sprintf("%s/%s/%d", inv.ID, verb, n+1), Created: now}
	if _, err := tx.NewInsert().Model(ip).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert payment %d of invoice %s: %w", ip.Number, inv.ID, err)
	}
	return ip, nil
}

// invoiceReference is what payment requests of inv carry as reference_id.
func invoiceReference(inv *Invoice) string {
	if inv.Number != nil {
		return *inv.Number
	}
	return inv.ID
}

// PayInvoice charges what the business's invoice id still owes with the
// saved token p.PaymentTokenID (an ACTIVE token of the invoice's customer
// in its currency) at now, and returns the payment request as the
// provider left it: SUCCEEDED (the invoice is PAID, its cycle SUCCEEDED if
// it was still being charged, and a customer suspended for it reinstated),
// FAILED (nothing changed), or PENDING (the outcome follows by callback).
// The provider key is <invoice id>/pay/<n>. A request repeated while its
// payment waits for its outcome (the same token) resumes that payment;
// another token then is 403, as is an invoice with nothing to pay (PAID,
// VOID, DRAFT, held) or whose cycle is being charged.
func (s *Service) PayInvoice(ctx context.Context, biz *business.Business, now time.Time, id string, p PayInvoiceParams) (*payments.PaymentRequest, error) {
	now = truncate(now)
	var ip *invoicePayment
	var inv *Invoice
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var c *Cycle
		var err error
		if inv, c, _, err = lockInvoice(ctx, tx, biz.ID, id, false); err != nil {
			return err
		}
		tok, err := s.payments.GetToken(ctx, tx, biz.ID, p.PaymentTokenID)
		if err != nil {
			return err
		}
		var v billing.Validation
		v.Check(tok.CustomerID == inv.CustomerID, "payment_token_id", "belongs to another customer than the invoice's")
		v.Check(tok.Status == payments.TokenActive, "payment_token_id", "is "+tok.Status+"; only an ACTIVE token can be charged")
		v.Check(tok.Currency == string(inv.Currency), "payment_token_id", fmt.Sprintf("charges %s; the invoice is in %s", tok.Currency, inv.Currency))
		if err := v.Err(); err != nil {
			return err
		}
		if ip, err = payable(ctx, tx, inv, c, invoicePay, now); err != nil {
			return err
		}
		switch {
		case ip != nil && *ip.PaymentTokenID != tok.ID:
			return forbidden("a payment of invoice %s with token %s is under way; try again once its outcome is known", inv.ID, *ip.PaymentTokenID)
		case ip == nil:
			ip, err = newPayment(ctx, tx, inv, invoicePay, &tok.ID, now)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.payments.Charge(ctx, biz, now, payments.ChargeParams{
		PaymentTokenID: *ip.PaymentTokenID, Amount: billing.Money{Amount: ip.Amount, Currency: inv.Currency},
		ReferenceID: invoiceReference(inv), Description: ptr("Invoice " + invoiceReference(inv)), IdempotencyKey: ip.ProviderKey,
	})
}

// PaymentLink is a hosted page of the business's provider where the
// customer pays what an invoice owes.
type PaymentLink struct {
	InvoiceID        string
	URL              string
	Amount           billing.Money
	ExpiresAt        *time.Time
	PaymentRequestID string
}

type paymentLinkView struct {
	InvoiceID        string         `json:"invoice_id"`
	URL              string         `json:"url"`
	Amount           billing.Number `json:"amount"`
	Currency         string         `json:"currency"`
	ExpiresAt        *string        `json:"expires_at"`
	PaymentRequestID string         `json:"payment_request_id"`
}

// MarshalJSON writes the link as POST /invoices/{id}/payment_link answers.
func (l *PaymentLink) MarshalJSON() ([]byte, error) {
	return json.Marshal(paymentLinkView{InvoiceID: l.InvoiceID, URL: l.URL, Amount: billing.NumberOf(l.Amount.Amount),
		Currency: string(l.Amount.Currency), ExpiresAt: formatOptional(l.ExpiresAt), PaymentRequestID: l.PaymentRequestID})
}

// InvoicePaymentLink returns a payment link for what the business's
// invoice id still owes at now: the link made last, while it waits for
// the customer, has not expired and is for that amount; else a new one
// from the business's provider (provider key <invoice id>/link/<n>).
// The provider sends the customer back to the plan's success and failure
// return URLs, else to returnURL, else to a new pay page of the invoice
// under pageBase (the engine's address), which shows whether it is paid.
// The link is paid through Settled like any payment. An invoice with
// nothing to pay, or whose cycle is being charged, is 403.
func (s *Service) InvoicePaymentLink(ctx context.Context, biz *business.Business, now time.Time, id, returnURL, pageBase string) (*PaymentLink, error) {
	now = truncate(now)
	var ip *invoicePayment
	var inv *Invoice
	var plan *Plan
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var c *Cycle
		var err error
		if inv, c, plan, err = lockInvoice(ctx, tx, biz.ID, id, false); err != nil {
			return err
		}
		if ip, err = payable(ctx, tx, inv, c, invoiceLink, now); err != nil {
			return err
		}
		if returnURL == "" && (plan.SuccessReturnURL == nil || plan.FailureReturnURL == nil) {
			secret, err := newPayPage(ctx, tx, inv, now)
			if err != nil {
				return err
			}
			returnURL = pageBase + PayPath + secret
		}
		if ip != nil && ip.Amount.Equal(inv.AmountDue()) && ip.PaymentRequestID != nil {
			pr, err := s.payments.Get(ctx, tx, biz.ID, *ip.PaymentRequestID)
			if err != nil {
				return err
			}
			if pr.ExpiresAt == nil || pr.ExpiresAt.After(now) {
				return nil
			}
		}
		ip, err = newPayment(ctx, tx, inv, invoiceLink, nil, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	success, failure := returnURL, returnURL
	if plan.SuccessReturnURL != nil {
		success = *plan.SuccessReturnURL
	}
	if plan.FailureReturnURL != nil {
		failure = *plan.FailureReturnURL
	}
	owed := billing.Money{Amount: ip.Amount, Currency: inv.Currency}
	ref := invoiceReference(inv)
	pr, err := s.payments.CreatePaymentLink(ctx, biz, now, payments.PaymentLinkParams{
		CustomerID: inv.CustomerID, Country: countryOf(inv.Currency), Amount: owed, ReferenceID: ref, Description: ptr("Invoice " + ref),
		LineItems:  []providers.LineItem{{Name: "Invoice " + ref, UnitAmount: owed, Quantity: 1}},
		SuccessURL: success, CancelURL: failure, IdempotencyKey: ip.ProviderKey,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.db.NewUpdate().Model(ip).WherePK().Set("payment_request_id = ?", pr.ID).Where("payment_request_id IS NULL").Exec(ctx); err != nil {
		return nil, fmt.Errorf("record the payment link of invoice %s: %w", inv.ID, err)
	}
	for _, a := range pr.Actions {
		if a.Type == "REDIRECT_CUSTOMER" {
			return &PaymentLink{InvoiceID: inv.ID, URL: a.Value, Amount: owed, ExpiresAt: pr.ExpiresAt, PaymentRequestID: pr.ID}, nil
		}
	}
	if pr.Status == payments.StatusFailed {
		code := ""
		if pr.FailureCode != nil {
			code = *pr.FailureCode
		}
		return nil, billing.Errorf(billing.EINVALID, billing.ReasonInvalidValue, "the payment provider (%s) refused the payment link: %s", pr.Provider, code)
	}
	return nil, fmt.Errorf("payment link %s of invoice %s: the provider gave no page (status %s)", pr.ID, inv.ID, pr.Status)
}

// countryOf is the payment country of a currency.
func countryOf(cur billing.Currency) string {
	for _, country := range providers.Countries() {
		if c, _ := providers.CurrencyOf(country); c == cur {
			return country
		}
	}
	return ""
}

// settleInvoicePayment is Settled for a payment of an invoice (pay or
// payment link): its success is the invoice's money (receive), and ends
// the invoice's cycle SUCCEEDED when it was still being charged or
// retried. A failed payment changes nothing; the invoice is owed as
// before. A PAY that is no invoice's is the utility's own and ignored.
func (s *Service) settleInvoicePayment(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, now time.Time) error {
	ip := new(invoicePayment)
	err := tx.NewSelect().Model(ip).Where("business_id = ?", pr.BusinessID).Where("provider_key = ?", pr.ProviderKey).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find the invoice payment of %s: %w", pr.ID, err)
	}
	if ip.PaymentRequestID == nil {
		if _, err := tx.NewUpdate().Model(ip).WherePK().Set("payment_request_id = ?", pr.ID).Exec(ctx); err != nil {
			return fmt.Errorf("record the payment request of invoice %s: %w", ip.InvoiceID, err)
		}
	}
	if pr.Status != payments.StatusSucceeded {
		return nil
	}
	inv, c, plan, err := lockInvoice(ctx, tx, pr.BusinessID, ip.InvoiceID, true)
	if err != nil {
		return err
	}
	if err := s.receive(ctx, tx, plan, inv, pr.RequestAmount, requestSource(pr.ID), now); err != nil {
		return err
	}
	if inv.Status != InvoiceStatusPaid {
		return nil
	}
	switch c.Status {
	case CycleStatusScheduled, CycleStatusRetrying, CycleStatusPending:
		return s.succeed(ctx, tx, plan, c, pr.RequestAmount, now)
	}
	return nil
}
