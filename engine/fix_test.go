package engine

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// TestFixIDR follows one IDR plan through three cycles fixed by the
// dispatcher: every line kind but ADJUSTMENT, to the unit; usage before
// the activation never billed; late usage re-rated across graduated tier
// boundaries, twice for one window; a late correction; a minimum; review
// holds and approval.
func TestFixIDR(t *testing.T) {
	w := newWorld(t)
	body := w.planBody()
	body["usage_charges"] = append(body["usage_charges"].([]any), map[string]any{"meter": "water_m3", "description": "Water",
		"price": map[string]any{"model": "PER_UNIT", "unit_amount": "2500.5"}, "minimum_amount": 20000})
	p := w.plan(body, at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-13T12:00:00Z"),
		event{id: "before-activation", meter: "kwh", qty: "50", ts: at("2026-01-25T00:00:00Z")},
		event{id: "k1", meter: "kwh", qty: "80", ts: at("2026-02-03T00:00:00Z")},
		event{id: "k2", meter: "kwh", qty: "70.5", ts: at("2026-02-10T00:00:00Z")},
		event{id: "w1", meter: "water_m3", qty: "3.3", ts: at("2026-02-05T00:00:00Z")},
	)
	w.ingest(at("2026-02-14T00:00:00Z"), event{id: "k-at-fix", meter: "kwh", qty: "5", ts: at("2026-02-14T00:00:00Z")})

	if n := w.run(at("2026-02-13T23:59:59Z")); n != 0 {
		t.Fatalf("%d cycles moved before the fix time", n)
	}
	if n := w.run(at("2026-02-14T00:00:00Z")); n != 1 {
		t.Fatalf("%d cycles fixed at the fix time, want 1", n)
	}
	c1 := w.cycle(p, 1)
	inv1 := w.invoice(c1)
	// 150.5 kWh: 100 × 1,000 + 50.5 × 1,500 = 175,750. 3.3 m³ × 2,500.5 =
	// 8,251.65 → 8,252, topped up to the minimum of 20,000.
	w.wantLines(inv1,
		line{LineBase, "", "1", "100000"},
		line{LineUsage, "kwh", "150.5", "175750"},
		line{LineUsage, "water_m3", "3.3", "8252"},
		line{LineMinimum, "water_m3", "", "11748"},
	)
	if inv1.Status != InvoiceStatusOpen || inv1.ReviewStatus != ReviewNotRequired || inv1.Number == nil || *inv1.Number != "INV-2026-000001" ||
		!inv1.Total.Equal(dec("295750")) || !inv1.Subtotal.Equal(dec("295750")) || inv1.FinalizedAt == nil {
		t.Fatalf("invoice 1: %s", describe(inv1))
	}
	if !c1.Amount.Valid || !c1.Amount.Decimal.Equal(dec("295750")) || c1.InvoiceID == nil || *c1.InvoiceID != inv1.ID ||
		c1.NextAction == nil || *c1.NextAction != ActionCharge || !c1.NextActionAt.Equal(c1.ScheduledTimestamp) ||
		!c1.AmountFixedAt.Equal(at("2026-02-14T00:00:00Z")) {
		t.Fatalf("cycle 1 after the fix: %+v", c1)
	}
	tiers := inv1.Lines[1].Tiers
	if len(tiers) != 2 || !tiers[0].Amount.Equal(dec("100000")) || !tiers[1].Amount.Equal(dec("75750")) || !tiers[1].Quantity.Equal(dec("50.5")) {
		t.Errorf("tiers: %+v", tiers)
	}
	ev := inv1.Lines[1].Usage
	if ev == nil || ev.EventCount != 2 || *ev.FirstEventAt != "2026-02-03T00:00:00.000Z" || *ev.LastEventAt != "2026-02-10T00:00:00.000Z" ||
		ev.WindowStart != "2026-02-01T10:00:00.000Z" || ev.WindowEnd != "2026-02-14T00:00:00.000Z" {
		t.Errorf("usage evidence: %+v", ev)
	}
	w.wantEvents(c1.ID, outbox.RecurringCycleAmountFixed, outbox.InvoiceFinalized)

	// Cycle 2: on-time usage, late kWh for cycle 1's window across two tier
	// boundaries, and a late correction of cycle 1's water.
	w.succeed(c1, at("2026-02-15T08:00:00Z"))
	w.ingest(at("2026-02-20T00:00:00Z"),
		event{id: "k-late-1", meter: "kwh", qty: "60", ts: at("2026-02-12T00:00:00Z")},
		event{id: "w1-fix", meter: "water_m3", qty: "-1.3", correctionOf: "w1"})
	w.ingest(at("2026-03-10T00:00:00Z"),
		event{id: "k3", meter: "kwh", qty: "120", ts: at("2026-03-01T00:00:00Z")},
		event{id: "w2", meter: "water_m3", qty: "10", ts: at("2026-03-02T00:00:00Z")})
	w.run(at("2026-03-14T00:00:00Z"))
	c2 := w.cycle(p, 2)
	inv2 := w.invoice(c2)
	// On time: 125 kWh → 137,500; 10 m³ → 25,005. Cycle 1's window
	// becomes 210.5 kWh: 100,000 + 150,000 + 21,000 + 5,000 = 276,000, of
	// which 175,750 was billed: 100,250 (not 60 × 1,500). Its water
	// becomes 2 m³ (5,001), still under the minimum: 20,000, as billed.
	w.wantLines(inv2,
		line{LineBase, "", "1", "100000"},
		line{LineUsage, "kwh", "125", "137500"},
		line{LineUsage, "water_m3", "10", "25005"},
		line{LineLateUsage, "kwh", "60", "100250"},
		line{LineLateUsage, "water_m3", "-1.3", "0"},
	)
	late := inv2.Lines[3]
	if late.LateCycleID == nil || *late.LateCycleID != c1.ID || late.Usage.EventCount != 1 || late.Usage.WindowStart != "2026-02-01T10:00:00.000Z" ||
		!late.Usage.BilledBefore.Decimal.Equal(dec("175750")) || !late.Usage.RatedAfter.Decimal.Equal(dec("276000")) ||
		!late.Usage.QuantityAfter.Decimal.Equal(dec("210.5")) {
		t.Errorf("late line: %s", describe(inv2))
	}
	if inv2.Status != InvoiceStatusDraft || inv2.Number != nil || inv2.ReviewStatus != ReviewNeedsReview ||
		!sameSet(inv2.ReviewReasons, reasonLateUsage, reasonCorrection, reasonUsageAbove) {
		t.Fatalf("invoice 2 review: %s %s %v", inv2.Status, inv2.ReviewStatus, inv2.ReviewReasons)
	}
	c2 = w.cycle(p, 2)
	if c2.NextAction != nil || !c2.Amount.Decimal.Equal(dec("362755")) {
		t.Fatalf("cycle 2 held for review: %+v", c2)
	}
	w.wantEvents(c2.ID, outbox.RecurringCycleAmountFixed, outbox.InvoiceNeedsReview)

	// Approval finalizes it with the next number and schedules the charge.
	approved := w.approve(inv2.ID, at("2026-03-14T09:00:00Z"))
	if approved.Status != InvoiceStatusOpen || *approved.Number != "INV-2026-000002" || approved.ReviewStatus != ReviewApproved {
		t.Fatalf("approved: %s", describe(approved))
	}
	c2 = w.cycle(p, 2)
	if c2.NextAction == nil || *c2.NextAction != ActionCharge || !c2.NextActionAt.Equal(c2.ScheduledTimestamp) {
		t.Fatalf("cycle 2 after approval: %+v", c2)
	}

	// Cycle 3: more late usage for cycle 1's window, which was billed by
	// cycle 1 and, late, by cycle 2: 220.5 kWh → 296,000, billed 276,000.
	w.succeed(c2, at("2026-03-15T08:00:00Z"))
	w.ingest(at("2026-03-20T00:00:00Z"), event{id: "k-late-2", meter: "kwh", qty: "10", ts: at("2026-02-13T00:00:00Z")})
	w.run(at("2026-04-14T00:00:00Z"))
	inv3 := w.invoice(w.cycle(p, 3))
	w.wantLines(inv3,
		line{LineBase, "", "1", "100000"},
		line{LineUsage, "kwh", "0", "0"},
		line{LineUsage, "water_m3", "0", "0"},
		line{LineMinimum, "water_m3", "", "20000"},
		line{LineLateUsage, "kwh", "10", "20000"},
	)
	if !sameSet(inv3.ReviewReasons, reasonLateUsage, reasonUsageBelow) {
		t.Errorf("invoice 3 reasons %v", inv3.ReviewReasons)
	}

	var unbilled []string
	if err := w.db.Bun.NewSelect().Table("usage_events").Column("event_id").Where("business_id = ?", w.biz.ID).
		Where("billed_cycle_id IS NULL").Scan(w.ctx, &unbilled); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unbilled, []string{"before-activation"}) {
		t.Fatalf("unbilled events %v, want only the one before the activation", unbilled)
	}
}

// TestFixPHP fixes PHP cycles with the utility's override below and above
// the rated lines, before and after the fix: ADJUSTMENT lines make the
// total the amount set, to the centavo.
func TestFixPHP(t *testing.T) {
	w := newWorld(t)
	body := w.planBody()
	body["currency"], body["amount"] = "PHP", "499.00"
	body["usage_charges"] = []any{map[string]any{"meter": "water_m3", "price": map[string]any{"model": "GRADUATED", "tiers": []any{
		map[string]any{"up_to": 20, "unit_amount": "12.50"},
		map[string]any{"up_to": nil, "unit_amount": "18.75", "flat_amount": "100.00"},
	}}}}
	p := w.plan(body, at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-13T00:00:00Z"),
		event{id: "w1", meter: "water_m3", qty: "30.123", ts: at("2026-02-03T00:00:00Z")},
		event{id: "w2", meter: "water_m3", qty: "7", ts: at("2026-02-09T00:00:00Z")})
	// Below the lines: 499.00 + 671.06 = 1,170.06, set to 1,000.00.
	w.patchAmount(p, 1, "1000.00", at("2026-02-10T00:00:00Z"))
	w.run(at("2026-02-14T00:00:00Z"))
	inv := w.invoice(w.cycle(p, 1))
	w.wantLines(inv,
		line{LineBase, "", "1", "499.00"},
		line{LineUsage, "water_m3", "37.123", "671.06"},
		line{LineAdjustment, "", "", "-170.06"},
	)
	adj := inv.Lines[2]
	if *adj.Reason != overrideReason || !inv.Subtotal.Equal(dec("1170.06")) || !inv.Total.Equal(dec("1000")) {
		t.Fatalf("override: %s", describe(inv))
	}
	// After the fix and before the date, a new amount adds a line.
	w.patchAmount(p, 1, "1250.50", at("2026-02-14T12:00:00Z"))
	inv = w.invoice(w.cycle(p, 1))
	w.wantLines(inv,
		line{LineBase, "", "1", "499.00"},
		line{LineUsage, "water_m3", "37.123", "671.06"},
		line{LineAdjustment, "", "", "-170.06"},
		line{LineAdjustment, "", "", "250.50"},
	)
	if c := w.cycle(p, 1); !c.Amount.Decimal.Equal(dec("1250.50")) || !c.ShownAmount().Equal(dec("1250.5")) {
		t.Fatalf("cycle amount %v", c.Amount)
	}
	if got := inv.Audit[len(inv.Audit)-1]; got.Action != "amount_set" || got.Actor != "key-test" {
		t.Fatalf("audit %+v", got)
	}
	// From 00:00 UTC of the date, the amount is frozen.
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.PatchCycle(ctx, tx, w.biz, at("2026-02-15T00:00:00Z"), p.ID, w.cycle(p, 1).ID, "key-test",
			CyclePatch{Amount: billing.Optional[billing.Number]{Set: true, Value: billing.NumberOf(dec("1"))}})
		return err
	})
	if e, ok := billing.AsError(err); !ok || e.Reason != billing.ReasonIneligibleCycle {
		t.Fatalf("PATCH on the date: %v", err)
	}

	// Above the lines: an override larger than what was rated.
	w.succeed(w.cycle(p, 1), at("2026-02-15T08:00:00Z"))
	w.patchAmount(p, 2, "2000", at("2026-02-20T00:00:00Z"))
	w.run(at("2026-03-14T00:00:00Z"))
	w.wantLines(w.invoice(w.cycle(p, 2)),
		line{LineBase, "", "1", "499.00"},
		line{LineUsage, "water_m3", "0", "0"},
		line{LineAdjustment, "", "", "1501.00"},
	)
}

// TestFixCorrectionOnTime holds an invoice whose window holds a correction
// of its own usage; the correction is folded into the reading.
func TestFixCorrectionOnTime(t *testing.T) {
	w := newWorld(t)
	p := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-05T00:00:00Z"), event{id: "k1", meter: "kwh", qty: "90", ts: at("2026-02-03T00:00:00Z")})
	w.ingest(at("2026-02-06T00:00:00Z"), event{id: "k1-fix", meter: "kwh", qty: "-10", correctionOf: "k1"})
	w.run(at("2026-02-14T00:00:00Z"))
	inv := w.invoice(w.cycle(p, 1))
	w.wantLines(inv, line{LineBase, "", "1", "100000"}, line{LineUsage, "kwh", "80", "80000"})
	if !slices.Equal(inv.ReviewReasons, []string{reasonCorrection}) || inv.Lines[1].Usage.Corrections != 1 || inv.Lines[1].Usage.EventCount != 2 {
		t.Fatalf("correction: %s", describe(inv))
	}
}

// TestFixNegativeTotal: a late correction taking off more than the cycle
// bills leaves the total at zero, held for review.
func TestFixNegativeTotal(t *testing.T) {
	w := newWorld(t)
	body := w.planBody()
	body["amount"] = 0
	p := w.plan(body, at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-05T00:00:00Z"), event{id: "k1", meter: "kwh", qty: "150", ts: at("2026-02-03T00:00:00Z")})
	w.run(at("2026-02-14T00:00:00Z"))
	w.succeed(w.cycle(p, 1), at("2026-02-15T08:00:00Z"))
	w.ingest(at("2026-02-20T00:00:00Z"), event{id: "k1-fix", meter: "kwh", qty: "-100", correctionOf: "k1"})
	w.run(at("2026-03-14T00:00:00Z"))
	inv := w.invoice(w.cycle(p, 2))
	// 150 kWh (175,000) became 50 (50,000): −125,000.
	w.wantLines(inv,
		line{LineBase, "", "1", "0"},
		line{LineUsage, "kwh", "0", "0"},
		line{LineLateUsage, "kwh", "-100", "-125000"},
		line{LineAdjustment, "", "", "125000"},
	)
	if !inv.Total.IsZero() || !slices.Contains(inv.ReviewReasons, reasonTotalBelowZero) || inv.ReviewStatus != ReviewNeedsReview {
		t.Fatalf("negative total: %s", describe(inv))
	}
}

// TestFixTwoPlansOneMeter bills a customer's meter charged by two plans
// fixed in one batch: each event goes to exactly one of them.
func TestFixTwoPlansOneMeter(t *testing.T) {
	w := newWorld(t)
	a := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	b := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-05T00:00:00Z"), event{id: "k1", meter: "kwh", qty: "10", ts: at("2026-02-03T00:00:00Z")},
		event{id: "k2", meter: "kwh", qty: "5", ts: at("2026-02-04T00:00:00Z")})
	if n := w.run(at("2026-02-14T00:00:00Z")); n != 2 {
		t.Fatalf("fixed %d", n)
	}
	qa, qb := w.invoice(w.cycle(a, 1)).Lines[1].Quantity.Decimal, w.invoice(w.cycle(b, 1)).Lines[1].Quantity.Decimal
	if !qa.Add(qb).Equal(dec("15")) || !(qa.IsZero() || qb.IsZero()) {
		t.Fatalf("quantities %s and %s", qa, qb)
	}
}

// patchAmount sets cycle n's amount with PATCH at now.
func (w *world) patchAmount(p *Plan, n int, amount string, now time.Time) {
	w.t.Helper()
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.PatchCycle(ctx, tx, w.biz, now, p.ID, w.cycle(p, n).ID, "key-test",
			CyclePatch{Amount: billing.Optional[billing.Number]{Set: true, Value: billing.NumberOf(dec(amount))}})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// approve approves an invoice at now as API key "key-test".
func (w *world) approve(id string, now time.Time) *Invoice {
	w.t.Helper()
	var inv *Invoice
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		inv, err = w.s.ApproveInvoice(ctx, tx, w.biz, now, id, "key-test", InvoiceActionParams{})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return inv
}

// wantEvents checks the event types whose data names id (a cycle's id or
// its invoice's cycle), in order.
func (w *world) wantEvents(cycleID string, types ...string) {
	w.t.Helper()
	var rows []struct {
		Type string          `bun:"type"`
		Data json.RawMessage `bun:"data"`
	}
	if err := w.db.Bun.NewSelect().Table("events").Column("type", "data").Where("business_id = ?", w.biz.ID).
		Where("data->>'id' = ? OR data->>'cycle_id' = ?", cycleID, cycleID).
		Where("type IN (?)", bun.In([]string{outbox.RecurringCycleAmountFixed, outbox.InvoiceFinalized, outbox.InvoiceNeedsReview})).
		OrderExpr("id").Scan(w.ctx, &rows); err != nil {
		w.t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Type)
		var data map[string]any
		if err := json.Unmarshal(r.Data, &data); err != nil {
			w.t.Fatal(err)
		}
		if r.Type == outbox.RecurringCycleAmountFixed && (data["amount_fixed_at"] == nil || data["invoice_id"] == nil) {
			w.t.Errorf("amount_fixed without amount_fixed_at or invoice_id: %s", r.Data)
		}
	}
	if !slices.Equal(got, types) {
		w.t.Fatalf("events of %s: %v, want %v", cycleID, got, types)
	}
}

func sameSet(got []string, want ...string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
