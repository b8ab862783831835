package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Review reasons (SPEC §5.6): why a fixed invoice waits for finance. An
// invoice lists each reason once; its audit trail says what fired.
const (
	// reasonManual: the plan's review_policy is MANUAL.
	reasonManual = "MANUAL_REVIEW"
	// reasonTotalAboveMax: the total is above review_policy.max_total.
	reasonTotalAboveMax = "TOTAL_ABOVE_MAX_TOTAL"
	// reasonUsageAbove and reasonUsageBelow: a meter's usage is above
	// usage_factor × the mean of its previous three cycles with usage, or
	// below 1/usage_factor of it.
	reasonUsageAbove = "USAGE_ABOVE_USUAL"
	reasonUsageBelow = "USAGE_BELOW_USUAL"
	// reasonLateUsage: the invoice has a LATE_USAGE line.
	reasonLateUsage = "LATE_USAGE"
	// reasonCorrection: some of the events billed are corrections.
	reasonCorrection = "CORRECTION"
	// reasonDeadlineMissed: the amount was fixed when the cycle's date had
	// already begun (the engine was down through its deadline): it is
	// never charged before someone looked at it.
	reasonDeadlineMissed = "AMOUNT_DEADLINE_MISSED"
	// reasonTotalBelowZero: corrections of earlier windows took more off
	// than the cycle bills; the total was set to zero.
	reasonTotalBelowZero = "TOTAL_BELOW_ZERO"
)

// historyCycles is how many previous cycles a meter's usage is compared
// with.
const historyCycles = 3

// flag adds reason to the fixing's review reasons (once) and note to its
// audit note.
func (f *fixing) flag(reason, note string) {
	if !slices.Contains(f.reasons, reason) {
		f.reasons = append(f.reasons, reason)
	}
	f.notes = append(f.notes, note)
}

// usageKey is a plan's meter.
type usageKey struct{ plan, meter string }

// usageHistory returns the on-time usage (USAGE line quantities above zero)
// of the last historyCycles earlier invoices of each fixing's plan that are
// not VOID, per meter, newest first. It reads each plan's invoices through
// its index (a lateral join per plan), so that its cost follows the
// batch's plans and their history, not every invoice of the business.
func usageHistory(ctx context.Context, tx bun.IDB, businessID string, fs []*fixing) (map[usageKey][]decimal.Decimal, error) {
	ids := make([]string, 0, len(fs))
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		if len(f.plan.UsageCharges) > 0 && !seen[f.plan.ID] {
			seen[f.plan.ID] = true
			ids = append(ids, f.plan.ID)
		}
	}
	out := map[usageKey][]decimal.Decimal{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		PlanID   string          `bun:"plan_id"`
		Meter    string          `bun:"meter"`
		Quantity decimal.Decimal `bun:"quantity,type:numeric"`
	}
	err := tx.NewRaw(`
		SELECT p.plan_id, h.meter, h.quantity
		FROM unnest(?::text[]) AS p(plan_id)
		CROSS JOIN LATERAL (
			SELECT l.meter, l.quantity, row_number() OVER (PARTITION BY l.meter ORDER BY i.period_end DESC, i.id DESC) AS n
			FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
			WHERE i.business_id = ? AND i.plan_id = p.plan_id AND i.status <> ? AND l.kind = ? AND l.quantity > 0
		) h
		WHERE h.n <= ? ORDER BY p.plan_id, h.meter, h.n`,
		pgdialect.Array(ids), businessID, InvoiceStatusVoid, LineUsage, historyCycles).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read the usage history of plans: %w", err)
	}
	for _, r := range rows {
		k := usageKey{r.PlanID, r.Meter}
		out[k] = append(out[k], r.Quantity)
	}
	return out, nil
}

// review applies the review rules (SPEC §5.6) to the fixing's invoice at
// now: it needs review when the plan's policy is MANUAL, the total is above
// max_total, a meter's usage is unusual against its history, it bills late
// usage or corrections, or its deadline was missed. Otherwise it is
// finalized when stored.
func (f *fixing) review(now time.Time, history map[usageKey][]decimal.Decimal) {
	c, p, inv := f.cycle, f.plan, f.invoice
	cur := p.Currency
	if late := now.Sub(c.FixAt); late > time.Minute {
		f.notes = append(f.notes, fmt.Sprintf("amount fixed %s after its deadline %s", late.Round(time.Second), billing.FormatTime(c.FixAt)))
	}
	if c.Type != CycleTypeImmediate && plans.Frozen(c.ScheduledTimestamp, now) {
		f.flag(reasonDeadlineMissed, fmt.Sprintf("the cycle's date %s had begun when the amount was fixed: it is not charged until approved",
			c.ScheduledTimestamp.Format(time.DateOnly)))
	}
	if p.ReviewPolicy.Mode == reviewManual {
		f.flag(reasonManual, "the plan's review policy is MANUAL")
	}
	if max := p.ReviewPolicy.MaxTotal; max != nil && inv.Total.GreaterThan(max.Decimal) {
		f.flag(reasonTotalAboveMax, fmt.Sprintf("the total %s is above the plan's max_total %s",
			billing.Money{Amount: inv.Total, Currency: cur}, billing.Money{Amount: max.Decimal, Currency: cur}))
	}
	k := p.ReviewPolicy.UsageFactor.Decimal
	if !k.IsPositive() {
		k = defaultReviewPolicy().UsageFactor.Decimal
	}
	for i, uc := range p.UsageCharges {
		prev := history[usageKey{p.ID, uc.Meter}]
		if len(prev) == 0 {
			continue
		}
		sum := decimal.Zero
		for _, q := range prev {
			sum = sum.Add(q)
		}
		mean := sum.Div(decimal.NewFromInt(int64(len(prev))))
		q := f.usage[i].Quantity
		switch {
		case q.GreaterThan(mean.Mul(k)):
			f.flag(reasonUsageAbove, fmt.Sprintf("%s: %s is above %s × %s, the mean of the previous %d cycle(s) with usage", uc.Meter, q, k, mean.Round(4), len(prev)))
		case q.Mul(k).LessThan(mean):
			f.flag(reasonUsageBelow, fmt.Sprintf("%s: %s is below 1/%s of %s, the mean of the previous %d cycle(s) with usage", uc.Meter, q, k, mean.Round(4), len(prev)))
		}
	}
	inv.ReviewReasons = append([]string{}, f.reasons...)
	if len(f.reasons) > 0 {
		inv.ReviewStatus = ReviewNeedsReview
	}
}

// number gives each of invs (new DRAFT invoices of one business, not yet
// stored) its number and makes it OPEN at now. Numbers are gapless per
// business and calendar year of finalization (UTC, by the business
// clock), INV-<year>-<6 digits> (more digits past 999,999): the year's
// counter row is taken with one atomic increment and stays locked until tx
// ends, so transactions finalizing at once get consecutive, disjoint
// ranges, and a rolled-back transaction's numbers are never used. A number
// is never given again, also when its invoice is voided.
func number(ctx context.Context, tx bun.IDB, businessID string, now time.Time, invs []*Invoice) error {
	if len(invs) == 0 {
		return nil
	}
	year := now.UTC().Year()
	var last int
	if err := tx.NewRaw(`INSERT INTO invoice_numbers (business_id, year, last) VALUES (?, ?, ?)
		ON CONFLICT (business_id, year) DO UPDATE SET last = invoice_numbers.last + EXCLUDED.last RETURNING last`,
		businessID, year, len(invs)).Scan(ctx, &last); err != nil {
		return fmt.Errorf("take %d invoice numbers: %w", len(invs), err)
	}
	first := last - len(invs) + 1
	for i, inv := range invs {
		n, y := fmt.Sprintf("INV-%d-%06d", year, first+i), year
		inv.Number, inv.NumberYear, inv.Status, inv.FinalizedAt, inv.Updated = &n, &y, InvoiceStatusOpen, &now, now
	}
	return nil
}

// finalize numbers stored DRAFT invoices that review let through (see
// number) and writes them OPEN.
func finalize(ctx context.Context, tx bun.IDB, businessID string, now time.Time, invs []*Invoice) error {
	if err := number(ctx, tx, businessID, now, invs); err != nil {
		return err
	}
	for _, inv := range invs {
		if _, err := tx.NewUpdate().Model(inv).WherePK().Column("number", "number_year", "status", "finalized_at", "updated").Exec(ctx); err != nil {
			return fmt.Errorf("finalize invoice %s: %w", inv.ID, err)
		}
	}
	return nil
}
