package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// window is an earlier cycle of a plan whose amount was fixed: the usage
// window it billed.
type window struct {
	ID          string    `bun:"id"`
	PlanID      string    `bun:"plan_id"`
	CycleNumber int       `bun:"cycle_number"`
	Start       time.Time `bun:"usage_window_start"`
	End         time.Time `bun:"usage_window_end"`
}

// lateGroup is the late events of one fixing, one usage charge and one
// original window: they make one LATE_USAGE line.
type lateGroup struct {
	f      *fixing
	charge int
	orig   *window
	events []metering.EventRecord
	// prev are the events the window had been billed so far (by its own
	// cycle, and as late usage by later ones).
	prev []metering.EventRecord
	// billed is what the window's lines for the meter came to so far
	// (USAGE, MINIMUM and earlier LATE_USAGE lines); rated is the usage
	// charge they were rated with (the USAGE line's), if any.
	billed decimal.Decimal
	rated  *UsageCharge
}

// rateLate turns the late events billed by the batch (events timestamped
// in an earlier window of the plan, reported or corrected after that
// window's amount was fixed) into LATE_USAGE lines, one per fixing, meter
// and original window (SPEC §5.2): the window is re-rated with everything
// it has now been billed plus the late events, with the usage charge it
// was rated with, and the line bills the difference from what it was
// billed before (so graduated and volume tiers, and minimums, stay right).
func rateLate(ctx context.Context, tx bun.IDB, businessID string, fs []*fixing, meters map[string]*metering.Meter) error {
	var planIDs []string
	for _, f := range fs {
		for _, u := range f.usage {
			if len(u.Late) > 0 {
				planIDs = append(planIDs, f.plan.ID)
				break
			}
		}
	}
	if len(planIDs) == 0 {
		return nil
	}
	var ws []*window
	if err := tx.NewSelect().Table("recurring_cycles").Column("id", "plan_id", "cycle_number", "usage_window_start", "usage_window_end").
		Where("business_id = ?", businessID).Where("plan_id IN (?)", bun.In(planIDs)).Where("amount_fixed_at IS NOT NULL").
		OrderExpr("plan_id, cycle_number").Scan(ctx, &ws); err != nil {
		return fmt.Errorf("read the billed windows of plans: %w", err)
	}
	byPlan := map[string][]*window{}
	for _, w := range ws {
		byPlan[w.PlanID] = append(byPlan[w.PlanID], w)
	}
	var groups []*lateGroup
	for _, f := range fs {
		for i, u := range f.usage {
			index := map[string]*lateGroup{}
			for _, e := range u.Late {
				w := windowOf(byPlan[f.plan.ID], e.Timestamp)
				if w == nil {
					return fmt.Errorf("cycle %s: late event %s (%s) is in no billed window of plan %s", f.cycle.ID, e.EventID,
						billing.FormatTime(e.Timestamp), f.plan.ID)
				}
				g := index[w.ID]
				if g == nil {
					g = &lateGroup{f: f, charge: i, orig: w}
					index[w.ID] = g
					groups = append(groups, g)
				}
				g.events = append(g.events, e)
			}
		}
	}
	if err := loadBilledBefore(ctx, tx, businessID, groups); err != nil {
		return err
	}
	for _, g := range groups {
		l, err := g.line(meters[g.f.plan.UsageCharges[g.charge].Meter])
		if err != nil {
			return err
		}
		g.f.late = append(g.f.late, l)
		g.f.flag(reasonLateUsage, fmt.Sprintf("%s: %d late events of the window %s – %s", *l.Meter, len(g.events),
			billing.FormatTime(g.orig.Start), billing.FormatTime(g.orig.End)))
		for _, e := range g.events {
			if e.CorrectionOf != "" {
				g.f.flag(reasonCorrection, fmt.Sprintf("%s: corrections of the window %s – %s", *l.Meter,
					billing.FormatTime(g.orig.Start), billing.FormatTime(g.orig.End)))
				break
			}
		}
	}
	return nil
}

// windowOf returns the billed window of ws (ascending) that holds t: the
// latest that starts at or before t and ends after it. Billed windows of a
// plan follow one another from its activation, and an event before the
// activation is never a plan's, so a late event always has one.
func windowOf(ws []*window, t time.Time) *window {
	for i := len(ws) - 1; i >= 0; i-- {
		if !ws[i].Start.After(t) && ws[i].End.After(t) {
			return ws[i]
		}
	}
	return nil
}

// loadBilledBefore reads, for every group at once, the events its window
// was billed so far and the amounts of its lines.
func loadBilledBefore(ctx context.Context, tx bun.IDB, businessID string, groups []*lateGroup) error {
	n := len(groups)
	keys, planIDs, customers, meters, current := make([]int, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	origIDs := make([]string, 0, n)
	for i, g := range groups {
		keys[i], planIDs[i], customers[i] = i, g.f.plan.ID, g.f.cycle.CustomerID
		meters[i], current[i] = g.f.plan.UsageCharges[g.charge].Meter, g.f.cycle.ID
		starts[i], ends[i] = g.orig.Start, g.orig.End
		origIDs = append(origIDs, g.orig.ID)
	}
	var evs []struct {
		K            int             `bun:"k"`
		ID           string          `bun:"id"`
		EventID      string          `bun:"event_id"`
		Timestamp    time.Time       `bun:"timestamp"`
		Quantity     decimal.Decimal `bun:"quantity,type:numeric"`
		CorrectionOf *string         `bun:"correction_of"`
		UniqueValue  *string         `bun:"unique_value"`
	}
	err := tx.NewRaw(`
		SELECT w.k, e.id, e.event_id, e."timestamp", e.quantity, e.correction_of, e.unique_value
		FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[])
			AS w(k, plan_id, customer_id, meter, current_cycle, start, end_)
		JOIN recurring_cycles c ON c.business_id = ? AND c.plan_id = w.plan_id AND c.id <> w.current_cycle
		JOIN usage_events e ON e.billed_cycle_id = c.id AND e.meter = w.meter AND e.business_id = ?
			AND e.customer_id = w.customer_id AND e."timestamp" >= w.start AND e."timestamp" < w.end_
		ORDER BY w.k, e."timestamp", e.event_id`,
		pgdialect.Array(keys), pgdialect.Array(planIDs), pgdialect.Array(customers), pgdialect.Array(meters), pgdialect.Array(current),
		pgdialect.Array(starts), pgdialect.Array(ends), businessID, businessID).Scan(ctx, &evs)
	if err != nil {
		return fmt.Errorf("read the events of re-rated windows: %w", err)
	}
	for _, e := range evs {
		rec := metering.EventRecord{ID: e.ID, EventID: e.EventID, Timestamp: e.Timestamp.UTC(), Quantity: e.Quantity, UniqueValue: e.UniqueValue}
		if e.CorrectionOf != nil {
			rec.CorrectionOf = *e.CorrectionOf
		}
		groups[e.K].prev = append(groups[e.K].prev, rec)
	}
	var lines []struct {
		Window string          `bun:"window_id"`
		Kind   string          `bun:"kind"`
		Meter  string          `bun:"meter"`
		Amount decimal.Decimal `bun:"amount,type:numeric"`
		Charge *UsageCharge    `bun:"charge,type:jsonb"`
	}
	err = tx.NewRaw(`
		SELECT coalesce(l.late_cycle_id, i.cycle_id) AS window_id, l.kind, l.meter, l.amount, l.charge
		FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
		WHERE l.business_id = ? AND l.meter IS NOT NULL AND (
			(i.cycle_id IN (?) AND l.kind IN ('USAGE', 'MINIMUM')) OR (l.late_cycle_id IN (?) AND l.kind = 'LATE_USAGE'))`,
		businessID, bun.In(origIDs), bun.In(origIDs)).Scan(ctx, &lines)
	if err != nil {
		return fmt.Errorf("read the lines of re-rated windows: %w", err)
	}
	for _, g := range groups {
		meter := g.f.plan.UsageCharges[g.charge].Meter
		for _, l := range lines {
			if l.Window != g.orig.ID || l.Meter != meter {
				continue
			}
			g.billed = g.billed.Add(l.Amount)
			if l.Kind == LineUsage && l.Charge != nil {
				g.rated = l.Charge
			}
		}
	}
	return nil
}

// line re-rates the group's window and returns its LATE_USAGE line.
func (g *lateGroup) line(m *metering.Meter) (*InvoiceLine, error) {
	uc := g.f.plan.UsageCharges[g.charge]
	if g.rated != nil {
		uc = *g.rated
	}
	cur := g.f.plan.Currency
	before := metering.Aggregate(m.Aggregation, g.prev)
	after := metering.Aggregate(m.Aggregation, append(append([]metering.EventRecord{}, g.prev...), g.events...))
	r, err := plans.Rate(uc.Price.Price(), after, cur)
	if err != nil {
		return nil, fmt.Errorf("cycle %s: re-rate meter %s for %s: %w", g.f.cycle.ID, uc.Meter, g.orig.ID, err)
	}
	rated := r.Amount
	if uc.MinimumAmount != nil {
		rated = rated.Add(plans.MinimumTopUp(r.Amount, uc.MinimumAmount.Decimal))
	}
	sort.Slice(g.events, func(i, j int) bool { return g.events[i].Timestamp.Before(g.events[j].Timestamp) })
	corrections := int64(0)
	for _, e := range g.events {
		if e.CorrectionOf != "" {
			corrections++
		}
	}
	first, last := g.events[0].Timestamp, g.events[len(g.events)-1].Timestamp
	qb, qa, bb, ra := billing.NumberOf(before), billing.NumberOf(after), billing.NumberOf(g.billed), billing.NumberOf(rated)
	meter := uc.Meter
	return &InvoiceLine{
		Kind: LineLateUsage, Meter: &meter, LateCycleID: &g.orig.ID, Amount: rated.Sub(g.billed),
		Description: fmt.Sprintf("%s: late usage of %s – %s", chargeDescription(uc, m), g.orig.Start.Format(time.DateOnly), g.orig.End.Format(time.DateOnly)),
		Quantity:    decimal.NewNullDecimal(after.Sub(before)),
		Usage: &UsageEvidence{EventCount: int64(len(g.events)), FirstEventAt: formatOptional(&first), LastEventAt: formatOptional(&last),
			WindowStart: billing.FormatTime(g.orig.Start), WindowEnd: billing.FormatTime(g.orig.End), Corrections: corrections,
			QuantityBefore: &qb, QuantityAfter: &qa, BilledBefore: &bb, RatedAfter: &ra},
	}, nil
}
