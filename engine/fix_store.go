package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// storeFixings numbers the invoices that need no review (finalized as they
// are written), writes the batch's invoices, lines and audit entries,
// moves each cycle on, and emits recurring.cycle.amount_fixed and
// invoice.finalized or invoice.needs_review, each kind of row with one
// statement. The year's invoice counter stays locked until the batch
// commits, so batches of one business finalize one after the other when
// several workers run its due work (Config.DueWorkers).
func (s *Service) storeFixings(ctx context.Context, tx bun.IDB, businessID string, now time.Time, fs []*fixing) error {
	invs := make([]*Invoice, len(fs))
	cs := make([]*Cycle, len(fs))
	audit := make([]*AuditEntry, len(fs))
	var lines []*InvoiceLine
	var open []*Invoice
	for i, f := range fs {
		inv, c := f.invoice, f.cycle
		invs[i], cs[i] = inv, c
		inv.Lines = f.lines
		lines = append(lines, f.lines...)
		c.Amount, c.AmountFixedAt, c.InvoiceID, c.Updated = decimal.NewNullDecimal(inv.Total), &now, &inv.ID, now
		c.NextAction, c.NextActionAt = nil, nil
		action := "needs_review"
		if inv.ReviewStatus == ReviewNotRequired {
			action = "finalized"
			c.NextAction, c.NextActionAt = ptr(ActionCharge), &c.ScheduledTimestamp
			open = append(open, inv)
		}
		audit[i] = &AuditEntry{ID: billing.NewID(prefixInvoiceAudit), BusinessID: businessID, InvoiceID: inv.ID, Action: action,
			Actor: ActorEngine, Created: now}
		note := fmt.Sprintf("amount fixed at %s", billing.Money{Amount: inv.Total, Currency: inv.Currency})
		if len(f.notes) > 0 {
			note += "; " + strings.Join(f.notes, "; ")
		}
		audit[i].Note = &note
		inv.Audit = []*AuditEntry{audit[i]}
	}
	if err := number(ctx, tx, businessID, now, open); err != nil {
		return err
	}
	if err := insertInvoices(ctx, tx, invs); err != nil {
		return fmt.Errorf("insert %d invoices: %w", len(invs), err)
	}
	if err := insertLines(ctx, tx, lines); err != nil {
		return fmt.Errorf("insert %d invoice lines: %w", len(lines), err)
	}
	if err := insertAudit(ctx, tx, audit); err != nil {
		return fmt.Errorf("insert %d invoice audit entries: %w", len(audit), err)
	}
	if err := recordFixed(ctx, tx, cs); err != nil {
		return fmt.Errorf("record the amounts of %d cycles: %w", len(cs), err)
	}
	events := make([]*outbox.Event, 0, 2*len(fs))
	for _, f := range fs {
		e, err := outbox.New(businessID, outbox.RecurringCycleAmountFixed, now, f.cycle)
		if err != nil {
			return err
		}
		kind := outbox.InvoiceNeedsReview
		if f.invoice.Status == InvoiceStatusOpen {
			kind = outbox.InvoiceFinalized
		}
		ie, err := outbox.New(businessID, kind, now, f.invoice)
		if err != nil {
			return err
		}
		events = append(events, e, ie)
	}
	return outbox.EmitAll(ctx, tx, events)
}

// The batch's rows are written from arrays bound as parameters (unnest),
// one statement per table: with bun's multi-row VALUES, a batch of 500
// invoices was a statement of a megabyte of SQL text for PostgreSQL to
// parse, and as much for the engine to format.

const insertInvoicesSQL = `INSERT INTO invoices (id, business_id, number, number_year, cycle_id, plan_id, customer_id, currency,
		period_start, period_end, status, review_status, review_reasons, held_review_status, held_charge_at, subtotal, total, amount_paid,
		due_at, finalized_at, paid_at, voided_at, created, updated)
	SELECT id, business_id, number, number_year, cycle_id, plan_id, customer_id, currency, period_start, period_end, status, review_status,
		review_reasons::text[], held_review_status, held_charge_at, subtotal::numeric, total::numeric, amount_paid::numeric, due_at,
		finalized_at, paid_at, voided_at, created, updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
		$10::timestamptz[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::text[], $18::text[],
		$19::timestamptz[], $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::timestamptz[])
		AS i(id, business_id, number, number_year, cycle_id, plan_id, customer_id, currency, period_start, period_end, status, review_status,
			review_reasons, held_review_status, held_charge_at, subtotal, total, amount_paid, due_at, finalized_at, paid_at, voided_at,
			created, updated)`

// insertInvoices writes new invoices (without their lines and audit).
func insertInvoices(ctx context.Context, tx bun.IDB, invs []*Invoice) error {
	n := len(invs)
	ids, businesses, numbers, years := make([]string, n), make([]string, n), make([]*string, n), make([]*int, n)
	cycles, plans, customers, currencies := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	starts, ends, statuses, reviews, reasons := make([]time.Time, n), make([]time.Time, n), make([]string, n), make([]string, n), make([]*string, n)
	heldReviews, heldCharges := make([]*string, n), make([]*time.Time, n)
	subtotals, totals, paid := make([]string, n), make([]string, n), make([]string, n)
	dues, finalized, paidAt, voided, created, updated := make([]time.Time, n), make([]*time.Time, n), make([]*time.Time, n),
		make([]*time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, v := range invs {
		ids[i], businesses[i], numbers[i], years[i] = v.ID, v.BusinessID, v.Number, v.NumberYear
		cycles[i], plans[i], customers[i], currencies[i] = v.CycleID, v.PlanID, v.CustomerID, string(v.Currency)
		starts[i], ends[i], statuses[i], reviews[i], reasons[i] = v.PeriodStart, v.PeriodEnd, v.Status, v.ReviewStatus, textArray(v.ReviewReasons)
		heldReviews[i], heldCharges[i] = v.HeldReviewStatus, v.HeldChargeAt
		subtotals[i], totals[i], paid[i] = v.Subtotal.String(), v.Total.String(), v.AmountPaid.String()
		dues[i], finalized[i], paidAt[i], voided[i], created[i], updated[i] = v.DueAt, v.FinalizedAt, v.PaidAt, v.VoidedAt, v.Created, v.Updated
	}
	_, err := postgres.Exec(ctx, tx, insertInvoicesSQL, ids, businesses, numbers, years, cycles, plans, customers, currencies, starts, ends,
		statuses, reviews, reasons, heldReviews, heldCharges, subtotals, totals, paid, dues, finalized, paidAt, voided, created, updated)
	return err
}

const insertLinesSQL = `INSERT INTO invoice_lines (id, business_id, invoice_id, position, kind, meter, description, quantity, unit_amount,
		tiers, amount, usage, late_cycle_id, charge, reason, created_by, created)
	SELECT id, business_id, invoice_id, position, kind, meter, description, quantity::numeric, unit_amount::numeric, tiers::jsonb,
		amount::numeric, usage::jsonb, late_cycle_id, charge::jsonb, reason, created_by, created
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::timestamptz[])
		AS l(id, business_id, invoice_id, position, kind, meter, description, quantity, unit_amount, tiers, amount, usage, late_cycle_id,
			charge, reason, created_by, created)`

// insertLines writes new invoice lines. Their JSON columns are encoded as
// bun encodes them: NULL for no tiers, usage or charge.
func insertLines(ctx context.Context, tx bun.IDB, lines []*InvoiceLine) error {
	n := len(lines)
	ids, businesses, invoices, positions, kinds := make([]string, n), make([]string, n), make([]string, n), make([]int, n), make([]string, n)
	meters, descriptions, quantities, units := make([]*string, n), make([]string, n), make([]*string, n), make([]*string, n)
	tiers, amounts, usages, lates, charges := make([]*string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	reasons, creators, created := make([]*string, n), make([]*string, n), make([]time.Time, n)
	for i, l := range lines {
		ids[i], businesses[i], invoices[i], positions[i], kinds[i] = l.ID, l.BusinessID, l.InvoiceID, l.Position, l.Kind
		meters[i], descriptions[i], quantities[i], units[i] = l.Meter, l.Description, nullDecimal(l.Quantity), nullDecimal(l.UnitAmount)
		amounts[i], lates[i], reasons[i], creators[i], created[i] = l.Amount.String(), l.LateCycleID, l.Reason, l.CreatedBy, l.Created
		var err error
		if len(l.Tiers) > 0 {
			if tiers[i], err = jsonText(l.Tiers); err != nil {
				return err
			}
		}
		if l.Usage != nil {
			if usages[i], err = jsonText(l.Usage); err != nil {
				return err
			}
		}
		if l.Charge != nil {
			if charges[i], err = jsonText(l.Charge); err != nil {
				return err
			}
		}
	}
	_, err := postgres.Exec(ctx, tx, insertLinesSQL, ids, businesses, invoices, positions, kinds, meters, descriptions, quantities, units,
		tiers, amounts, usages, lates, charges, reasons, creators, created)
	return err
}

const insertAuditSQL = `INSERT INTO invoice_audit (id, business_id, invoice_id, action, actor, note, created)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])`

// insertAudit writes new audit entries.
func insertAudit(ctx context.Context, tx bun.IDB, entries []*AuditEntry) error {
	n := len(entries)
	ids, businesses, invoices, actions, actors := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	notes, created := make([]*string, n), make([]time.Time, n)
	for i, a := range entries {
		ids[i], businesses[i], invoices[i], actions[i], actors[i], notes[i], created[i] = a.ID, a.BusinessID, a.InvoiceID, a.Action, a.Actor,
			a.Note, a.Created
	}
	_, err := postgres.Exec(ctx, tx, insertAuditSQL, ids, businesses, invoices, actions, actors, notes, created)
	return err
}

const recordFixedSQL = `UPDATE recurring_cycles AS c
	SET amount = f.amount::numeric, amount_fixed_at = f.amount_fixed_at, invoice_id = f.invoice_id, next_action = f.next_action,
		next_action_at = f.next_action_at, updated = f.updated
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
		AS f(id, amount, amount_fixed_at, invoice_id, next_action, next_action_at, updated)
	WHERE c.id = f.id`

// recordFixed writes the fixed cycles' amount, invoice and next action.
func recordFixed(ctx context.Context, tx bun.IDB, cs []*Cycle) error {
	n := len(cs)
	ids, amounts, fixed, invoices := make([]string, n), make([]*string, n), make([]*time.Time, n), make([]*string, n)
	actions, at, updated := make([]*string, n), make([]*time.Time, n), make([]time.Time, n)
	for i, c := range cs {
		ids[i], amounts[i], fixed[i], invoices[i] = c.ID, nullDecimal(c.Amount), c.AmountFixedAt, c.InvoiceID
		actions[i], at[i], updated[i] = c.NextAction, c.NextActionAt, c.Updated
	}
	_, err := postgres.Exec(ctx, tx, recordFixedSQL, ids, amounts, fixed, invoices, actions, at, updated)
	return err
}

// nullDecimal is d as numeric text, or nil for NULL.
func nullDecimal(d decimal.NullDecimal) *string {
	if !d.Valid {
		return nil
	}
	s := d.Decimal.String()
	return &s
}

// jsonText is v encoded as JSON text.
func jsonText(v any) (*string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// textArray is ss as a PostgreSQL array literal ({"A","B"}; {} when
// empty), or nil for NULL when ss is nil, as bun writes an array column.
func textArray(ss []string) *string {
	if ss == nil {
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	out := b.String()
	return &out
}
