package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// settlePay is Settled for a PAY request that reached a final state, in
// the transaction that records it: the outcome of one action of a cycle's
// attempt (found by its provider key), or a payment of an invoice made
// with POST /invoices/{id}/pay or a payment link. Any other PAY (one the
// utility made itself) concerns no cycle.
func (s *Service) settlePay(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, now time.Time) error {
	a := new(Attempt)
	err := tx.NewSelect().Model(a).Where("business_id = ?", pr.BusinessID).Where("provider_key = ?", pr.ProviderKey).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return s.settleInvoicePayment(ctx, tx, pr, now)
	}
	if err != nil {
		return fmt.Errorf("find the attempt of payment request %s: %w", pr.ID, err)
	}
	plan, c, err := lockCycle(ctx, tx, pr.BusinessID, a.CycleID)
	if err != nil {
		return err
	}
	if err := tx.NewSelect().Model(a).WherePK().For("UPDATE").Scan(ctx); err != nil {
		return fmt.Errorf("lock attempt %s: %w", a.ProviderKey, err)
	}
	if pr.Status == payments.StatusSucceeded {
		return s.actionSucceeded(ctx, tx, plan, c, a, pr, now)
	}
	code := "PAYMENT_" + pr.Status
	if pr.FailureCode != nil {
		code = *pr.FailureCode
	}
	return s.actionFailed(ctx, tx, plan, c, a, code, &pr.ID, now)
}

// lockCycle locks the plan of cycle id, then the cycle (the engine's lock
// order: plan, cycle, invoice, customer), and returns both, bound.
func lockCycle(ctx context.Context, tx bun.IDB, businessID, id string) (*Plan, *Cycle, error) {
	var planID string
	if err := tx.NewSelect().Table("recurring_cycles").Column("plan_id").Where("id = ?", id).Scan(ctx, &planID); err != nil {
		return nil, nil, fmt.Errorf("read the plan of cycle %s: %w", id, err)
	}
	plan, err := getPlan(ctx, tx, businessID, planID, true)
	if err != nil {
		return nil, nil, err
	}
	c, err := getCycle(ctx, tx, plan, id, true)
	if err != nil {
		return nil, nil, err
	}
	return plan, c, nil
}

// actionSucceeded records that action a of plan's cycle c took the money.
// A cycle still being charged (or waiting for a retry, when the capture
// comes after a reported failure) succeeds with it. A capture reported
// after the cycle ended is still the invoice's money: a FAILED cycle's
// UNCOLLECTIBLE invoice is paid by it (and the customer reinstated), and
// money the invoice cannot take is recorded as a credit note to refund.
func (s *Service) actionSucceeded(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, a *Attempt, pr *payments.PaymentRequest, now time.Time) error {
	if a.Status == AttemptSucceeded {
		return nil
	}
	if a.Status == AttemptFailed {
		s.log.Warn("a charge reported failed was captured after all; recording the payment", "provider_key", a.ProviderKey, "cycle_status", c.Status)
	}
	a.Status, a.FailureCode, a.PaymentRequestID, a.Updated = AttemptSucceeded, nil, &pr.ID, now
	if err := saveAttempt(ctx, tx, a); err != nil {
		return err
	}
	inv, err := cycleInvoice(ctx, tx, c)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("cycle %s was charged without an invoice", c.ID)
	}
	if err := s.receive(ctx, tx, plan, inv, pr.RequestAmount, requestSource(pr.ID), now); err != nil {
		return err
	}
	switch {
	case c.Status != CycleStatusPending && c.Status != CycleStatusScheduled && c.Status != CycleStatusRetrying:
		return nil
	case inv.Status != InvoiceStatusPaid:
		// Only a capture of an older action after the invoice changed can
		// pay part of it; the cycle goes on for the rest.
		s.log.Warn("a cycle's charge paid part of its invoice", "provider_key", a.ProviderKey, "invoice_id", inv.ID)
		return nil
	}
	return s.succeed(ctx, tx, plan, c, pr.RequestAmount, now)
}

// actionFailed records that action a of plan's cycle c failed with code
// and moves the cycle on, unless the action had already settled or the
// cycle has moved on without it.
func (s *Service) actionFailed(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, a *Attempt, code string, prID *string, now time.Time) error {
	if a.Status != AttemptPending {
		return nil
	}
	a.Status, a.FailureCode, a.Updated = AttemptFailed, &code, now
	if prID != nil {
		a.PaymentRequestID = prID
	}
	if err := saveAttempt(ctx, tx, a); err != nil {
		return err
	}
	if c.Status != CycleStatusPending {
		return nil
	}
	last, err := lastAttempt(ctx, tx, c)
	if err != nil || last.ID != a.ID {
		return err
	}
	// The next token of the attempt, if one is left, is charged at once.
	tried, _, err := triedTokens(ctx, tx, c, a.AttemptNumber)
	if err != nil {
		return err
	}
	if chargeable(plan, c) {
		tok, err := s.nextToken(ctx, tx, plan, tried)
		if err != nil {
			return err
		}
		if tok != nil {
			c.NextAction, c.NextActionAt, c.Updated = ptr(ActionCharge), &now, now
			return saveCycleState(ctx, tx, c)
		}
	}
	inv, err := cycleInvoice(ctx, tx, c)
	if err != nil {
		return err
	}
	return s.attemptFailed(ctx, tx, plan, c, inv, a, now)
}

// attemptFailed moves plan's cycle c (locked, PENDING) on after its attempt
// ended without success (a is its last action). The immediate cycle fails
// its plan. A plan deactivated meanwhile cancels the cycle. A FORCED
// attempt puts the cycle back where it was (it does not use up a
// scheduled attempt). A scheduled attempt is retried (RETRYING) while the
// cycle has attempts left, else the cycle FAILED.
func (s *Service) attemptFailed(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, inv *Invoice, a *Attempt, now time.Time) error {
	c.NextAction, c.NextActionAt, c.Updated = nil, nil, now
	switch {
	case c.Type == CycleTypeImmediate:
		return s.immediateFailed(ctx, tx, plan, c, inv, a, now)
	case plan.Status != PlanStatusActive:
		// Deactivation cancels waiting cycles; this one was being charged.
		c.Status = CycleStatusCancelled
		if err := saveCycleState(ctx, tx, c); err != nil {
			return err
		}
		return voidOfCycles(ctx, tx, c.BusinessID, []string{c.ID}, "the plan was deactivated while the cycle was being charged", now)
	case a.Type == AttemptForced:
		return s.afterForced(ctx, tx, c, now)
	}
	retries := 0
	if c.TotalRetry != nil && c.RetryIntervalCount != nil {
		retries = *c.TotalRetry
	}
	if c.AttemptCount >= 1+retries {
		return s.failCycle(ctx, tx, plan, c, inv, now)
	}
	// RETRYING: the next attempt retry_interval_count days after this
	// one's time (its first action's).
	_, first, err := triedTokens(ctx, tx, c, a.AttemptNumber)
	if err != nil {
		return err
	}
	next := first.Created.AddDate(0, 0, *c.RetryIntervalCount)
	a.NextRetryTimestamp, a.Updated = &next, now
	if err := saveAttempt(ctx, tx, a); err != nil {
		return err
	}
	c.Status, c.NextAction, c.NextActionAt = CycleStatusRetrying, ptr(ActionCharge), &next
	if err := saveCycleState(ctx, tx, c); err != nil {
		return err
	}
	if err := loadAttempts(ctx, tx, c); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, c.BusinessID, outbox.RecurringCycleRetrying, now, c); err != nil {
		return err
	}
	if !slices.Contains(c.FailedAttemptNotifications, c.AttemptCount) || inv == nil {
		return nil
	}
	return s.notice(ctx, tx, plan, c, notify.KindAttemptFailed, failedChannels,
		notify.Message{AttemptNumber: &c.AttemptCount, Amount: plan.money(inv.AmountDue())}, inv, now)
}

// afterForced puts cycle c back after a FORCED attempt failed: SCHEDULED
// for its scheduled timestamp when no scheduled attempt was made yet, else
// RETRYING for the retry its last scheduled attempt set.
func (s *Service) afterForced(ctx context.Context, tx bun.IDB, c *Cycle, now time.Time) error {
	c.Status, c.NextAction, c.NextActionAt = CycleStatusScheduled, ptr(ActionCharge), &c.ScheduledTimestamp
	if c.AttemptCount > 0 {
		var retry []time.Time
		if err := tx.NewSelect().Model((*Attempt)(nil)).Column("next_retry_timestamp").Where("cycle_id = ?", c.ID).
			Where("type <> ?", AttemptForced).Where("next_retry_timestamp IS NOT NULL").
			OrderExpr("attempt_number DESC").Limit(1).Scan(ctx, &retry); err != nil {
			return fmt.Errorf("read the next retry of cycle %s: %w", c.ID, err)
		}
		at := now
		if len(retry) == 1 {
			at = retry[0]
		}
		c.Status, c.NextActionAt = CycleStatusRetrying, &at
	}
	return saveCycleState(ctx, tx, c)
}

// succeed ends plan's cycle c (locked) SUCCEEDED at now, its invoice paid
// already: recurring.cycle.succeeded, the customer told of paid (when
// money was taken), and the plan moved on — the immediate cycle activates
// its plan, any other creates the next cycle or ends the plan.
func (s *Service) succeed(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, paid decimal.Decimal, now time.Time) error {
	c.Status, c.NextAction, c.NextActionAt, c.Updated = CycleStatusSucceeded, nil, nil, now
	if err := saveCycleState(ctx, tx, c); err != nil {
		return err
	}
	if err := loadAttempts(ctx, tx, c); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, c.BusinessID, outbox.RecurringCycleSucceeded, now, c); err != nil {
		return err
	}
	if paid.IsPositive() {
		if err := s.notice(ctx, tx, plan, c, notify.KindCycleSucceeded, succeededChannels,
			notify.Message{Amount: plan.money(paid)}, nil, now); err != nil {
			return err
		}
	}
	if c.Type == CycleTypeImmediate {
		return s.activateAfterImmediate(ctx, tx, plan, now)
	}
	return s.advance(ctx, tx, plan, c, now)
}

// failCycle ends plan's cycle c FAILED after its last attempt: invoice
// UNCOLLECTIBLE (still owed, payable later), recurring.cycle.failed, the
// customer told (CYCLE_FAILED, with a link to pay), then the plan's
// failed_cycle_action: STOP makes the plan INACTIVE (its waiting cycles
// CANCELLED) and suspends the customer's service; RESUME goes on to the
// next cycle, the invoice staying as arrears.
func (s *Service) failCycle(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, inv *Invoice, now time.Time) error {
	c.Status = CycleStatusFailed
	if err := saveCycleState(ctx, tx, c); err != nil {
		return err
	}
	if inv != nil && inv.Status == InvoiceStatusOpen {
		inv.Status, inv.Updated = InvoiceStatusUncollectible, now
		if err := s.saveInvoicePayment(ctx, tx, inv, "uncollectible", "the cycle's last attempt failed", now); err != nil {
			return err
		}
	}
	if err := loadAttempts(ctx, tx, c); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, c.BusinessID, outbox.RecurringCycleFailed, now, c); err != nil {
		return err
	}
	if inv != nil {
		if err := s.notice(ctx, tx, plan, c, notify.KindCycleFailed, failedChannels,
			notify.Message{Amount: plan.money(inv.AmountDue())}, inv, now); err != nil {
			return err
		}
	}
	if plan.FailedCycleAction != failedCycleStop {
		return s.advance(ctx, tx, plan, c, now)
	}
	if err := s.inactivate(ctx, tx, plan, now); err != nil {
		return err
	}
	return s.suspend(ctx, tx, plan, inv, now)
}

// receive applies amount, paid at now (source says by what), to invoice
// inv (locked): what it still owes is paid (PAID once nothing is left,
// invoice.paid, and a customer whose service the invoice's failure
// suspended is reinstated when nothing else holds it), and whatever
// exceeds what it owes — money taken for an invoice paid already, void,
// or not yet owed — becomes a credit note, a refund to make.
func (s *Service) receive(ctx context.Context, tx bun.IDB, plan *Plan, inv *Invoice, amount decimal.Decimal, source string, now time.Time) error {
	due := decimal.Zero
	if inv.Status == InvoiceStatusOpen || inv.Status == InvoiceStatusUncollectible {
		due = inv.AmountDue()
	}
	applied := decimal.Min(amount, due)
	if excess := amount.Sub(applied); excess.IsPositive() {
		s.log.Error("money was taken beyond what an invoice owes; a credit note records the refund to make",
			"invoice_id", inv.ID, "status", inv.Status, "excess", excess.String(), "source", source)
		cn := &CreditNote{ID: billing.NewID(billing.PrefixCreditNote), BusinessID: inv.BusinessID, InvoiceID: inv.ID, Amount: excess,
			Reason: fmt.Sprintf("%s paid %s more than the invoice owed (it was %s): refund it", source,
				billing.Money{Amount: excess, Currency: inv.Currency}, inv.Status),
			Actor: ActorEngine, Created: now}
		if _, err := tx.NewInsert().Model(cn).Exec(ctx); err != nil {
			return fmt.Errorf("record a credit note on invoice %s: %w", inv.ID, err)
		}
	}
	if !(inv.Status == InvoiceStatusOpen || inv.Status == InvoiceStatusUncollectible) {
		return nil
	}
	wasUncollectible := inv.Status == InvoiceStatusUncollectible
	inv.AmountPaid, inv.Updated = inv.AmountPaid.Add(applied), now
	if inv.AmountPaid.LessThan(inv.Total) {
		return s.saveInvoicePayment(ctx, tx, inv, "part_paid", paidNote(source, billing.Money{Amount: applied, Currency: inv.Currency}), now)
	}
	inv.Status, inv.PaidAt = InvoiceStatusPaid, &now
	if err := s.saveInvoicePayment(ctx, tx, inv, "paid", paidNote(source, billing.Money{Amount: applied, Currency: inv.Currency}), now); err != nil {
		return err
	}
	if err := loadDetails(ctx, tx, inv); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, inv.BusinessID, outbox.InvoicePaid, now, inv); err != nil {
		return err
	}
	if !wasUncollectible {
		return nil
	}
	return s.reconsiderService(ctx, tx, plan, inv, now)
}

// requestSource names payment request id as what paid an invoice, in
// audit notes and credit-note reasons.
func requestSource(id string) string { return "payment request " + id }

// paidNote is the audit note of a payment of amount by source.
func paidNote(source string, amount billing.Money) string {
	return fmt.Sprintf("%s paid %s", source, amount)
}

// saveInvoicePayment writes what charging changes on invoice inv (its
// status, what was paid and when) with an audit entry by the engine.
func (s *Service) saveInvoicePayment(ctx context.Context, tx bun.IDB, inv *Invoice, action, note string, now time.Time) error {
	if _, err := tx.NewUpdate().Model(inv).WherePK().Column("status", "amount_paid", "paid_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update invoice %s: %w", inv.ID, err)
	}
	return audit(ctx, tx, inv, action, ActorEngine, &note, now)
}
