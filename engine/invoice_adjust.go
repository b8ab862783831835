package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// AdjustmentParams is the body of POST /invoices/{id}/adjustments: a signed
// amount in the invoice's currency (not zero) and the reason, shown on the
// line; note goes to the audit trail.
type AdjustmentParams struct {
	Amount *billing.Number `json:"amount"`
	Reason string          `json:"reason"`
	Note   *string         `json:"note"`
}

// DecodeAdjustment reads an adjustment body; the service checks the amount
// against the invoice.
func DecodeAdjustment(body []byte) (AdjustmentParams, error) {
	var p AdjustmentParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return p, err
	}
	var v billing.Validation
	v.Check(p.Amount != nil, "amount", "is required: a signed amount such as 15000 or -2500")
	checkText(&v, "reason", &p.Reason, true, maxNote)
	checkText(&v, "note", p.Note, false, maxNote)
	return p, v.Err()
}

// CreditNoteParams is the body of POST /invoices/{id}/credit_notes: the
// amount owed back (positive, in the invoice's currency) and why.
type CreditNoteParams struct {
	Amount *billing.Number `json:"amount"`
	Reason string          `json:"reason"`
}

// DecodeCreditNote reads a credit note body; the service checks the
// amount against the invoice.
func DecodeCreditNote(body []byte) (CreditNoteParams, error) {
	var p CreditNoteParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return p, err
	}
	var v billing.Validation
	v.Check(p.Amount != nil, "amount", "is required: the amount owed back, such as 15000")
	checkText(&v, "reason", &p.Reason, true, maxNote)
	return p, v.Err()
}

// addAdjustment appends an ADJUSTMENT line of amount to inv (locked) for actor,
// and makes the invoice's total and its cycle's amount follow.
func addAdjustment(ctx context.Context, tx bun.IDB, inv *Invoice, c *Cycle, amount decimal.Decimal, reason, actor string, now time.Time) error {
	var last int
	if err := tx.NewSelect().Table("invoice_lines").ColumnExpr("coalesce(max(position), 0)").Where("invoice_id = ?", inv.ID).
		Scan(ctx, &last); err != nil {
		return fmt.Errorf("read the lines of invoice %s: %w", inv.ID, err)
	}
	l := &InvoiceLine{ID: billing.NewID(prefixInvoiceLine), BusinessID: inv.BusinessID, InvoiceID: inv.ID, Position: last + 1,
		Kind: LineAdjustment, Description: "Adjustment: " + reason, Amount: amount, Reason: &reason, CreatedBy: &actor, Created: now}
	if _, err := tx.NewInsert().Model(l).Exec(ctx); err != nil {
		return fmt.Errorf("add a line to invoice %s: %w", inv.ID, err)
	}
	inv.Total, inv.Updated = inv.Total.Add(amount), now
	if _, err := tx.NewUpdate().Model(inv).WherePK().Column("total", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update invoice %s: %w", inv.ID, err)
	}
	c.Amount, c.Updated = decimal.NewNullDecimal(inv.Total), now
	if _, err := tx.NewUpdate().Model(c).WherePK().Column("amount", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update the amount of cycle %s: %w", c.ID, err)
	}
	return nil
}

// adjustable reports why inv (of cycle c) cannot change at now, or "": it
// must be unpaid, DRAFT or OPEN, its cycle not yet charged (SCHEDULED), and
// its cycle's date not begun (from 00:00 UTC of the date the amount is
// frozen, SPEC §5.2).
func adjustable(inv *Invoice, c *Cycle, now time.Time) string {
	switch {
	case !unpaidOpenOrDraft(inv):
		return fmt.Sprintf("invoice %s is %s; only an unpaid DRAFT or OPEN invoice can be adjusted", inv.ID, inv.Status)
	case c.Status != CycleStatusScheduled:
		return fmt.Sprintf("the cycle of invoice %s is %s; an invoice can be adjusted only before its cycle is charged", inv.ID, c.Status)
	case plans.Frozen(c.ScheduledTimestamp, now):
		return fmt.Sprintf("the date of invoice %s, %s, has begun (UTC): from 00:00 UTC of its date the amount is frozen",
			inv.ID, c.ScheduledTimestamp.Format(time.DateOnly))
	}
	return ""
}

// AdjustInvoice adds an ADJUSTMENT line to the business's invoice id at
// now for actor: its total, and its cycle's amount, change by p.Amount.
// Only before 00:00 UTC of the cycle's date, on an unpaid DRAFT or OPEN
// invoice whose cycle is not being charged (else 403); an amount that is
// zero, has more decimals than the currency, or would bring the total
// below zero is 400 naming amount. The invoice stays in its review status.
func (s *Service) AdjustInvoice(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p AdjustmentParams) (*Invoice, error) {
	now = truncate(now)
	inv, c, _, err := lockInvoice(ctx, tx, biz.ID, id, false)
	if err != nil {
		return nil, err
	}
	if why := adjustable(inv, c, now); why != "" {
		return nil, forbidden("%s", why)
	}
	var v billing.Validation
	amount := checkSignedMoney(&v, "amount", p.Amount.Decimal, inv.Currency)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if total := inv.Total.Add(amount); total.IsNegative() {
		return nil, billing.Invalid("amount", fmt.Sprintf("would bring the total to %s; an invoice's total cannot be below zero",
			billing.Money{Amount: total, Currency: inv.Currency}))
	}
	if err := addAdjustment(ctx, tx, inv, c, amount, p.Reason, actor, now); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%s: %s", billing.Money{Amount: amount, Currency: inv.Currency}, p.Reason)
	if p.Note != nil {
		note += "; " + *p.Note
	}
	if err := audit(ctx, tx, inv, "adjusted", actor, &note, now); err != nil {
		return nil, err
	}
	return inv, loadDetails(ctx, tx, inv)
}

// checkSignedMoney checks a signed, non-zero amount in cur's precision.
func checkSignedMoney(v *billing.Validation, field string, d decimal.Decimal, cur billing.Currency) decimal.Decimal {
	v.Check(!d.IsZero(), field, "must not be zero")
	v.Check(billing.DecimalPlaces(d) <= cur.Exponent(), field, fmt.Sprintf("%s amounts allow at most %d decimal places", cur, cur.Exponent()))
	return d
}

// creditable is what credit notes may still give back on inv (with its
// credit notes loaded): what was paid less the earlier credit notes that
// give some of it back. The engine's own credit notes are not among them:
// they record money taken beyond what the invoice owed (receive), which
// its amount_paid does not hold.
func (inv *Invoice) creditable() decimal.Decimal {
	left := inv.AmountPaid
	for _, cn := range inv.CreditNotes {
		if cn.Actor != ActorEngine {
			left = left.Sub(cn.Amount)
		}
	}
	return left
}

// CreateCreditNote records a credit note on the business's invoice id at
// now for actor: money owed back to the customer (a refund need), at most
// what was paid less earlier credit notes (else 400 naming amount). The
// engine's own credit notes do not count: they record money taken beyond
// what the invoice owed (receive), which is not in its amount_paid. An
// invoice with nothing paid is 403.
func (s *Service) CreateCreditNote(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p CreditNoteParams) (*CreditNote, error) {
	now = truncate(now)
	inv, err := getInvoice(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	if !inv.AmountPaid.IsPositive() {
		return nil, forbidden("invoice %s is %s with nothing paid; a credit note is for money paid that is owed back", inv.ID, inv.Status)
	}
	if err := loadDetails(ctx, tx, inv); err != nil {
		return nil, err
	}
	left := inv.creditable()
	var v billing.Validation
	amount := p.Amount.Decimal
	if v.Check(amount.IsPositive(), "amount", "must be greater than zero") {
		v.Check(billing.DecimalPlaces(amount) <= inv.Currency.Exponent(), "amount",
			fmt.Sprintf("%s amounts allow at most %d decimal places", inv.Currency, inv.Currency.Exponent()))
		v.Check(!amount.GreaterThan(left), "amount", fmt.Sprintf("must be at most %s: what was paid less earlier credit notes",
			billing.Money{Amount: left, Currency: inv.Currency}))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	cn := &CreditNote{ID: billing.NewID(billing.PrefixCreditNote), BusinessID: biz.ID, InvoiceID: inv.ID, Amount: amount,
		Reason: p.Reason, Actor: actor, Created: now}
	if _, err := tx.NewInsert().Model(cn).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert credit note: %w", err)
	}
	note := fmt.Sprintf("%s %s: %s", cn.ID, billing.Money{Amount: amount, Currency: inv.Currency}, p.Reason)
	if err := audit(ctx, tx, inv, "credit_note", actor, &note, now); err != nil {
		return nil, err
	}
	return cn, nil
}

// cyclePatched follows a PATCH of cycle c (locked, SCHEDULED, before its
// date) whose amount is fixed already: a new amount becomes an ADJUSTMENT
// line ("amount set by the API") that makes the invoice's total the amount
// set, and a new scheduled timestamp moves the invoice's due time and a
// pending charge with it.
func cyclePatched(ctx context.Context, tx bun.IDB, c *Cycle, amountSet, moved bool, actor string, now time.Time) error {
	if c.InvoiceID == nil {
		return nil
	}
	inv, err := getInvoice(ctx, tx, c.BusinessID, *c.InvoiceID, true)
	if err != nil {
		return err
	}
	if moved {
		inv.DueAt, inv.Updated = c.ScheduledTimestamp, now
		if _, err := tx.NewUpdate().Model(inv).WherePK().Column("due_at", "updated").Exec(ctx); err != nil {
			return fmt.Errorf("move invoice %s: %w", inv.ID, err)
		}
		if c.NextAction != nil && *c.NextAction == ActionCharge {
			c.NextActionAt = &c.ScheduledTimestamp
			if _, err := tx.NewUpdate().Model(c).WherePK().Column("next_action_at").Exec(ctx); err != nil {
				return fmt.Errorf("move the charge of cycle %s: %w", c.ID, err)
			}
		}
		if inv.HeldChargeAt != nil {
			inv.HeldChargeAt = &c.ScheduledTimestamp
			if _, err := tx.NewUpdate().Model(inv).WherePK().Column("held_charge_at").Exec(ctx); err != nil {
				return fmt.Errorf("move invoice %s: %w", inv.ID, err)
			}
		}
	}
	if !amountSet || !c.AmountOverride.Valid || c.AmountOverride.Decimal.Equal(inv.Total) {
		return nil
	}
	if !unpaidOpenOrDraft(inv) {
		return forbidden("invoice %s of cycle %d is %s; its amount can no longer change", inv.ID, c.CycleNumber, inv.Status)
	}
	diff := c.AmountOverride.Decimal.Sub(inv.Total)
	if err := addAdjustment(ctx, tx, inv, c, diff, overrideReason, actor, now); err != nil {
		return err
	}
	note := fmt.Sprintf("amount set to %s by PATCH of the cycle", billing.Money{Amount: inv.Total, Currency: inv.Currency})
	return audit(ctx, tx, inv, "amount_set", actor, &note, now)
}
