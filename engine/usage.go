package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// UsagePreview is GET /customers/{id}/usage: for each ACTIVE plan of the
// customer, what its open usage window would be billed if it closed now.
type UsagePreview struct {
	CustomerID string      `json:"customer_id"`
	AsOf       string      `json:"as_of"`
	Plans      []PlanUsage `json:"plans"`
}

// PlanUsage is one plan's open window.
type PlanUsage struct {
	PlanID      string `json:"plan_id"`
	ReferenceID string `json:"reference_id"`
	Currency    string `json:"currency"`
	// CycleID is the cycle that will bill the window; null when that cycle
	// is not created yet (the previous cycle's fix time has passed).
	CycleID     *string `json:"cycle_id"`
	CycleNumber int     `json:"cycle_number"`
	// Window is the open window so far: from its start to now.
	Window windowView `json:"window"`
	// ClosesAt is when the window closes and the cycle's amount is fixed
	// (the cycle's fix_at); null when the cycle is not created yet.
	ClosesAt *string `json:"closes_at"`
	// BaseAmount is the plan's amount; UsageAmount the usage charges with
	// their minimums; EstimatedAmount their sum.
	BaseAmount      billing.Number `json:"base_amount"`
	UsageAmount     billing.Number `json:"usage_amount"`
	EstimatedAmount billing.Number `json:"estimated_amount"`
	Meters          []MeterUsage   `json:"meters"`
}

// MeterUsage is one usage charge's estimate.
type MeterUsage struct {
	Meter       string  `json:"meter"`
	Description *string `json:"description"`
	Unit        string  `json:"unit"`
	// Quantity is the meter's aggregation of the window's unbilled events,
	// corrections folded in; EventCount counts them.
	Quantity   billing.Number `json:"quantity"`
	EventCount int64          `json:"event_count"`
	// Amount is the quantity rated with the charge's price (rounded to the
	// currency), Tiers its breakdown, MinimumTopUp what the minimum_amount
	// adds, Total their sum.
	Amount       billing.Number `json:"amount"`
	Tiers        []TierUsage    `json:"tiers"`
	MinimumTopUp billing.Number `json:"minimum_top_up"`
	Total        billing.Number `json:"total"`
	// LateEventCount counts the unbilled events of windows already billed,
	// which the next cycle bills as late usage (not in Amount).
	LateEventCount int `json:"late_event_count"`
}

// TierUsage is one tier's share of a graduated or volume charge.
type TierUsage struct {
	From       billing.Number  `json:"from"`
	To         *billing.Number `json:"to"`
	Quantity   billing.Number  `json:"quantity"`
	UnitAmount billing.Number  `json:"unit_amount"`
	FlatAmount billing.Number  `json:"flat_amount"`
	Amount     billing.Number  `json:"amount"`
}

// Usage returns the usage preview of the business's customer at now (the
// business clock). A plan's open window is its current cycle's usage
// window from its start to now, while that cycle's amount is not fixed
// and its fix time has not passed; after that, the next cycle's window,
// from the end of the current one. Events timestamped after now are not
// counted. The amounts are rated exactly as the engine rates a window
// when it fixes a cycle's amount; the utility's cycle overrides are not
// applied.
func (s *Service) Usage(ctx context.Context, db bun.IDB, businessID, customerID string, now time.Time) (*UsagePreview, error) {
	now = truncate(now)
	if _, err := customers.Get(ctx, db, businessID, customerID); err != nil {
		return nil, err
	}
	var ps []*Plan
	if err := db.NewSelect().Model(&ps).Where("business_id = ?", businessID).Where("customer_id = ?", customerID).
		Where("status = ?", PlanStatusActive).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read the plans of customer %s: %w", customerID, err)
	}
	var codes []string
	for _, p := range ps {
		for _, c := range p.UsageCharges {
			codes = append(codes, c.Meter)
		}
	}
	meters, err := metering.MetersByCode(ctx, db, businessID, codes)
	if err != nil {
		return nil, err
	}
	out := &UsagePreview{CustomerID: customerID, AsOf: billing.FormatTime(now), Plans: []PlanUsage{}}
	for _, p := range ps {
		pu, err := planUsage(ctx, db, p, meters, now)
		if err != nil {
			return nil, err
		}
		out.Plans = append(out.Plans, pu)
	}
	return out, nil
}

// planUsage estimates one ACTIVE plan's open window.
func planUsage(ctx context.Context, db bun.IDB, p *Plan, meters map[string]*metering.Meter, now time.Time) (PlanUsage, error) {
	c := new(Cycle)
	if err := db.NewSelect().Model(c).Where("plan_id = ?", p.ID).OrderExpr("cycle_number DESC").Limit(1).Scan(ctx); err != nil {
		return PlanUsage{}, fmt.Errorf("read the latest cycle of plan %s: %w", p.ID, err)
	}
	pu := PlanUsage{PlanID: p.ID, ReferenceID: p.ReferenceID, Currency: string(p.Currency), CycleNumber: c.CycleNumber + 1,
		Meters: []MeterUsage{}}
	start, lateBefore := c.UsageWindowEnd, c.UsageWindowEnd
	unfixed := c.Status == CycleStatusScheduled && c.AmountFixedAt == nil
	switch {
	case unfixed && now.Before(c.FixAt):
		start, lateBefore = c.UsageWindowStart, c.UsageWindowStart
		pu.CycleID, pu.CycleNumber = &c.ID, c.CycleNumber
		closes := billing.FormatTime(c.FixAt)
		pu.ClosesAt = &closes
	case unfixed:
		// The window has closed but its amount is not fixed yet: its
		// events are on their way to the cycle, not late.
		lateBefore = c.UsageWindowStart
	}
	if start.After(now) {
		start = now
	}
	pu.Window = windowView{Start: billing.FormatTime(start), End: billing.FormatTime(now)}
	targets := make([]metering.Target, len(p.UsageCharges))
	for i, uc := range p.UsageCharges {
		m := meters[uc.Meter]
		if m == nil {
			return PlanUsage{}, fmt.Errorf("plan %s: meter %q is missing", p.ID, uc.Meter)
		}
		targets[i] = metering.Target{BusinessID: p.BusinessID, CustomerID: p.CustomerID, Meter: m,
			Since: *p.ActivatedAt, WindowStart: start, Cutoff: now}
	}
	usage, err := metering.PreviewUnbilled(ctx, db, targets)
	if err != nil {
		return PlanUsage{}, err
	}
	total := decimal.Zero
	for i, uc := range p.UsageCharges {
		mu, err := rateUsage(uc, meters[uc.Meter], usage[i], p.Currency, lateBefore)
		if err != nil {
			return PlanUsage{}, fmt.Errorf("plan %s: %w", p.ID, err)
		}
		total = total.Add(mu.Total.Decimal)
		pu.Meters = append(pu.Meters, mu)
	}
	pu.BaseAmount, pu.UsageAmount = billing.NumberOf(p.Amount), billing.NumberOf(total)
	pu.EstimatedAmount = billing.NumberOf(p.Amount.Add(total))
	return pu, nil
}

// rateUsage prices one meter's usage with its charge.
func rateUsage(uc UsageCharge, m *metering.Meter, u metering.Usage, cur billing.Currency, lateBefore time.Time) (MeterUsage, error) {
	r, err := plans.Rate(uc.Price.Price(), u.Quantity, cur)
	if err != nil {
		return MeterUsage{}, fmt.Errorf("rate meter %s: %w", uc.Meter, err)
	}
	topUp := decimal.Zero
	if uc.MinimumAmount != nil {
		topUp = plans.MinimumTopUp(r.Amount, uc.MinimumAmount.Decimal)
	}
	mu := MeterUsage{Meter: uc.Meter, Description: uc.Description, Unit: m.Unit, Quantity: billing.NumberOf(u.Quantity),
		EventCount: u.EventCount, Amount: billing.NumberOf(r.Amount), Tiers: []TierUsage{}, MinimumTopUp: billing.NumberOf(topUp),
		Total: billing.NumberOf(r.Amount.Add(topUp))}
	for _, t := range r.Tiers {
		tu := TierUsage{From: billing.NumberOf(t.From), Quantity: billing.NumberOf(t.Quantity), UnitAmount: billing.NumberOf(t.UnitAmount),
			FlatAmount: billing.NumberOf(t.FlatAmount), Amount: billing.NumberOf(t.Amount)}
		if t.To != nil {
			to := billing.NumberOf(*t.To)
			tu.To = &to
		}
		mu.Tiers = append(mu.Tiers, tu)
	}
	for _, e := range u.Late {
		if e.Timestamp.Before(lateBefore) {
			mu.LateEventCount++
		}
	}
	return mu, nil
}
