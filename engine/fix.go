package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// Id prefixes of an invoice's lines and audit entries (ids the API shows
// but never takes as input).
const (
	prefixInvoiceLine  = "invl-"
	prefixInvoiceAudit = "inva-"
)

// maxFixAttempts bounds how often a batch is run again after a deadlock
// with another transaction billing the same customer's usage.
const maxFixAttempts = 5

// overrideReason is the reason of the ADJUSTMENT line that makes an
// invoice's total the amount the utility set with PATCH.
const overrideReason = "amount set by the API"

func init() { registerStep(ActionFixAmount, fixStep) }

// fixStep fixes the amounts of a batch of due FIX_AMOUNT cycles (SPEC §5.2)
// in one transaction, run again from the start when PostgreSQL aborts it
// for a deadlock (metering.IsRetryable).
func fixStep(ctx context.Context, s *Service, b DueBatch) (int, error) {
	for attempt := 1; ; attempt++ {
		n := 0
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			cs, err := s.LockDue(ctx, tx, b)
			if err != nil || len(cs) == 0 {
				return err
			}
			n = len(cs)
			return s.fixCycles(ctx, tx, b.Business, b.Now, cs)
		})
		if err == nil {
			return n, nil
		}
		if !metering.IsRetryable(err) || attempt == maxFixAttempts {
			return 0, fmt.Errorf("fix amounts: %w", err)
		}
		s.log.Warn("fixing amounts met a concurrent transaction; running the batch again", "business_id", b.Business.ID,
			"attempt", attempt, "error", err.Error())
	}
}

// fixing is one cycle whose amount is being fixed.
type fixing struct {
	cycle *Cycle
	plan  *Plan
	// usage is the usage each of the plan's usage charges bills (same
	// index as plan.UsageCharges).
	usage []metering.Usage
	// late are the LATE_USAGE lines re-rating earlier windows.
	late    []*InvoiceLine
	invoice *Invoice
	lines   []*InvoiceLine
	// reasons are the review reasons; notes explain them and the fix in
	// the audit trail.
	reasons []string
	notes   []string
}

// fixCycles fixes the amounts of cycles cs (locked in tx, all of business
// biz, due at now): it bills their usage, writes their invoices, applies
// the review rules, finalizes or holds each invoice, moves each cycle on to
// CHARGE (or to nothing while its invoice waits for review) and emits the
// events, with a fixed number of statements for the whole batch.
func (s *Service) fixCycles(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, cs []*Cycle) error {
	fs, meters, err := loadFixings(ctx, tx, biz.ID, cs)
	if err != nil {
		return err
	}
	if err := billUsage(ctx, tx, biz.ID, fs, meters); err != nil {
		return err
	}
	if err := rateLate(ctx, tx, biz.ID, fs, meters); err != nil {
		return err
	}
	history, err := usageHistory(ctx, tx, biz.ID, fs)
	if err != nil {
		return err
	}
	late := 0
	for _, f := range fs {
		if err := f.build(now, meters); err != nil {
			return err
		}
		f.review(now, history)
		if now.Sub(f.cycle.FixAt) > time.Minute {
			late++
		}
	}
	if late > 0 {
		s.log.Warn("amounts fixed after their deadline", "business_id", biz.ID, "cycles", late)
	}
	return s.storeFixings(ctx, tx, biz.ID, now, fs)
}

// loadFixings reads the plans of cs and the meters their usage charges
// name.
func loadFixings(ctx context.Context, tx bun.IDB, businessID string, cs []*Cycle) ([]*fixing, map[string]*metering.Meter, error) {
	ids := make([]string, 0, len(cs))
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.PlanID] {
			seen[c.PlanID] = true
			ids = append(ids, c.PlanID)
		}
	}
	var ps []*Plan
	if err := tx.NewSelect().Model(&ps).Where("business_id = ?", businessID).Where("id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
		return nil, nil, fmt.Errorf("read the plans of due cycles: %w", err)
	}
	byID := make(map[string]*Plan, len(ps))
	var codes []string
	known := map[string]bool{}
	for _, p := range ps {
		byID[p.ID] = p
		for _, uc := range p.UsageCharges {
			if !known[uc.Meter] {
				known[uc.Meter] = true
				codes = append(codes, uc.Meter)
			}
		}
	}
	meters, err := metering.MetersByCode(ctx, tx, businessID, codes)
	if err != nil {
		return nil, nil, err
	}
	for _, code := range codes {
		if meters[code] == nil {
			return nil, nil, fmt.Errorf("meter %q of a plan is missing", code)
		}
	}
	fs := make([]*fixing, len(cs))
	for i, c := range cs {
		p := byID[c.PlanID]
		if p == nil {
			return nil, nil, fmt.Errorf("cycle %s: plan %s is missing", c.ID, c.PlanID)
		}
		fs[i] = &fixing{cycle: c.bind(p), plan: p, usage: make([]metering.Usage, len(p.UsageCharges))}
	}
	return fs, meters, nil
}

// since is where the plan's usage starts: its activation (a plan's cycle
// never bills usage from before it), or, for a plan not yet active (the
// immediate cycle of a FULL_AMOUNT plan), the cycle's window start.
func (f *fixing) since() time.Time {
	if f.plan.ActivatedAt != nil {
		return *f.plan.ActivatedAt
	}
	return f.cycle.UsageWindowStart
}

// billUsage marks and aggregates the unbilled usage of every usage charge
// of every fixing (metering.BillUnbilled), up to each cycle's fix time. A
// customer billed on one meter by two plans in the batch is billed in a
// second round, in which the first plan's events are already taken.
func billUsage(ctx context.Context, tx bun.IDB, businessID string, fs []*fixing, meters map[string]*metering.Meter) error {
	type ref struct {
		f *fixing
		i int
	}
	var rounds [][]metering.Target
	var refs [][]ref
	taken := map[[2]string]int{}
	for _, f := range fs {
		for i, uc := range f.plan.UsageCharges {
			k := [2]string{f.cycle.CustomerID, uc.Meter}
			r := taken[k]
			taken[k] = r + 1
			if r == len(rounds) {
				rounds, refs = append(rounds, nil), append(refs, nil)
			}
			rounds[r] = append(rounds[r], metering.Target{BusinessID: businessID, CustomerID: f.cycle.CustomerID, Meter: meters[uc.Meter],
				Since: f.since(), WindowStart: f.cycle.UsageWindowStart, Cutoff: f.cycle.FixAt, CycleID: f.cycle.ID})
			refs[r] = append(refs[r], ref{f, i})
		}
	}
	for r, targets := range rounds {
		us, err := metering.BillUnbilled(ctx, tx, targets)
		if err != nil {
			return err
		}
		for j, u := range us {
			refs[r][j].f.usage[refs[r][j].i] = u
		}
	}
	return nil
}

// chargeDescription names a usage charge on its lines: its description,
// else its meter's name and unit.
func chargeDescription(uc UsageCharge, m *metering.Meter) string {
	if uc.Description != nil && *uc.Description != "" {
		return *uc.Description
	}
	return fmt.Sprintf("%s (%s)", m.Name, m.Unit)
}

// build writes the fixing's invoice and lines at now: BASE, then USAGE and
// MINIMUM per usage charge, then the LATE_USAGE lines, then an ADJUSTMENT
// when the utility set the amount (an override) or when the lines come to
// less than zero. Every amount is already in the currency's precision, so
// the total is their exact sum.
func (f *fixing) build(now time.Time, meters map[string]*metering.Meter) error {
	c, p := f.cycle, f.plan
	cur := p.Currency
	f.invoice = &Invoice{ID: billing.NewID(billing.PrefixInvoice), BusinessID: c.BusinessID, CycleID: c.ID, PlanID: p.ID,
		CustomerID: c.CustomerID, Currency: cur, PeriodStart: c.UsageWindowStart, PeriodEnd: c.UsageWindowEnd,
		Status: InvoiceStatusDraft, ReviewStatus: ReviewNotRequired, DueAt: c.ScheduledTimestamp, Created: now, Updated: now}
	base := "Base fee"
	if p.Description != nil && *p.Description != "" {
		base = *p.Description
	}
	f.add(&InvoiceLine{Kind: LineBase, Description: base, Quantity: decimal.NewNullDecimal(decimal.NewFromInt(1)),
		UnitAmount: decimal.NewNullDecimal(p.Amount), Amount: p.Amount}, now)
	for i, uc := range p.UsageCharges {
		m := meters[uc.Meter]
		u := f.usage[i]
		r, err := plans.Rate(uc.Price.Price(), u.Quantity, cur)
		if err != nil {
			return fmt.Errorf("cycle %s: rate meter %s: %w", c.ID, uc.Meter, err)
		}
		ev := &UsageEvidence{EventCount: u.EventCount, FirstEventAt: formatOptional(u.FirstEventAt), LastEventAt: formatOptional(u.LastEventAt),
			WindowStart: billing.FormatTime(c.UsageWindowStart), WindowEnd: billing.FormatTime(c.UsageWindowEnd), Corrections: u.Corrections}
		charge := uc
		line := &InvoiceLine{Kind: LineUsage, Meter: &charge.Meter, Description: chargeDescription(uc, m),
			Quantity: decimal.NewNullDecimal(u.Quantity), Tiers: tierUsage(r.Tiers), Amount: r.Amount, Usage: ev, Charge: &charge}
		if !r.UnitAmount.IsZero() || uc.Price.Model == plans.PerUnit {
			line.UnitAmount = decimal.NewNullDecimal(r.UnitAmount)
		}
		f.add(line, now)
		if u.Corrections > 0 {
			f.flag(reasonCorrection, fmt.Sprintf("%s: %d corrections among the events of the window", uc.Meter, u.Corrections))
		}
		if uc.MinimumAmount == nil {
			continue
		}
		if top := plans.MinimumTopUp(r.Amount, uc.MinimumAmount.Decimal); top.IsPositive() {
			f.add(&InvoiceLine{Kind: LineMinimum, Meter: &charge.Meter, Amount: top,
				Description: fmt.Sprintf("%s: minimum charge of %s", chargeDescription(uc, m), billing.Money{Amount: uc.MinimumAmount.Decimal, Currency: cur})}, now)
		}
	}
	for _, l := range f.late {
		f.add(l, now)
	}
	sum := f.sum()
	switch {
	case c.AmountOverride.Valid && !c.AmountOverride.Decimal.Equal(sum):
		f.adjust(c.AmountOverride.Decimal.Sub(sum), overrideReason, now)
	case sum.IsNegative():
		// Corrections of earlier windows can take more off than this
		// cycle bills; an invoice is never below zero, so finance decides
		// how to give the rest back (a credit note on an earlier invoice).
		f.adjust(sum.Neg(), fmt.Sprintf("the lines come to %s: the total cannot be below zero", billing.Money{Amount: sum, Currency: cur}), now)
		f.flag(reasonTotalBelowZero, fmt.Sprintf("the lines came to %s; %s is owed back to the customer",
			billing.Money{Amount: sum, Currency: cur}, billing.Money{Amount: sum.Neg(), Currency: cur}))
	}
	f.invoice.Total = f.sum()
	f.invoice.Subtotal = f.invoice.Total
	for _, l := range f.lines {
		if l.Kind == LineAdjustment {
			f.invoice.Subtotal = f.invoice.Subtotal.Sub(l.Amount)
		}
	}
	return nil
}

// add appends l to the fixing's invoice as its next line.
func (f *fixing) add(l *InvoiceLine, now time.Time) {
	l.ID, l.BusinessID, l.InvoiceID = billing.NewID(prefixInvoiceLine), f.invoice.BusinessID, f.invoice.ID
	l.Position, l.Created = len(f.lines)+1, now
	f.lines = append(f.lines, l)
}

// adjust appends an ADJUSTMENT line of amount, made by the engine.
func (f *fixing) adjust(amount decimal.Decimal, reason string, now time.Time) {
	f.add(&InvoiceLine{Kind: LineAdjustment, Description: "Adjustment: " + reason, Amount: amount,
		Reason: ptr(reason), CreatedBy: ptr(ActorEngine)}, now)
}

// sum is the sum of the fixing's lines.
func (f *fixing) sum() decimal.Decimal {
	sum := decimal.Zero
	for _, l := range f.lines {
		sum = sum.Add(l.Amount)
	}
	return sum
}

// tierUsage is a rating's tier breakdown as a line shows it.
func tierUsage(ts []plans.TierCharge) []TierUsage {
	if len(ts) == 0 {
		return nil
	}
	out := make([]TierUsage, len(ts))
	for i, t := range ts {
		out[i] = TierUsage{From: billing.NumberOf(t.From), Quantity: billing.NumberOf(t.Quantity), UnitAmount: billing.NumberOf(t.UnitAmount),
			FlatAmount: billing.NumberOf(t.FlatAmount), Amount: billing.NumberOf(t.Amount)}
		if t.To != nil {
			to := billing.NumberOf(*t.To)
			out[i].To = &to
		}
	}
	return out
}
