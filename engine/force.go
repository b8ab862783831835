package engine

import (
	"context"
	"fmt"
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
//
// requestKey is the request's Idempotency-Key ("" for none), stored on the
// attempt it opens. The same request made again finds that attempt and
// carries on from it instead (resumeForced): it never opens a second one,
// and it answers with the cycle however the attempt went.
func (s *Service) ForceAttempt(ctx context.Context, biz *business.Business, now time.Time, planID, id, requestKey string) (*Cycle, error) {
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
		if requestKey != "" {
			prior, err := forcedBy(ctx, tx, c, requestKey)
			if err != nil {
				return err
			}
			if prior != nil {
				out, err = s.resumeForced(ctx, tx, plan, c.bind(plan), prior, now)
				return err
			}
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
		out, err = s.openAction(ctx, tx, plan, c, now, true, requestKey)
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

// forcedBy returns the action of cycle c that the force_attempt request
// with Idempotency-Key key opened, or nil.
func forcedBy(ctx context.Context, tx bun.IDB, c *Cycle, key string) (*Attempt, error) {
	var as []*Attempt
	if err := tx.NewSelect().Model(&as).Where("cycle_id = ?", c.ID).Where("request_key = ?", key).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find the forced attempt of cycle %s: %w", c.ID, err)
	}
	if len(as) == 0 {
		return nil, nil
	}
	return as[0], nil
}

// resumeForced carries on from action a, which an earlier run of the same
// force_attempt request opened on plan's cycle c (both locked in tx): when
// the action was never answered (the cycle still holds its SEND_CHARGE
// lease: that run was cut short before or during the provider call), its
// lease is renewed and it is returned to send again, with its own
// provider key, so that the provider answers as it did the first time, if
// it was called; otherwise the attempt's outcome is known or awaited, and
// nothing is to be done.
func (s *Service) resumeForced(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, a *Attempt, now time.Time) (*outgoing, error) {
	if a.Status != AttemptPending || c.Status != CycleStatusPending || c.NextAction == nil || *c.NextAction != ActionSendCharge {
		return nil, nil
	}
	c.NextActionAt, c.Updated = ptr(now.Add(chargeLease)), now
	if err := saveCycleState(ctx, tx, c); err != nil {
		return nil, err
	}
	return s.outgoingOf(ctx, tx, plan, c, a)
}
