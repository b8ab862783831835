package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Charging in sets (docs/engine.md, "Charging in sets"). Most due cycles
// of a batch are the plain case: a new scheduled attempt of an OPEN
// invoice that nothing else is paying, with the plan's first payment
// method ACTIVE. openCharges reads what decides that for the whole batch
// with one query per table, opens those cycles' attempts with one
// statement per table, and gives every other cycle to openAction, which
// decides it alone, as it always did: the two paths write the same rows.

// openCharges is chargeStep's opener: it opens the next action of each
// cycle of cs (locked, their plans locked, by id) at now.
func (s *Service) openCharges(ctx context.Context, tx bun.Tx, plans map[string]*Plan, cs []*Cycle, now time.Time) ([]*outgoing, int, error) {
	var plain, alone []*Cycle
	for _, c := range cs {
		plan := plans[c.PlanID]
		if plan == nil {
			continue // its plan is held by another transaction: left due
		}
		c.bind(plan)
		if !s.oneByOne && chargeable(plan, c) && c.Status != CycleStatusPending && c.InvoiceID != nil && len(plan.PaymentMethods) > 0 {
			plain = append(plain, c)
		} else {
			alone = append(alone, c)
		}
	}
	opened, sends, rest, err := s.openPlainCharges(ctx, tx, plain, now)
	if err != nil {
		return nil, 0, err
	}
	one := eachCycle(func(ctx context.Context, tx bun.Tx, plan *Plan, c *Cycle) (*outgoing, error) {
		return s.openAction(ctx, tx, plan, c, now, false, "")
	})
	more, moved, err := one(ctx, tx, plans, append(rest, alone...))
	if err != nil {
		return nil, 0, err
	}
	return append(sends, more...), len(opened) + moved, nil
}

// openPlainCharges opens a new attempt for each cycle of cs (chargeable,
// not PENDING, with an invoice and payment methods) whose invoice is
// OPEN, chargeable, owes something and has no payment or payment link
// under way, and whose plan's first payment method is ACTIVE in the
// plan's currency: what openAction would do for it, written with one
// statement for the attempts and one for the cycles. It returns the
// cycles it opened, their actions to send, and the cycles it left for
// openAction.
func (s *Service) openPlainCharges(ctx context.Context, tx bun.IDB, cs []*Cycle, now time.Time) (opened []*Cycle, sends []*outgoing, rest []*Cycle, err error) {
	if len(cs) == 0 {
		return nil, nil, nil, nil
	}
	businessID := cs[0].BusinessID
	invoiceIDs, tokenIDs := make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		invoiceIDs[i], tokenIDs[i] = *c.InvoiceID, c.plan.PaymentMethods[0].PaymentTokenID
	}
	invs, err := lockInvoices(ctx, tx, businessID, invoiceIDs)
	if err != nil {
		return nil, nil, nil, err
	}
	busy, err := invoicesBeingPaid(ctx, tx, invoiceIDs, now)
	if err != nil {
		return nil, nil, nil, err
	}
	last, err := lastAttempts(ctx, tx, cs)
	if err != nil {
		return nil, nil, nil, err
	}
	toks, err := s.payments.Tokens(ctx, tx, businessID, tokenIDs)
	if err != nil {
		return nil, nil, nil, err
	}
	var attempts []*Attempt
	for _, c := range cs {
		inv, tok := invs[*c.InvoiceID], toks[c.plan.PaymentMethods[0].PaymentTokenID]
		if inv == nil || !inv.Chargeable() || !inv.AmountDue().IsPositive() || busy[inv.ID] ||
			tok == nil || tok.Status != payments.TokenActive || tok.Currency != string(c.plan.Currency) {
			rest = append(rest, c)
			continue
		}
		a := newAttempt(c, inv, now)
		startAttempt(c, a, last[c.ID], false)
		a.ProviderKey, a.PaymentTokenID = attemptKey(c.ID, a.AttemptNumber, a.ActionNumber), &tok.ID
		c.Status, c.NextAction, c.NextActionAt, c.Updated = CycleStatusPending, ptr(ActionSendCharge), ptr(now.Add(chargeLease)), now
		attempts, opened = append(attempts, a), append(opened, c)
		sends = append(sends, outgoingFor(c.plan, c, inv, a))
	}
	if len(opened) == 0 {
		return nil, nil, rest, nil
	}
	if err := insertAttempts(ctx, tx, attempts); err != nil {
		return nil, nil, nil, fmt.Errorf("insert %d attempts: %w", len(attempts), err)
	}
	if err := saveCycleStates(ctx, tx, opened); err != nil {
		return nil, nil, nil, fmt.Errorf("update %d cycles: %w", len(opened), err)
	}
	written, err := currentXID(ctx, tx)
	if err != nil {
		return nil, nil, nil, err
	}
	for i, c := range opened {
		sends[i].opened = keep(c.plan, c, attempts[i], invs[*c.InvoiceID], written)
	}
	if err := s.openRequests(ctx, tx, businessID, sends, toks, now); err != nil {
		return nil, nil, nil, err
	}
	return opened, sends, rest, nil
}

// openRequests stores the payment requests of sends, actions opened in tx
// with new keys, in tx too (payments.Service.OpenCharges), so that
// sendAll only sends them; each outgoing gets its request, or the error
// that refuses it, which sendAll hands to sent as the payment service's
// answer.
func (s *Service) openRequests(ctx context.Context, tx bun.IDB, businessID string, sends []*outgoing,
	toks map[string]*payments.PaymentToken, now time.Time) error {
	ps := chargeParams(sends)
	prs, errs, err := s.payments.OpenCharges(ctx, tx, businessID, now, ps, toks)
	if err != nil {
		return err
	}
	for i, o := range sends {
		o.pr, o.refusal, o.token = prs[i], errs[i], toks[ps[i].PaymentTokenID]
	}
	return nil
}

// lockInvoicesSQL reads and locks invoices by id ($2), of business $1.
var lockInvoicesSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Invoice)(nil)).ColumnExpr("?TableColumns").ColumnExpr(`"invoice".xmin::text::bigint AS xmin`).
		Where("business_id = $1").Where("id = ANY($2::text[])").Order("id").For("UPDATE").String()
})

// lockInvoices reads and locks the business's invoices ids, in id order,
// and returns them by id.
func lockInvoices(ctx context.Context, tx bun.IDB, businessID string, ids []string) (map[string]*Invoice, error) {
	var rows []*Invoice
	if err := lockInvoicesSQL.Scan(ctx, tx, &rows, businessID, ids); err != nil {
		return nil, fmt.Errorf("lock %d invoices: %w", len(ids), err)
	}
	out := make(map[string]*Invoice, len(rows))
	for _, inv := range rows {
		out[inv.ID] = inv
	}
	return out, nil
}

// invoicesBeingPaidSQL reads which of the invoices $1 have a payment under
// way, those never recorded counting when created after $2.
var invoicesBeingPaidSQL = postgres.NewStatement(func(db bun.IDB) string {
	return underWaySince(db.NewSelect().TableExpr("invoice_payments AS ip"), "ip", bun.Safe("$2::timestamptz")).
		ColumnExpr("DISTINCT ip.invoice_id").Where("ip.invoice_id = ANY($1::text[])").String()
})

// invoicesBeingPaid returns which of the invoices ids have a payment or a
// payment link under way at now (underWay, what openPayment and openLink
// look at, of either kind).
func invoicesBeingPaid(ctx context.Context, tx bun.IDB, ids []string, now time.Time) (map[string]bool, error) {
	var busy []string
	if err := invoicesBeingPaidSQL.Scan(ctx, tx, &busy, ids, now.Add(-chargeLease)); err != nil {
		return nil, fmt.Errorf("read the payments under way of %d invoices: %w", len(ids), err)
	}
	out := make(map[string]bool, len(busy))
	for _, id := range busy {
		out[id] = true
	}
	return out, nil
}

// lastAttemptsSQL reads the latest attempt row of each of the cycles $1.
var lastAttemptsSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Attempt)(nil)).DistinctOn("cycle_id").Where("cycle_id = ANY($1::text[])").
		OrderExpr("cycle_id, attempt_number DESC, action_number DESC").String()
})

// lastAttempts returns the latest attempt row of each cycle of cs that
// has one, by cycle id (lastAttempt for a batch). Only cycles that count
// an attempt are looked up: every attempt starts with startAttempt, which
// counts it on its cycle in the transaction that writes it, so a cycle
// counting none has no row (the common case, a cycle's first charge).
func lastAttempts(ctx context.Context, tx bun.IDB, cs []*Cycle) (map[string]*Attempt, error) {
	var ids []string
	for _, c := range cs {
		if c.AttemptCount+c.ForcedAttemptCount > 0 {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return map[string]*Attempt{}, nil
	}
	var rows []*Attempt
	if err := lastAttemptsSQL.Scan(ctx, tx, &rows, ids); err != nil {
		return nil, fmt.Errorf("read the last attempts of %d cycles: %w", len(cs), err)
	}
	out := make(map[string]*Attempt, len(rows))
	for _, a := range rows {
		out[a.CycleID] = a
	}
	return out, nil
}

const insertAttemptsSQL = `INSERT INTO cycle_attempts (id, business_id, cycle_id, attempt_number, action_number, type, status,
		payment_token_id, payment_request_id, provider_key, amount, failure_code, next_retry_timestamp, created, updated)
	SELECT id, business_id, cycle_id, attempt_number, action_number, type, status, payment_token_id, payment_request_id, provider_key,
		amount::numeric, failure_code, next_retry_timestamp, created, updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
		AS a(id, business_id, cycle_id, attempt_number, action_number, type, status, payment_token_id, payment_request_id, provider_key,
			amount, failure_code, next_retry_timestamp, created, updated)`

// insertAttempts writes new attempt rows.
func insertAttempts(ctx context.Context, tx bun.IDB, as []*Attempt) error {
	n := len(as)
	ids, businesses, cycles, attempts, actions := make([]string, n), make([]string, n), make([]string, n), make([]int, n), make([]int, n)
	types, statuses, tokens, requests, keys := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]string, n)
	amounts, failures, retries, created, updated := make([]string, n), make([]*string, n), make([]*time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, a := range as {
		ids[i], businesses[i], cycles[i], attempts[i], actions[i] = a.ID, a.BusinessID, a.CycleID, a.AttemptNumber, a.ActionNumber
		types[i], statuses[i], tokens[i], requests[i], keys[i] = a.Type, a.Status, a.PaymentTokenID, a.PaymentRequestID, a.ProviderKey
		amounts[i], failures[i], retries[i], created[i], updated[i] = a.Amount.String(), a.FailureCode, a.NextRetryTimestamp, a.Created, a.Updated
	}
	_, err := postgres.Exec(ctx, tx, insertAttemptsSQL, ids, businesses, cycles, attempts, actions, types, statuses, tokens, requests, keys,
		amounts, failures, retries, created, updated)
	return err
}

const saveCycleStatesSQL = `UPDATE recurring_cycles AS c
	SET status = s.status, attempt_count = s.attempt_count, forced_attempt_count = s.forced_attempt_count,
		next_action = s.next_action, next_action_at = s.next_action_at, updated = s.updated
	FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::timestamptz[], $7::timestamptz[])
		AS s(id, status, attempt_count, forced_attempt_count, next_action, next_action_at, updated)
	WHERE c.id = s.id`

// saveCycleStates is saveCycleState for many cycles, in one statement.
func saveCycleStates(ctx context.Context, tx bun.IDB, cs []*Cycle) error {
	n := len(cs)
	ids, statuses, attempts, forced := make([]string, n), make([]string, n), make([]int, n), make([]int, n)
	actions, at, updated := make([]*string, n), make([]*time.Time, n), make([]time.Time, n)
	for i, c := range cs {
		ids[i], statuses[i], attempts[i], forced[i] = c.ID, c.Status, c.AttemptCount, c.ForcedAttemptCount
		actions[i], at[i], updated[i] = c.NextAction, c.NextActionAt, c.Updated
	}
	_, err := postgres.Exec(ctx, tx, saveCycleStatesSQL, ids, statuses, attempts, forced, actions, at, updated)
	return err
}
