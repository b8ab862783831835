package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// settlement is one plain success of a batch: action a of plan's cycle c
// took what invoice inv owed with payment request pr; next is the cycle it
// creates, when it creates one.
type settlement struct {
	pr   *payments.PaymentRequest
	a    *Attempt
	c    *Cycle
	plan *Plan
	inv  *Invoice
	next *Cycle
}

// SettledBatch is the payment service's SettledBatchFunc: Settled for
// payment requests that settled together, in the transaction that records
// them. The plain successes — the pending action of a cycle being charged
// paid everything its OPEN invoice owed, and the plan goes on to its next
// cycle — are settled with one statement per table for the lot; every
// other request (a failure, a payment of an invoice, a success that ends
// the plan, …) goes through Settled, one at a time, afterwards.
func (s *Service) SettledBatch(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
	now = truncate(now)
	plain, alone, err := s.plainSettlements(ctx, tx, prs, now)
	if err != nil {
		return err
	}
	if err := s.settlePlain(ctx, tx, plain, now); err != nil {
		return err
	}
	for _, pr := range alone {
		if err := s.Settled(ctx, tx, pr, nil, now); err != nil {
			return fmt.Errorf("payment request %s: %w", pr.ID, err)
		}
	}
	return nil
}

// The look-ups of plainSettlements, by key (postgres.Statement).
var (
	// attemptsByKeySQL reads the ids and cycles of the attempts of
	// business $1 whose provider keys are $2.
	attemptsByKeySQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*Attempt)(nil)).Column("id", "cycle_id", "provider_key").
			Where("business_id = $1").Where("provider_key = ANY($2::text[])").String()
	})
	// cyclePlansSQL reads the plans of the cycles $1.
	cyclePlansSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Table("recurring_cycles").Column("plan_id").Where("id = ANY($1::text[])").String()
	})
	// lockPlansInOrderSQL reads and locks the plans $2 of business $1,
	// in id order.
	lockPlansInOrderSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*Plan)(nil)).Where("business_id = $1").Where("id = ANY($2::text[])").
			Order("id").For("UPDATE").String()
	})
	// lockCyclesSQL reads and locks the cycles $2 of business $1, in id
	// order.
	lockCyclesSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*Cycle)(nil)).Where("business_id = $1").Where("id = ANY($2::text[])").
			Order("id").For("UPDATE").String()
	})
	// lockAttemptsSQL reads and locks the attempts $1, in id order.
	lockAttemptsSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*Attempt)(nil)).Where("id = ANY($1::text[])").Order("id").For("UPDATE").String()
	})
)

// plainSettlements locks, in the engine's lock order (plans, cycles,
// attempts, invoices; each in id order), what the successes among prs
// concern, and sorts prs into the plain settlements and the rest. The
// rows are the ones this worker opened the actions with when none has
// moved since (lockOpened), else read again (lockSettling).
func (s *Service) plainSettlements(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) ([]*settlement, []*payments.PaymentRequest, error) {
	if s.oneByOne {
		return nil, prs, nil
	}
	var alone []*payments.PaymentRequest
	businessID := prs[0].BusinessID
	var keys []string
	for _, pr := range prs {
		if pr.Status == payments.StatusSucceeded && pr.BusinessID == businessID {
			keys = append(keys, pr.ProviderKey)
		}
	}
	if len(keys) == 0 {
		return nil, prs, nil
	}
	var rows *settling
	var err error
	if opened := openedIn(ctx); opened != nil {
		if rows, err = lockOpened(ctx, tx, businessID, keys, opened); err != nil {
			return nil, nil, err
		}
	}
	if rows == nil {
		if rows, err = lockSettling(ctx, tx, businessID, keys); err != nil || rows == nil {
			return nil, prs, err
		}
	}
	var plain []*settlement
	seen := map[string]bool{} // plans with a settlement already: one per plan
	for _, pr := range prs {
		st := &settlement{pr: pr, a: rows.attempts[pr.ProviderKey]}
		if pr.Status == payments.StatusSucceeded && pr.BusinessID == businessID && st.a != nil {
			st.c = rows.cycles[st.a.CycleID]
		}
		if st.c != nil {
			st.plan = rows.plans[st.c.PlanID]
			if st.c.InvoiceID != nil {
				st.inv = rows.invoices[*st.c.InvoiceID]
			}
		}
		if !st.isPlain(seen, now) {
			alone = append(alone, pr)
			continue
		}
		seen[st.plan.ID] = true
		plain = append(plain, st)
	}
	return plain, alone, nil
}

// settling holds the rows that settlements of a batch concern, locked:
// plans, cycles and invoices by id, attempts by provider key.
type settling struct {
	plans    map[string]*Plan
	cycles   map[string]*Cycle
	attempts map[string]*Attempt
	invoices map[string]*Invoice
}

func newSettling() *settling {
	return &settling{plans: map[string]*Plan{}, cycles: map[string]*Cycle{}, attempts: map[string]*Attempt{}, invoices: map[string]*Invoice{}}
}

// lockSettling locks and reads, in the engine's lock order, the attempts
// of the business whose provider keys are keys, their cycles, the plans
// of those and their invoices; or returns nil when no attempt has one of
// the keys.
func lockSettling(ctx context.Context, tx bun.IDB, businessID string, keys []string) (*settling, error) {
	var found []*Attempt
	if err := attemptsByKeySQL.Scan(ctx, tx, &found, businessID, keys); err != nil {
		return nil, fmt.Errorf("find the attempts of %d payment requests: %w", len(keys), err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	attemptIDs, cycleIDs := make([]string, len(found)), make([]string, len(found))
	for i, a := range found {
		attemptIDs[i], cycleIDs[i] = a.ID, a.CycleID
	}
	var planIDs []string
	if err := cyclePlansSQL.Scan(ctx, tx, &planIDs, cycleIDs); err != nil {
		return nil, fmt.Errorf("read the plans of %d cycles: %w", len(cycleIDs), err)
	}
	var plans []*Plan
	if err := lockPlansInOrderSQL.Scan(ctx, tx, &plans, businessID, planIDs); err != nil {
		return nil, fmt.Errorf("lock %d plans: %w", len(planIDs), err)
	}
	if err := loadSchedules(ctx, tx, plans...); err != nil {
		return nil, err
	}
	var cycles []*Cycle
	if err := lockCyclesSQL.Scan(ctx, tx, &cycles, businessID, cycleIDs); err != nil {
		return nil, fmt.Errorf("lock %d cycles: %w", len(cycleIDs), err)
	}
	var attempts []*Attempt
	if err := lockAttemptsSQL.Scan(ctx, tx, &attempts, attemptIDs); err != nil {
		return nil, fmt.Errorf("lock %d attempts: %w", len(attemptIDs), err)
	}
	var invoiceIDs []string
	for _, c := range cycles {
		if c.InvoiceID != nil {
			invoiceIDs = append(invoiceIDs, *c.InvoiceID)
		}
	}
	out := newSettling()
	if len(invoiceIDs) > 0 {
		var err error
		if out.invoices, err = lockInvoices(ctx, tx, businessID, invoiceIDs); err != nil {
			return nil, err
		}
	}
	for _, p := range plans {
		out.plans[p.ID] = p
	}
	for _, c := range cycles {
		out.cycles[c.ID] = c
	}
	for _, a := range attempts {
		out.attempts[a.ProviderKey] = a
	}
	return out, nil
}

// isPlain reports whether st is a plain settlement (see SettledBatch), its
// plan not settled already in the batch (seen), and sets the next cycle
// it creates.
func (st *settlement) isPlain(seen map[string]bool, now time.Time) bool {
	c, plan, inv := st.c, st.plan, st.inv
	if c == nil || plan == nil || inv == nil || seen[plan.ID] || st.a.Status != AttemptPending {
		return false
	}
	c.bind(plan)
	switch {
	case c.Type != CycleTypeScheduled, plan.Status != PlanStatusActive, inv.Status != InvoiceStatusOpen:
		return false
	case c.Status != CycleStatusPending && c.Status != CycleStatusScheduled && c.Status != CycleStatusRetrying:
		return false
	case !st.pr.RequestAmount.IsPositive() || !st.pr.RequestAmount.Equal(inv.AmountDue()):
		return false
	}
	if c.CycleNumber >= plan.RecurringCycleCount {
		// The plan goes on to its next cycle; one that has had all its
		// cycles ends, which Settled does.
		if st.next = nextCycle(plan, c, now); st.next == nil {
			return false
		}
	}
	return true
}

// attemptsToLoad gives each cycle of sts whose settled action is its only
// attempt row that row, as saved, for its attempt details, and returns the
// other cycles, whose rows loadAttempts reads. The action is the only row
// when it is the first action of attempt 1 and the cycle counts one
// attempt: every attempt is counted when it starts (startAttempt), and a
// second action of it comes only after this one, still PENDING (isPlain),
// has failed. That is a cycle's usual first charge.
func attemptsToLoad(sts []*settlement) []*Cycle {
	var rest []*Cycle
	for _, st := range sts {
		if st.c.AttemptCount+st.c.ForcedAttemptCount == 1 && st.a.AttemptNumber == 1 && st.a.ActionNumber == 1 {
			st.c.attempts = []*Attempt{st.a}
			continue
		}
		rest = append(rest, st.c)
	}
	return rest
}

// settlePlain settles the plain settlements sts as Settled would each:
// the action SUCCEEDED, the invoice PAID (with its audit entry), the
// cycle SUCCEEDED, the next cycle created and counted on its plan;
// invoice.paid, recurring.cycle.succeeded and recurring.cycle.created,
// and the customer notices the plans ask for.
func (s *Service) settlePlain(ctx context.Context, tx bun.IDB, sts []*settlement, now time.Time) error {
	if len(sts) == 0 {
		return nil
	}
	businessID := sts[0].pr.BusinessID
	attempts, invs, cycles := make([]*Attempt, len(sts)), make([]*Invoice, len(sts)), make([]*Cycle, len(sts))
	audits := make([]*AuditEntry, len(sts))
	var nexts []*Cycle
	var counted []*Plan
	for i, st := range sts {
		a, inv, c := st.a, st.inv, st.c
		a.Status, a.FailureCode, a.PaymentRequestID, a.Updated = AttemptSucceeded, nil, &st.pr.ID, now
		paid := billing.Money{Amount: st.pr.RequestAmount, Currency: inv.Currency}
		inv.AmountPaid, inv.Status, inv.PaidAt, inv.Updated = inv.AmountPaid.Add(paid.Amount), InvoiceStatusPaid, &now, now
		note := paidNote(requestSource(st.pr.ID), paid)
		audits[i] = &AuditEntry{ID: billing.NewID(prefixInvoiceAudit), BusinessID: inv.BusinessID, InvoiceID: inv.ID, Action: "paid",
			Actor: ActorEngine, Note: &note, Created: now}
		c.Status, c.NextAction, c.NextActionAt, c.Updated = CycleStatusSucceeded, nil, nil, now
		attempts[i], invs[i], cycles[i] = a, inv, c
		if st.next != nil {
			st.plan.RecurringCycleCount, st.plan.Updated = st.next.CycleNumber, now
			nexts, counted = append(nexts, st.next), append(counted, st.plan)
		}
	}
	if err := saveAttempts(ctx, tx, attempts); err != nil {
		return fmt.Errorf("update %d attempts: %w", len(attempts), err)
	}
	if err := saveInvoicePayments(ctx, tx, invs); err != nil {
		return fmt.Errorf("update %d invoices: %w", len(invs), err)
	}
	if err := insertAudit(ctx, tx, audits); err != nil {
		return fmt.Errorf("insert %d invoice audit entries: %w", len(audits), err)
	}
	if err := saveCycleStates(ctx, tx, cycles); err != nil {
		return fmt.Errorf("update %d cycles: %w", len(cycles), err)
	}
	if len(nexts) > 0 {
		if _, err := tx.NewInsert().Model(&nexts).Exec(ctx); err != nil {
			return fmt.Errorf("insert %d next cycles: %w", len(nexts), err)
		}
		if err := savePlanCounts(ctx, tx, counted); err != nil {
			return fmt.Errorf("count the cycles of %d plans: %w", len(counted), err)
		}
	}
	if err := loadDetails(ctx, tx, invs...); err != nil {
		return err
	}
	if err := loadAttempts(ctx, tx, attemptsToLoad(sts)...); err != nil {
		return err
	}
	events := make([]*outbox.Event, 0, 3*len(sts))
	for _, st := range sts {
		paid, err := outbox.New(businessID, outbox.InvoicePaid, now, st.inv)
		if err != nil {
			return err
		}
		succeeded, err := outbox.New(businessID, outbox.RecurringCycleSucceeded, now, st.c)
		if err != nil {
			return err
		}
		events = append(events, paid, succeeded)
		if st.next != nil {
			created, err := outbox.New(businessID, outbox.RecurringCycleCreated, now, st.next)
			if err != nil {
				return err
			}
			events = append(events, created)
		}
	}
	if err := outbox.EmitAll(ctx, tx, events); err != nil {
		return err
	}
	for _, st := range sts {
		if err := s.notice(ctx, tx, st.plan, st.c, notify.KindCycleSucceeded, succeededChannels,
			notify.Message{Amount: st.plan.money(st.pr.RequestAmount)}, nil, now); err != nil {
			return err
		}
		if st.next == nil {
			continue
		}
		if err := s.notice(ctx, tx, st.plan, st.next, notify.KindCycleCreated, createdChannels, notify.Message{}, nil, now); err != nil {
			return err
		}
	}
	return nil
}

const saveAttemptsSQL = `UPDATE cycle_attempts AS a
	SET status = s.status, payment_request_id = s.payment_request_id, failure_code = s.failure_code,
		next_retry_timestamp = s.next_retry_timestamp, updated = s.updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
		AS s(id, status, payment_request_id, failure_code, next_retry_timestamp, updated)
	WHERE a.id = s.id`

// saveAttempts is saveAttempt for many attempts, in one statement.
func saveAttempts(ctx context.Context, tx bun.IDB, as []*Attempt) error {
	n := len(as)
	ids, statuses, requests, failures := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n)
	retries, updated := make([]*time.Time, n), make([]time.Time, n)
	for i, a := range as {
		ids[i], statuses[i], requests[i], failures[i], retries[i], updated[i] = a.ID, a.Status, a.PaymentRequestID, a.FailureCode,
			a.NextRetryTimestamp, a.Updated
	}
	_, err := postgres.Exec(ctx, tx, saveAttemptsSQL, ids, statuses, requests, failures, retries, updated)
	return err
}

const saveInvoicePaymentsSQL = `UPDATE invoices AS i
	SET status = s.status, amount_paid = s.amount_paid::numeric, paid_at = s.paid_at, updated = s.updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS s(id, status, amount_paid, paid_at, updated)
	WHERE i.id = s.id`

// saveInvoicePayments writes what charging changes on many invoices (as
// saveInvoicePayment, without the audit entries), in one statement.
func saveInvoicePayments(ctx context.Context, tx bun.IDB, invs []*Invoice) error {
	n := len(invs)
	ids, statuses, paid, paidAt, updated := make([]string, n), make([]string, n), make([]string, n), make([]*time.Time, n), make([]time.Time, n)
	for i, inv := range invs {
		ids[i], statuses[i], paid[i], paidAt[i], updated[i] = inv.ID, inv.Status, inv.AmountPaid.String(), inv.PaidAt, inv.Updated
	}
	_, err := postgres.Exec(ctx, tx, saveInvoicePaymentsSQL, ids, statuses, paid, paidAt, updated)
	return err
}

const savePlanCountsSQL = `UPDATE recurring_plans AS p SET recurring_cycle_count = s.count, updated = s.updated
	FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS s(id, count, updated)
	WHERE p.id = s.id`

// savePlanCounts writes the cycle counts of many plans, in one statement.
func savePlanCounts(ctx context.Context, tx bun.IDB, ps []*Plan) error {
	n := len(ps)
	ids, counts, updated := make([]string, n), make([]int, n), make([]time.Time, n)
	for i, p := range ps {
		ids[i], counts[i], updated[i] = p.ID, p.RecurringCycleCount, p.Updated
	}
	_, err := postgres.Exec(ctx, tx, savePlanCountsSQL, ids, counts, updated)
	return err
}
