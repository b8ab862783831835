package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// maxNote bounds the note of a review action, and the reason of an
// adjustment or credit note.
const maxNote = 1000

// InvoiceActionParams is the body of POST /invoices/{id}/approve, /hold,
// /release and /void: an optional note for the audit trail.
type InvoiceActionParams struct {
	Note *string `json:"note"`
}

// DecodeInvoiceAction reads the body of a review action; an empty body is
// no note. Unknown fields are rejected (an engine-only resource).
func DecodeInvoiceAction(body []byte) (InvoiceActionParams, error) {
	var p InvoiceActionParams
	if len(body) == 0 {
		return p, nil
	}
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return p, err
	}
	var v billing.Validation
	checkText(&v, "note", p.Note, false, maxNote)
	return p, v.Err()
}

// lockInvoice locks the business's invoice id and its cycle, in tx, in
// the engine's lock order (cycle, then invoice; the plan before both when
// withPlan), and returns them, the cycle bound to its plan.
func lockInvoice(ctx context.Context, tx bun.IDB, businessID, id string, withPlan bool) (*Invoice, *Cycle, *Plan, error) {
	inv, err := getInvoice(ctx, tx, businessID, id, false)
	if err != nil {
		return nil, nil, nil, err
	}
	plan, err := getPlan(ctx, tx, businessID, inv.PlanID, withPlan)
	if err != nil {
		return nil, nil, nil, err
	}
	c := new(Cycle)
	if err := tx.NewSelect().Model(c).Where("id = ?", inv.CycleID).For("UPDATE").Scan(ctx); err != nil {
		return nil, nil, nil, fmt.Errorf("lock cycle %s: %w", inv.CycleID, err)
	}
	if inv, err = getInvoice(ctx, tx, businessID, id, true); err != nil {
		return nil, nil, nil, err
	}
	return inv, c.bind(plan), plan, nil
}

// audit records action on inv by actor at now.
func audit(ctx context.Context, tx bun.IDB, inv *Invoice, action, actor string, note *string, now time.Time) error {
	a := &AuditEntry{ID: billing.NewID(prefixInvoiceAudit), BusinessID: inv.BusinessID, InvoiceID: inv.ID, Action: action,
		Actor: actor, Note: note, Created: now}
	if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
		return fmt.Errorf("audit %s of invoice %s: %w", action, inv.ID, err)
	}
	return nil
}

// chargingNow reports whether a charge of c is under way (an attempt's
// payment waits for its outcome, or is being sent), which review actions
// cannot stop.
func chargingNow(c *Cycle) bool {
	return c.Status == CycleStatusPending || (c.NextAction != nil && *c.NextAction == ActionSendCharge)
}

// makeChargeable gives c (locked) the next action CHARGE when its invoice
// has just become chargeable and nothing else is due for it: at at (the
// charge time it had when held) or its scheduled timestamp, but not before
// now. The charge itself is the charging step's.
func makeChargeable(ctx context.Context, tx bun.IDB, c *Cycle, inv *Invoice, at *time.Time, now time.Time) error {
	if !inv.Chargeable() || c.NextAction != nil || (c.Status != CycleStatusScheduled && c.Status != CycleStatusRetrying) {
		return nil
	}
	due := c.ScheduledTimestamp
	if at != nil {
		due = *at
	}
	if due.Before(now) {
		due = now
	}
	c.NextAction, c.NextActionAt, c.Updated = ptr(ActionCharge), &due, now
	if _, err := tx.NewUpdate().Model(c).WherePK().Column("next_action", "next_action_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("schedule the charge of cycle %s: %w", c.ID, err)
	}
	return nil
}

// saveReview writes inv's review columns.
func saveReview(ctx context.Context, tx bun.IDB, inv *Invoice, now time.Time) error {
	inv.Updated = now
	if _, err := tx.NewUpdate().Model(inv).WherePK().Column("review_status", "held_review_status", "held_charge_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update invoice %s: %w", inv.ID, err)
	}
	return nil
}

// finalizeOne finalizes a DRAFT invoice that review let through and emits
// invoice.finalized.
func finalizeOne(ctx context.Context, tx bun.IDB, inv *Invoice, now time.Time) error {
	if inv.Status != InvoiceStatusDraft {
		return nil
	}
	if err := finalize(ctx, tx, inv.BusinessID, now, []*Invoice{inv}); err != nil {
		return err
	}
	if err := loadDetails(ctx, tx, inv); err != nil {
		return err
	}
	_, err := outbox.Emit(ctx, tx, inv.BusinessID, outbox.InvoiceFinalized, now, inv)
	return err
}

func unpaidOpenOrDraft(inv *Invoice) bool {
	return (inv.Status == InvoiceStatusDraft || inv.Status == InvoiceStatusOpen) && inv.AmountPaid.IsZero()
}

// ApproveInvoice approves the business's invoice id at now (its clock) in
// tx for actor (an API key's id): NEEDS_REVIEW becomes APPROVED, a DRAFT
// invoice is finalized (number, OPEN, invoice.finalized), and its cycle is
// charged from its scheduled timestamp, or at once when that has passed.
// An invoice that is not NEEDS_REVIEW is 403 REQUEST_FORBIDDEN_ERROR.
func (s *Service) ApproveInvoice(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p InvoiceActionParams) (*Invoice, error) {
	now = truncate(now)
	inv, c, _, err := lockInvoice(ctx, tx, biz.ID, id, false)
	if err != nil {
		return nil, err
	}
	if inv.ReviewStatus != ReviewNeedsReview || !unpaidOpenOrDraft(inv) {
		return nil, forbidden("invoice %s is %s and %s; only an unpaid invoice that NEEDS_REVIEW can be approved (release one ON_HOLD)",
			inv.ID, inv.Status, inv.ReviewStatus)
	}
	inv.ReviewStatus = ReviewApproved
	if err := saveReview(ctx, tx, inv, now); err != nil {
		return nil, err
	}
	if err := finalizeOne(ctx, tx, inv, now); err != nil {
		return nil, err
	}
	if err := makeChargeable(ctx, tx, c, inv, nil, now); err != nil {
		return nil, err
	}
	if err := audit(ctx, tx, inv, "approved", actor, p.Note, now); err != nil {
		return nil, err
	}
	return inv, loadDetails(ctx, tx, inv)
}

// HoldInvoice puts the business's unpaid invoice id ON_HOLD at now: it is
// not charged until released. When its cycle's charge was due, the charge
// is taken off the cycle and its time kept for the release. An invoice
// already ON_HOLD, paid, void or uncollectible, or whose cycle is being
// charged right now, is 403 REQUEST_FORBIDDEN_ERROR.
func (s *Service) HoldInvoice(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p InvoiceActionParams) (*Invoice, error) {
	now = truncate(now)
	inv, c, _, err := lockInvoice(ctx, tx, biz.ID, id, false)
	if err != nil {
		return nil, err
	}
	switch {
	case inv.ReviewStatus == ReviewOnHold:
		return nil, forbidden("invoice %s is already ON_HOLD", inv.ID)
	case !unpaidOpenOrDraft(inv):
		return nil, forbidden("invoice %s is %s; only an unpaid DRAFT or OPEN invoice can be held", inv.ID, inv.Status)
	case chargingNow(c):
		return nil, forbidden("a charge of invoice %s is under way; it can be held once its outcome is known", inv.ID)
	}
	inv.HeldReviewStatus, inv.ReviewStatus, inv.HeldChargeAt = ptr(inv.ReviewStatus), ReviewOnHold, nil
	if c.NextAction != nil && *c.NextAction == ActionCharge {
		inv.HeldChargeAt = c.NextActionAt
		c.NextAction, c.NextActionAt, c.Updated = nil, nil, now
		if _, err := tx.NewUpdate().Model(c).WherePK().Column("next_action", "next_action_at", "updated").Exec(ctx); err != nil {
			return nil, fmt.Errorf("hold the charge of cycle %s: %w", c.ID, err)
		}
	}
	if err := saveReview(ctx, tx, inv, now); err != nil {
		return nil, err
	}
	if err := audit(ctx, tx, inv, "held", actor, p.Note, now); err != nil {
		return nil, err
	}
	return inv, loadDetails(ctx, tx, inv)
}

// ReleaseInvoice releases the business's ON_HOLD invoice id at now: it
// returns to NOT_REQUIRED or APPROVED as it was before the hold; one held
// while it NEEDS_REVIEW is released as APPROVED (the release is the
// reviewer's decision) and, if DRAFT, finalized. Its cycle's charge is due
// again at the time it had when held (its scheduled timestamp if none), or
// at once when that has passed. An invoice not ON_HOLD is 403.
func (s *Service) ReleaseInvoice(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p InvoiceActionParams) (*Invoice, error) {
	now = truncate(now)
	inv, c, _, err := lockInvoice(ctx, tx, biz.ID, id, false)
	if err != nil {
		return nil, err
	}
	if inv.ReviewStatus != ReviewOnHold || !unpaidOpenOrDraft(inv) {
		return nil, forbidden("invoice %s is %s and %s; only an unpaid invoice ON_HOLD can be released", inv.ID, inv.Status, inv.ReviewStatus)
	}
	back, at := ReviewApproved, inv.HeldChargeAt
	if inv.HeldReviewStatus != nil && *inv.HeldReviewStatus == ReviewNotRequired {
		back = ReviewNotRequired
	}
	inv.ReviewStatus, inv.HeldReviewStatus, inv.HeldChargeAt = back, nil, nil
	if err := saveReview(ctx, tx, inv, now); err != nil {
		return nil, err
	}
	if err := finalizeOne(ctx, tx, inv, now); err != nil {
		return nil, err
	}
	if err := makeChargeable(ctx, tx, c, inv, at, now); err != nil {
		return nil, err
	}
	if err := audit(ctx, tx, inv, "released", actor, p.Note, now); err != nil {
		return nil, err
	}
	return inv, loadDetails(ctx, tx, inv)
}

// VoidInvoice voids the business's unpaid DRAFT or OPEN invoice id at now:
// VOID (a finalized invoice keeps its number), invoice.voided; its cycle,
// if still to be charged or retried, is CANCELLED and the plan moves on
// (the next cycle, or the plan's end), as when a cycle is cancelled. The
// usage it billed stays billed by it. A paid, uncollectible or void
// invoice, or one whose cycle is being charged right now, is 403.
func (s *Service) VoidInvoice(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string, p InvoiceActionParams) (*Invoice, error) {
	now = truncate(now)
	inv, c, plan, err := lockInvoice(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	switch {
	case !unpaidOpenOrDraft(inv):
		return nil, forbidden("invoice %s is %s; only an unpaid DRAFT or OPEN invoice can be voided", inv.ID, inv.Status)
	case chargingNow(c):
		return nil, forbidden("a charge of invoice %s is under way; it can be voided once its outcome is known", inv.ID)
	}
	if err := voidInvoices(ctx, tx, []*Invoice{inv}, actor, p.Note, now); err != nil {
		return nil, err
	}
	if c.Status == CycleStatusScheduled || c.Status == CycleStatusRetrying {
		if err := s.endCancelled(ctx, tx, plan, c, now); err != nil {
			return nil, err
		}
	}
	return inv, loadDetails(ctx, tx, inv)
}

// voidInvoices makes invs (locked, unpaid) VOID at now, audits it for
// actor and emits invoice.voided for each.
func voidInvoices(ctx context.Context, tx bun.IDB, invs []*Invoice, actor string, note *string, now time.Time) error {
	if len(invs) == 0 {
		return nil
	}
	events := make([]*outbox.Event, 0, len(invs))
	for _, inv := range invs {
		inv.Status, inv.VoidedAt, inv.Updated = InvoiceStatusVoid, &now, now
		q := tx.NewUpdate().Model(inv).WherePK().Column("status", "voided_at", "updated")
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("void invoice %s: %w", inv.ID, err)
		}
		if err := audit(ctx, tx, inv, "voided", actor, note, now); err != nil {
			return err
		}
	}
	if err := loadDetails(ctx, tx, invs...); err != nil {
		return err
	}
	for _, inv := range invs {
		e, err := outbox.New(inv.BusinessID, outbox.InvoiceVoided, now, inv)
		if err != nil {
			return err
		}
		events = append(events, e)
	}
	return outbox.EmitAll(ctx, tx, events)
}

// voidOfCycles voids the unpaid DRAFT and OPEN invoices of cycles that
// were just cancelled (their ids in cycleIDs), for the engine: a cancelled
// cycle is never charged, so what its invoice says is no longer owed.
func voidOfCycles(ctx context.Context, tx bun.IDB, businessID string, cycleIDs []string, note string, now time.Time) error {
	if len(cycleIDs) == 0 {
		return nil
	}
	var invs []*Invoice
	if err := tx.NewSelect().Model(&invs).Where("business_id = ?", businessID).Where("cycle_id IN (?)", bun.In(cycleIDs)).
		Where("status IN (?)", bun.In([]string{InvoiceStatusDraft, InvoiceStatusOpen})).Where("amount_paid = 0").
		OrderExpr("id").For("UPDATE").Scan(ctx); err != nil {
		return fmt.Errorf("read the invoices of cancelled cycles: %w", err)
	}
	return voidInvoices(ctx, tx, invs, ActorEngine, &note, now)
}

// endCancelled ends cycle c of plan (both locked) as CANCELLED at now, with
// nothing left to do: its unpaid invoice, if its amount was fixed, is
// voided, and the plan moves on (the next cycle, or the plan's end). A
// PENDING plan's immediate cycle cancelled (its invoice, held for review,
// voided) means the plan never starts: it becomes INACTIVE, as when that
// charge fails.
func (s *Service) endCancelled(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, now time.Time) error {
	c.Status, c.NextAction, c.NextActionAt, c.Updated = CycleStatusCancelled, nil, nil, now
	if _, err := tx.NewUpdate().Model(c).WherePK().Column("status", "next_action", "next_action_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("cancel cycle %s: %w", c.ID, err)
	}
	if c.InvoiceID != nil {
		if err := voidOfCycles(ctx, tx, c.BusinessID, []string{c.ID}, "its cycle was cancelled", now); err != nil {
			return err
		}
	}
	if c.Type == CycleTypeImmediate && plan.Status == PlanStatusPending {
		return s.inactivate(ctx, tx, plan, now)
	}
	return s.advance(ctx, tx, plan, c, now)
}
