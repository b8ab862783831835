package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Charging (SPEC §5.3, docs/engine.md). A due CHARGE opens the cycle's next
// action — a new attempt, or the next token of the current one — writes
// its row with the provider key and sets next_action SEND_CHARGE a lease
// ahead, and commits; only then is the provider called, outside any
// transaction. The outcome comes back through Settled, in the transaction
// that records the payment. A worker that dies before recording the call
// leaves SEND_CHARGE to fall due, and the action is sent again with the
// same key, which the provider answers with its first answer: an action is
// never paid twice.

// chargeLease is how long a worker has, by the business clock, to send an
// action it opened before SEND_CHARGE falls due and another worker sends it.
const chargeLease = 2 * time.Minute

func init() {
	registerStep(ActionCharge, chargeStep)
	registerStep(ActionSendCharge, sendChargeStep)
}

// outgoing is an action committed and still to be sent to the provider.
type outgoing struct {
	attempt     *Attempt
	currency    billing.Currency
	reference   string
	description string

	// When the action's payment request was stored in the transaction
	// that opened it (openRequests), pr is that request, committed
	// SENDING, to send with token; or refusal is the payment service's
	// answer instead.
	pr      *payments.PaymentRequest
	refusal error
	token   *payments.PaymentToken

	// opened is the action's rows as the transaction that opened it
	// committed them, when it is a plain one (settle_opened.go).
	opened *openedCharge
}

// chargeStep opens the next action of each due CHARGE cycle of the batch,
// in one transaction, then sends them.
func chargeStep(ctx context.Context, s *Service, b DueBatch) (int, error) {
	return s.stepThenSend(ctx, b, func(ctx context.Context, tx bun.Tx, plans map[string]*Plan, cs []*Cycle) ([]*outgoing, int, error) {
		return s.openCharges(ctx, tx, plans, cs, b.Now)
	})
}

// sendChargeStep sends again the actions whose lease ran out: the worker
// that opened them died before or while it called the provider, or
// before it recorded the answer. The lease is renewed first, so that one
// worker at a time sends an action.
func sendChargeStep(ctx context.Context, s *Service, b DueBatch) (int, error) {
	return s.stepThenSend(ctx, b, eachCycle(func(ctx context.Context, tx bun.Tx, plan *Plan, c *Cycle) (*outgoing, error) {
		a, err := lastAttempt(ctx, tx, c)
		if err != nil {
			return nil, err
		}
		if c.Status != CycleStatusPending || a == nil || a.Status != AttemptPending {
			s.log.Error("a cycle is due to send a charge but has none pending; its next action is cleared", "cycle_id", c.ID, "status", c.Status)
			return nil, clearNextAction(ctx, tx, c, b.Now)
		}
		c.NextActionAt, c.Updated = ptr(b.Now.Add(chargeLease)), b.Now
		if err := saveCycleState(ctx, tx, c); err != nil {
			return nil, err
		}
		return s.outgoingOf(ctx, tx, plan, c, a)
	}))
}

// opener opens the actions of a batch of due cycles (locked, with their
// plans locked, by id; a cycle whose plan is missing is left alone) in
// tx, and returns those to send after commit and how many cycles it moved
// on.
type opener func(ctx context.Context, tx bun.Tx, plans map[string]*Plan, cs []*Cycle) ([]*outgoing, int, error)

// eachCycle is the opener that applies open to each cycle in turn.
func eachCycle(open func(context.Context, bun.Tx, *Plan, *Cycle) (*outgoing, error)) opener {
	return func(ctx context.Context, tx bun.Tx, plans map[string]*Plan, cs []*Cycle) ([]*outgoing, int, error) {
		var sends []*outgoing
		moved := 0
		for _, c := range cs {
			plan := plans[c.PlanID]
			if plan == nil {
				continue
			}
			out, err := open(ctx, tx, plan, c.bind(plan))
			if err != nil {
				return nil, 0, fmt.Errorf("cycle %s: %w", c.ID, err)
			}
			moved++
			if out != nil {
				sends = append(sends, out)
			}
		}
		return sends, moved, nil
	}
}

// stepThenSend locks the batch's due cycles and their plans, opens their
// actions with open in one transaction, commits, and sends the actions
// open returned. A cycle whose plan another transaction holds is left due
// for a later run. It returns how many cycles it moved on.
func (s *Service) stepThenSend(ctx context.Context, b DueBatch, open opener) (int, error) {
	var sends []*outgoing
	moved := 0
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		sends, moved = nil, 0
		cs, err := s.LockDue(ctx, tx, b)
		if err != nil || len(cs) == 0 {
			return err
		}
		plans, err := lockPlans(ctx, tx, cs)
		if err != nil {
			return err
		}
		sends, moved, err = open(ctx, tx, plans, cs)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.sendAll(ctx, b.Business, b.Now, sends)
	return moved, nil
}

// lockPlansSQL locks the plans $2 of business $1 that no other transaction
// holds, and reads them.
var lockPlansSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Plan)(nil)).ColumnExpr("?TableColumns").ColumnExpr(`"plan".xmin::text::bigint AS xmin`).
		Where("business_id = $1").Where("id = ANY($2::text[])").For("UPDATE SKIP LOCKED").String()
})

// lockPlans locks the plans of cs that no other transaction holds (SKIP
// LOCKED: the cycles are locked already, and plans are otherwise locked
// before their cycles, so waiting here could deadlock) and returns them by
// id, with their schedules.
func lockPlans(ctx context.Context, tx bun.IDB, cs []*Cycle) (map[string]*Plan, error) {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.PlanID)
	}
	var ps []*Plan
	if err := lockPlansSQL.Scan(ctx, tx, &ps, cs[0].BusinessID, ids); err != nil {
		return nil, fmt.Errorf("lock the plans of due cycles: %w", err)
	}
	if err := loadSchedules(ctx, tx, ps...); err != nil {
		return nil, err
	}
	out := make(map[string]*Plan, len(ps))
	for _, p := range ps {
		out[p.ID] = p
	}
	return out, nil
}

// clearNextAction leaves the cycle with nothing due.
func clearNextAction(ctx context.Context, tx bun.IDB, c *Cycle, now time.Time) error {
	c.NextAction, c.NextActionAt, c.Updated = nil, nil, now
	return saveCycleState(ctx, tx, c)
}

// chargeable reports whether plan's cycle c may be charged now: a cycle
// still to be paid, of an ACTIVE plan (or, for the immediate cycle, of the
// PENDING plan it activates).
func chargeable(plan *Plan, c *Cycle) bool {
	switch c.Status {
	case CycleStatusScheduled, CycleStatusRetrying, CycleStatusPending:
	default:
		return false
	}
	return plan.Status == PlanStatusActive || (plan.Status == PlanStatusPending && c.Type == CycleTypeImmediate)
}

// openAction opens the next action of plan's cycle c (both locked in tx)
// at now: the next token of its current attempt when the cycle is PENDING
// (an action failed and tokens are left), else a new attempt (FORCED when
// forced, by the force_attempt request with Idempotency-Key requestKey,
// "" for none). It returns the action to send after commit, or nil when the
// cycle moved on without a charge: nothing left to charge (a zero amount,
// an invoice paid by other means) succeeds it; an invoice that is not
// chargeable (held for review, not finalized, void) clears its next action
// until review puts CHARGE back; an attempt with no ACTIVE token left
// fails.
func (s *Service) openAction(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, now time.Time, forced bool, requestKey string) (*outgoing, error) {
	if !chargeable(plan, c) {
		if c.Status == CycleStatusPending && plan.Status == PlanStatusInactive {
			// The plan was deactivated between two actions of an attempt
			// (its earlier tokens declined): the cycle goes as the plan's
			// waiting cycles went, cancelled with its invoice voided,
			// rather than waiting for ever.
			c.Status = CycleStatusCancelled
			if err := clearNextAction(ctx, tx, c, now); err != nil {
				return nil, err
			}
			return nil, voidOfCycles(ctx, tx, plan.BusinessID, []string{c.ID}, "its plan became INACTIVE during the cycle's charge", now)
		}
		s.log.Warn("a cycle that can no longer be charged was due to be; its next action is cleared",
			"cycle_id", c.ID, "status", c.Status, "plan_status", plan.Status)
		return nil, clearNextAction(ctx, tx, c, now)
	}
	inv, err := cycleInvoice(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	switch {
	case inv != nil && inv.Status == InvoiceStatusPaid:
		// Paid by other means (which ends the cycle too, so this is only
		// a safeguard).
		return nil, s.succeed(ctx, tx, plan, c, decimal.Zero, now)
	case inv == nil || !inv.Chargeable():
		return nil, clearNextAction(ctx, tx, c, now)
	case inv.AmountDue().IsZero():
		if err := s.receive(ctx, tx, plan, inv, decimal.Zero, "nothing to charge", now); err != nil {
			return nil, err
		}
		return nil, s.succeed(ctx, tx, plan, c, decimal.Zero, now)
	}
	if !forced {
		// A payment of the invoice with a saved token is under way: its
		// outcome decides (success ends the cycle), so look again later.
		pay, err := openPayment(ctx, tx, inv, invoicePay, now)
		if err != nil {
			return nil, err
		}
		if pay != nil {
			c.NextActionAt, c.Updated = ptr(now.Add(chargeLease)), now
			return nil, saveCycleState(ctx, tx, c)
		}
		// A payment link the customer may be paying on: charge once it
		// has expired (a new action re-checks everything then).
		hold, err := openLink(ctx, tx, inv, now)
		if err != nil {
			return nil, err
		}
		if hold != nil {
			c.NextActionAt, c.Updated = ptr(hold.Until), now
			return nil, saveCycleState(ctx, tx, c)
		}
	}
	a := newAttempt(c, inv, now)
	last, err := lastAttempt(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	tried := map[string]bool{}
	if c.Status == CycleStatusPending && !forced && last != nil {
		if last.Status == AttemptPending {
			// The last action is still under way: send it again (same
			// key), never a second one beside it.
			c.NextAction, c.NextActionAt, c.Updated = ptr(ActionSendCharge), ptr(now.Add(chargeLease)), now
			if err := saveCycleState(ctx, tx, c); err != nil {
				return nil, err
			}
			return outgoingFor(plan, c, inv, last), nil
		}
		// The next token of the current attempt.
		if tried, _, err = triedTokens(ctx, tx, c, last.AttemptNumber); err != nil {
			return nil, err
		}
		a.AttemptNumber, a.ActionNumber, a.Type = last.AttemptNumber, last.ActionNumber+1, last.Type
	} else {
		startAttempt(c, a, last, forced)
		if forced && requestKey != "" {
			a.RequestKey = &requestKey
		}
	}
	a.ProviderKey = attemptKey(c.ID, a.AttemptNumber, a.ActionNumber)
	tok, err := s.nextToken(ctx, tx, plan, tried)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		if a.ActionNumber > 1 {
			// The tokens left when the last action failed are gone since:
			// the attempt is over.
			c.Status, c.Updated = CycleStatusPending, now
			if err := saveCycleState(ctx, tx, c); err != nil {
				return nil, err
			}
			return nil, s.attemptFailed(ctx, tx, plan, c, inv, last, now)
		}
		a.Status, a.FailureCode = AttemptFailed, ptr(failureNoToken)
		if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert attempt %s: %w", a.ProviderKey, err)
		}
		return nil, s.attemptFailed(ctx, tx, plan, c, inv, a, now)
	}
	a.PaymentTokenID = &tok.ID
	if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert attempt %s: %w", a.ProviderKey, err)
	}
	c.Status, c.NextAction, c.NextActionAt, c.Updated = CycleStatusPending, ptr(ActionSendCharge), ptr(now.Add(chargeLease)), now
	if err := saveCycleState(ctx, tx, c); err != nil {
		return nil, err
	}
	return outgoingFor(plan, c, inv, a), nil
}

// newAttempt is a new PENDING action of cycle c at now, for what its
// invoice inv owes.
func newAttempt(c *Cycle, inv *Invoice, now time.Time) *Attempt {
	return &Attempt{ID: billing.NewID(prefixAttempt), BusinessID: c.BusinessID, CycleID: c.ID, Status: AttemptPending,
		Amount: inv.AmountDue(), Created: now, Updated: now}
}

// startAttempt makes a the first action of cycle c's next attempt after
// its last action last (nil: none yet), FORCED when forced, and counts it
// on c.
func startAttempt(c *Cycle, a *Attempt, last *Attempt, forced bool) {
	a.AttemptNumber, a.ActionNumber = 1, 1
	if last != nil {
		a.AttemptNumber = last.AttemptNumber + 1
	}
	switch {
	case forced:
		a.Type = AttemptForced
		c.ForcedAttemptCount++
	case c.AttemptCount == 0:
		a.Type = AttemptInitial
		c.AttemptCount++
	default:
		a.Type = AttemptRetry
		c.AttemptCount++
	}
}

// outgoingOf returns the pending action a of plan's cycle c to send again.
func (s *Service) outgoingOf(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, a *Attempt) (*outgoing, error) {
	inv, err := cycleInvoice(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	return outgoingFor(plan, c, inv, a), nil
}

// outgoingFor is action a of plan's cycle c, billed by inv: the payment
// request carries the invoice number as its reference_id.
func outgoingFor(plan *Plan, c *Cycle, inv *Invoice, a *Attempt) *outgoing {
	ref := c.ID
	if inv != nil && inv.Number != nil {
		ref = *inv.Number
	}
	return &outgoing{attempt: a, currency: plan.Currency, reference: ref,
		description: fmt.Sprintf("Cycle %d of plan %s (attempt %d, action %d)", c.CycleNumber, plan.ReferenceID, a.AttemptNumber, a.ActionNumber)}
}

// cycleInvoice reads and locks the invoice of cycle c, or returns nil when
// it has none yet.
func cycleInvoice(ctx context.Context, tx bun.IDB, c *Cycle) (*Invoice, error) {
	if c.InvoiceID == nil {
		return nil, nil
	}
	inv, err := getInvoice(ctx, tx, c.BusinessID, *c.InvoiceID, true)
	if err != nil {
		return nil, fmt.Errorf("the invoice of cycle %s: %w", c.ID, err)
	}
	return inv, nil
}

// sendAll sends the actions, with their provider keys, and handles each
// answer (sent): those whose payment requests were stored when they were
// opened through the payment service's SendCharges, the others through
// its ChargeBatch, which stores their requests first (or finds them,
// for an action sent again).
func (s *Service) sendAll(ctx context.Context, biz *business.Business, now time.Time, sends []*outgoing) {
	var opened, rest []*outgoing
	for _, o := range sends {
		switch {
		case o.refusal != nil:
			s.sent(ctx, now, o.attempt, nil, o.refusal)
		case o.pr != nil:
			opened = append(opened, o)
		default:
			rest = append(rest, o)
		}
	}
	if len(opened) > 0 {
		prs, toks := make([]*payments.PaymentRequest, len(opened)), map[string]*payments.PaymentToken{}
		kept := map[string]*openedCharge{}
		for i, o := range opened {
			prs[i], toks[o.token.ID] = o.pr, o.token
			if o.opened != nil {
				kept[o.attempt.ProviderKey] = o.opened
			}
		}
		answers, errs := s.payments.SendCharges(withOpened(ctx, kept), biz, now, prs, toks)
		for i, o := range opened {
			s.sent(ctx, now, o.attempt, answers[i], errs[i])
		}
	}
	if len(rest) > 0 {
		prs, errs := s.payments.ChargeBatch(ctx, biz, now, chargeParams(rest))
		for i, o := range rest {
			s.sent(ctx, now, o.attempt, prs[i], errs[i])
		}
	}
}

// chargeParams are the charges of sends, keyed by their actions' provider
// keys.
func chargeParams(sends []*outgoing) []payments.ChargeParams {
	ps := make([]payments.ChargeParams, len(sends))
	for i, o := range sends {
		a := o.attempt
		ps[i] = payments.ChargeParams{PaymentTokenID: *a.PaymentTokenID, Amount: billing.Money{Amount: a.Amount, Currency: o.currency},
			ReferenceID: o.reference, Description: &o.description, IdempotencyKey: a.ProviderKey}
	}
	return ps
}

// sent handles what Settled does not see of the answer to action a: the
// payment request pr or the error err. A final outcome was settled in
// the payment's own transaction. An answer still pending (the provider
// answers later, or did not answer) releases the lease: the callback or
// the reconciler settles the payment, and Settled the cycle. A charge the
// payment service refuses before asking the provider (the token was
// cancelled meanwhile) fails the action. Any other error keeps the lease,
// so SEND_CHARGE sends the action again when it runs out.
func (s *Service) sent(ctx context.Context, now time.Time, a *Attempt, pr *payments.PaymentRequest, err error) {
	switch code := billing.CodeOf(err); {
	case err == nil && pr.Final():
		return
	case err == nil:
		err = s.release(ctx, a, pr.ID, now)
	case code == billing.EINVALID || code == billing.ENOTFOUND:
		s.log.Warn("the payment service refused a cycle's charge; the action fails", "provider_key", a.ProviderKey, "error", err.Error())
		err = s.refused(ctx, a, now)
	}
	if err != nil {
		s.log.Warn("a cycle's charge was not recorded; it is sent again when its lease runs out",
			"provider_key", a.ProviderKey, "error", err.Error())
	}
}

// release gives up the lease of action a after the provider answered
// that the payment is under way: its outcome comes by callback or
// reconciler, through Settled. Nothing changes when the action settled
// meanwhile.
func (s *Service) release(ctx context.Context, a *Attempt, prID string, now time.Time) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model((*Attempt)(nil)).Set("payment_request_id = ?", prID).Set("updated = ?", now).
			Where("id = ?", a.ID).Where("payment_request_id IS NULL").Exec(ctx); err != nil {
			return fmt.Errorf("record the payment request of attempt %s: %w", a.ProviderKey, err)
		}
		_, err := tx.NewUpdate().Model((*Cycle)(nil)).Set("next_action = NULL, next_action_at = NULL").Set("updated = ?", now).
			Where("id = ?", a.CycleID).Where("status = ?", CycleStatusPending).Where("next_action = ?", ActionSendCharge).
			Where("EXISTS (SELECT 1 FROM cycle_attempts WHERE id = ? AND status = ?)", a.ID, AttemptPending).Exec(ctx)
		if err != nil {
			return fmt.Errorf("release the lease of attempt %s: %w", a.ProviderKey, err)
		}
		return nil
	})
}

// refused fails action a, which the payment service refused to send (its
// token was cancelled or expired after the action was opened): no payment
// request exists for it, so nothing was or will be charged.
func (s *Service) refused(ctx context.Context, a *Attempt, now time.Time) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		plan, c, err := lockCycle(ctx, tx, a.BusinessID, a.CycleID)
		if err != nil {
			return err
		}
		if err := tx.NewSelect().Model(a).WherePK().For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("lock attempt %s: %w", a.ProviderKey, err)
		}
		n, err := tx.NewSelect().Table("payment_requests").Where("business_id = ?", a.BusinessID).Where("provider_key = ?", a.ProviderKey).Count(ctx)
		if err != nil || n > 0 {
			return err
		}
		return s.actionFailed(ctx, tx, plan, c, a, failureNoToken, nil, now)
	})
}
