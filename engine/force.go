package engine

import (
	"context"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// ForceAttempt makes an attempt of the business's cycle id of plan planID
// now (type FORCED), as Xendit's force_attempt: the plan's tokens in rank
// order, the provider called before it returns, and the cycle returned
// with the outcome so far (SUCCEEDED; PENDING while the provider's answer
// or the next token's is awaited; or back to SCHEDULED or RETRYING after
// a failure). A forced attempt does not use up a scheduled attempt: after
// its failure the cycle keeps its scheduled timestamp or its next retry,
// and no customer notification is sent. Only a SCHEDULED cycle (not the
// immediate one) or a RETRYING one, of an ACTIVE plan, whose invoice is
// OPEN and approved or not requiring review, and with fewer than 5 forced
// attempts, can be forced; else 403 INELIGIBLE_CYCLE_REQUEST. An attempt
// cut short by a crash is sent by the engine itself (SEND_CHARGE); until
// it settles the cycle is PENDING and cannot be forced.
func (s *Service) ForceAttempt(ctx context.Context, biz *business.Business, now time.Time, planID, id string) (*Cycle, error) {
	now = truncate(now)
	var out *outgoing
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		plan, err := getPlan(ctx, tx, biz.ID, planID, true)
		if err != nil {
			return err
		}
		c, err := getCycle(ctx, tx, plan, id, true)
		if err != nil {
			return err
		}
		switch {
		case c.Type != CycleTypeScheduled || (c.Status != CycleStatusScheduled && c.Status != CycleStatusRetrying):
			return errIneligibleCycle("cycle %d is a %s cycle %s; only a SCHEDULED or RETRYING scheduled cycle can be forced", c.CycleNumber, c.Type, c.Status)
		case plan.Status != PlanStatusActive:
			return errIneligibleCycle("plan %s is %s; only the cycles of an ACTIVE plan can be forced", plan.ID, plan.Status)
		case c.ForcedAttemptCount >= maxForcedAttempts:
			return errIneligibleCycle("cycle %d has had %d forced attempts, the most a cycle can have", c.CycleNumber, maxForcedAttempts)
		}
		inv, err := cycleInvoice(ctx, tx, c)
		if err != nil {
			return err
		}
		if inv == nil || !inv.Chargeable() {
			return errIneligibleCycle("cycle %d's amount is not fixed, or its invoice waits for review or is held: it cannot be charged yet", c.CycleNumber)
		}
		pay, err := openPayment(ctx, tx, inv, invoicePay, now)
		if err != nil {
			return err
		}
		if pay != nil {
			return errIneligibleCycle("a payment of cycle %d's invoice is under way", c.CycleNumber)
		}
		hold, err := openLink(ctx, tx, inv, now)
		if err != nil {
			return err
		}
		if hold != nil {
			return errIneligibleCycle("%s", hold.explain(inv))
		}
		out, err = s.openAction(ctx, tx, plan, c, now, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out != nil {
		s.sendAll(ctx, biz, now, []*outgoing{out})
	}
	return s.GetCycle(ctx, s.db, biz.ID, planID, id)
}
