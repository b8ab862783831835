package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// The immediate charge (immediate_action_type FULL_AMOUNT, SPEC §4.4): a
// plan that gets its ACTIVE token waits PENDING while cycle 0, an
// IMMEDIATE cycle of the plan's base amount, is charged at once. Its
// success activates the plan (ACTIVE from then, cycle 1); its failure —
// one attempt, never retried — makes the plan INACTIVE, as Xendit does.

// startImmediate creates the IMMEDIATE cycle 0 of plan (PENDING, locked in
// tx) at now: its amount is the plan's base amount, fixed at once, billed
// by an invoice of one BASE line. The review rules that can apply to it
// apply (SPEC §5.6: a MANUAL review policy, a total above max_total): an
// invoice they hold stays a DRAFT that NEEDS_REVIEW, charged once approved
// (invoice.needs_review); any other is finalized (numbered, OPEN,
// invoice.finalized) and charged at once (next_action CHARGE now). It
// emits recurring.cycle.created.
func (s *Service) startImmediate(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	c := &Cycle{
		ID: billing.NewID(billing.PrefixCycle), BusinessID: plan.BusinessID, PlanID: plan.ID, CustomerID: plan.CustomerID,
		CycleNumber: 0, Type: CycleTypeImmediate, Status: CycleStatusScheduled, ScheduledTimestamp: now, Currency: string(plan.Currency),
		Amount: decimal.NewNullDecimal(plan.Amount), AmountFixedAt: &now, FixAt: now, UsageWindowStart: now, UsageWindowEnd: now,
		NextAction: ptr(ActionCharge), NextActionAt: &now, Created: now, Updated: now,
	}
	inv := &Invoice{ID: billing.NewID(billing.PrefixInvoice), BusinessID: plan.BusinessID, CycleID: c.ID, PlanID: plan.ID,
		CustomerID: plan.CustomerID, Currency: plan.Currency, PeriodStart: now, PeriodEnd: now, Status: InvoiceStatusDraft,
		ReviewStatus: ReviewNotRequired, ReviewReasons: []string{}, Subtotal: plan.Amount, Total: plan.Amount, DueAt: now, Created: now, Updated: now}
	c.InvoiceID = &inv.ID
	c.bind(plan)
	description := "Base fee"
	if plan.Description != nil && *plan.Description != "" {
		description = *plan.Description
	}
	line := &InvoiceLine{ID: billing.NewID(prefixInvoiceLine), BusinessID: plan.BusinessID, InvoiceID: inv.ID, Position: 1, Kind: LineBase,
		Description: description + " (charged at the plan's start)", Quantity: decimal.NewNullDecimal(decimal.NewFromInt(1)),
		UnitAmount: decimal.NewNullDecimal(plan.Amount), Amount: plan.Amount, Created: now}
	f := &fixing{cycle: c, plan: plan, invoice: inv, lines: []*InvoiceLine{line}}
	f.review(now, nil)
	if inv.ReviewStatus == ReviewNeedsReview {
		c.NextAction, c.NextActionAt = nil, nil // charged once approved
	}
	if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("insert the immediate cycle of plan %s: %w", plan.ID, err)
	}
	if _, err := tx.NewInsert().Model(inv).Exec(ctx); err != nil {
		return fmt.Errorf("insert the invoice of plan %s's immediate cycle: %w", plan.ID, err)
	}
	if _, err := tx.NewInsert().Model(line).Exec(ctx); err != nil {
		return fmt.Errorf("insert the line of plan %s's immediate cycle: %w", plan.ID, err)
	}
	if _, err := outbox.Emit(ctx, tx, plan.BusinessID, outbox.RecurringCycleCreated, now, c); err != nil {
		return err
	}
	note := "the immediate charge of the plan (FULL_AMOUNT)"
	if inv.ReviewStatus == ReviewNeedsReview {
		note += "; " + strings.Join(f.notes, "; ")
		if err := audit(ctx, tx, inv, "needs_review", ActorEngine, &note, now); err != nil {
			return err
		}
		if err := loadDetails(ctx, tx, inv); err != nil {
			return err
		}
		_, err := outbox.Emit(ctx, tx, plan.BusinessID, outbox.InvoiceNeedsReview, now, inv)
		return err
	}
	if err := audit(ctx, tx, inv, "finalized", ActorEngine, &note, now); err != nil {
		return err
	}
	return finalizeOne(ctx, tx, inv, now)
}

// activateAfterImmediate activates plan (locked) once its immediate cycle
// succeeded: ACTIVE from now, recurring.plan.activated, cycle 1 and
// recurring.cycle.created. A plan deactivated meanwhile stays INACTIVE.
func (s *Service) activateAfterImmediate(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	if plan.Status != PlanStatusPending {
		return nil
	}
	plan.Status, plan.ActivatedAt, plan.Updated = PlanStatusActive, &now, now
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("status", "activated_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("activate plan %s: %w", plan.ID, err)
	}
	return s.startCycles(ctx, tx, plan, now)
}

// immediateFailed ends plan's immediate cycle c FAILED after its attempt
// failed (a is its last action): the invoice is voided (the plan never
// started, so nothing is owed), recurring.cycle.failed, and the plan,
// still PENDING, becomes INACTIVE with the attempt's failure code
// (recurring.plan.inactivated). The customer is not notified: no bill is
// left to pay.
func (s *Service) immediateFailed(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, inv *Invoice, a *Attempt, now time.Time) error {
	c.Status = CycleStatusFailed
	if err := saveCycleState(ctx, tx, c); err != nil {
		return err
	}
	if inv != nil && inv.Status == InvoiceStatusOpen && inv.AmountPaid.IsZero() {
		if err := voidInvoices(ctx, tx, []*Invoice{inv}, ActorEngine, ptr("the plan's immediate charge failed"), now); err != nil {
			return err
		}
	}
	if err := loadAttempts(ctx, tx, c); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, c.BusinessID, outbox.RecurringCycleFailed, now, c); err != nil {
		return err
	}
	if plan.Status != PlanStatusPending {
		return nil
	}
	plan.FailureCode = a.FailureCode
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("failure_code").Exec(ctx); err != nil {
		return fmt.Errorf("record the failure of plan %s: %w", plan.ID, err)
	}
	return s.inactivate(ctx, tx, plan, now)
}
