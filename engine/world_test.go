package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
	"github.com/uptrace/bun"
)

// world is one database test's business: a sandbox business with a
// customer and meters, and the engine.
type world struct {
	t        *testing.T
	ctx      context.Context
	db       *postgres.DB
	s        *Service
	biz      *business.Business
	customer *customers.Customer
	ingester *metering.Ingester
	seq      int
}

// worldStart is when each world's business and customer are created.
var worldStart = at("2026-01-20T09:00:00Z")

func newWorld(t *testing.T) *world {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	biz, _, err := business.Create(ctx, db.Bun, billing.NewSettableClock(worldStart), business.CreateParams{Name: t.Name(), Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ctx: ctx, db: db, s: New(Config{DB: db.Bun}), biz: biz,
		ingester: metering.NewIngester(db.Pool, metering.NewPartitions(db.Pool))}
	w.customer = w.newCustomer("C-1")
	for _, m := range []struct{ code, name, unit, agg string }{
		{"kwh", "Electricity", "kWh", "SUM"}, {"water_m3", "Water", "m³", "SUM"}, {"peak_kw", "Peak demand", "kW", "MAX"},
	} {
		if _, err := metering.CreateMeter(ctx, db.Bun, biz.ID, worldStart, metering.CreateMeterParams{Code: m.code, Name: m.name,
			Unit: m.unit, Aggregation: metering.Aggregation(m.agg)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(w.checkInvariants)
	return w
}

func (w *world) newCustomer(ref string) *customers.Customer {
	w.t.Helper()
	given := "Siti"
	c, err := customers.Create(w.ctx, w.db.Bun, w.biz.ID, worldStart, customers.CreateParams{ReferenceID: ref,
		Type: customers.TypeIndividual, IndividualDetail: &customers.IndividualDetail{GivenNames: &given}})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// graduatedKWh is an electricity tariff: 1,000 per kWh up to 100, 1,500 up
// to 200, then 2,000 plus a flat 5,000.
var graduatedKWh = map[string]any{"model": "GRADUATED", "tiers": []any{
	map[string]any{"up_to": 100, "unit_amount": 1000},
	map[string]any{"up_to": 200, "unit_amount": 1500},
	map[string]any{"up_to": nil, "unit_amount": 2000, "flat_amount": 5000},
}}

// planBody is a monthly IDR plan of the world's customer: a base fee of
// 100,000 and graduated electricity, anchored on the 15th at 08:00 UTC.
func (w *world) planBody() map[string]any {
	w.seq++
	return map[string]any{
		"reference_id": fmt.Sprintf("plan-%d", w.seq), "customer_id": w.customer.ID, "recurring_action": "PAYMENT",
		"currency": "IDR", "amount": 100000, "description": "Tariff R-1 base fee",
		"schedule":      map[string]any{"reference_id": "monthly", "interval": "MONTH", "interval_count": 1, "anchor_date": "2026-02-15T08:00:00Z"},
		"usage_charges": []any{map[string]any{"meter": "kwh", "description": "Electricity", "price": graduatedKWh}},
	}
}

// plan creates the plan of body and activates it at activated, as a saved
// payment method would: ACTIVE with cycle 1.
func (w *world) plan(body map[string]any, activated time.Time) *Plan {
	w.t.Helper()
	cp := decodePlan(w.t, body)
	var p *Plan
	var err error
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if p, err = w.s.CreatePlan(ctx, tx, w.biz, activated, cp, "http://engine.test"); err != nil {
			return err
		}
		return w.s.activate(ctx, tx, p, truncate(activated))
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// event is one usage event: id, meter, quantity, timestamp, and optionally
// the event it corrects.
type event struct {
	id, meter, qty string
	ts             time.Time
	correctionOf   string
	customer       *customers.Customer
}

// ingest stores events as received at receivedAt.
func (w *world) ingest(receivedAt time.Time, events ...event) {
	w.t.Helper()
	var list []map[string]any
	for _, e := range events {
		c := e.customer
		if c == nil {
			c = w.customer
		}
		m := map[string]any{"event_id": e.id, "customer_id": c.ID, "meter": e.meter, "quantity": json.Number(e.qty)}
		if e.correctionOf != "" {
			m["correction_of"] = e.correctionOf
		} else {
			m["timestamp"] = e.ts.Format(time.RFC3339Nano)
		}
		list = append(list, m)
	}
	raw, err := json.Marshal(map[string]any{"events": list})
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := metering.DecodeBatch(raw)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.ingester.Ingest(w.ctx, w.biz.ID, receivedAt, b)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(res.Rejected) > 0 || res.Accepted != len(events) {
		w.t.Fatalf("ingest: %+v", res)
	}
}

// run runs everything due at now and returns how many cycles moved.
func (w *world) run(now time.Time) int {
	w.t.Helper()
	n, err := w.s.RunDueBusiness(w.ctx, w.biz.ID, now)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// readCycle reads cycle n of plan p, failing t when it cannot.
func readCycle(t testing.TB, ctx context.Context, db bun.IDB, p *Plan, n int) *Cycle {
	t.Helper()
	c := new(Cycle)
	if err := db.NewSelect().Model(c).Where("plan_id = ?", p.ID).Where("cycle_number = ?", n).Scan(ctx); err != nil {
		t.Fatalf("cycle %d of %s: %v", n, p.ID, err)
	}
	return c
}

// cycle reads cycle n of plan p.
func (w *world) cycle(p *Plan, n int) *Cycle {
	w.t.Helper()
	c := readCycle(w.t, w.ctx, w.db.Bun, p, n)
	return c.bind(p)
}

// invoice reads the invoice of cycle c, with its lines.
func (w *world) invoice(c *Cycle) *Invoice {
	w.t.Helper()
	inv := new(Invoice)
	if err := w.db.Bun.NewSelect().Model(inv).Where("cycle_id = ?", c.ID).Scan(w.ctx); err != nil {
		w.t.Fatalf("invoice of cycle %s: %v", c.ID, err)
	}
	if err := loadDetails(w.ctx, w.db.Bun, inv); err != nil {
		w.t.Fatal(err)
	}
	return inv
}

// succeed ends cycle c as charging does when its payment succeeds
// (SUCCEEDED, invoice PAID), and moves its plan on to the next cycle at now.
func (w *world) succeed(c *Cycle, now time.Time) {
	w.t.Helper()
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		plan, err := getPlan(ctx, tx, w.biz.ID, c.PlanID, true)
		if err != nil {
			return err
		}
		c.Status, c.NextAction, c.NextActionAt = CycleStatusSucceeded, nil, nil
		if _, err := tx.NewUpdate().Model(c).WherePK().Column("status", "next_action", "next_action_at").Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Table("invoices").Set("status = ?, amount_paid = total, paid_at = ?", InvoiceStatusPaid, now).
			Where("cycle_id = ?", c.ID).Exec(ctx); err != nil {
			return err
		}
		return w.s.advance(ctx, tx, plan, c, now)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// line is what a test expects of an invoice line.
type line struct {
	kind, meter, quantity, amount string
}

// wantLines checks inv's lines, in order, to the unit, and that its total
// is their sum.
func (w *world) wantLines(inv *Invoice, want ...line) {
	w.t.Helper()
	if len(inv.Lines) != len(want) {
		w.t.Fatalf("invoice has %d lines, want %d: %s", len(inv.Lines), len(want), describe(inv))
	}
	sum := decimal.Zero
	for i, l := range inv.Lines {
		wl := want[i]
		meter := ""
		if l.Meter != nil {
			meter = *l.Meter
		}
		qty := ""
		if l.Quantity.Valid {
			qty = l.Quantity.Decimal.String()
		}
		if l.Kind != wl.kind || meter != wl.meter || !l.Amount.Equal(dec(wl.amount)) || (wl.quantity != "" && !dec(qty).Equal(dec(wl.quantity))) {
			w.t.Errorf("line %d: %s %s qty %s amount %s; want %+v", i+1, l.Kind, meter, qty, l.Amount, wl)
		}
		sum = sum.Add(l.Amount)
	}
	if !inv.Total.Equal(sum) {
		w.t.Errorf("total %s, lines %s", inv.Total, sum)
	}
}

func describe(inv *Invoice) string {
	raw, _ := json.MarshalIndent(inv, "", " ")
	return string(raw)
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// checkInvariants checks SPEC §8 for the world's business (Violations),
// except the receipts behind paid invoices: succeed marks cycles paid
// without a payment.
func (w *world) checkInvariants() {
	w.t.Helper()
	bad, err := violations(w.ctx, w.db.Bun, w.biz.ID, false)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, b := range bad {
		w.t.Errorf("invariant: %s", b)
	}
}

// decodePlan decodes the plan creation body, as the API would.
func decodePlan(t testing.TB, body map[string]any) CreatePlanParams {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := DecodePlan(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
