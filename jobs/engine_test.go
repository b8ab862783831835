package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	billingengine "github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/jobs"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// The engine package is imported as billingengine: webhooks_test.go names
// its test processes engine.

// TestEngineThreeProcesses starts three River clients on one database, as
// three engine processes would, over cycles of a live business that are
// all due at one moment, with extra triggers so that every client works:
// each cycle's amount is fixed exactly once (one invoice, one
// recurring.cycle.amount_fixed), every event is billed once, and the
// invoice numbers are 1..N.
func TestEngineThreeProcesses(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	clock := billing.NewSettableClock(now)
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: t.Name(), Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	const count = 60
	seedDueCycles(t, db, biz, now, count)

	var clients []*river.Client[pgx.Tx]
	for i := 0; i < 3; i++ {
		eng := billingengine.New(billingengine.Config{DB: db.Bun, BatchSize: 4, DueWorkers: 3})
		client, err := jobs.NewClient(db.Pool, jobs.Deps{DB: db.Bun, Clock: clock, Engine: eng}, jobs.Config{Work: true, TestOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Start(ctx); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, client)
	}
	defer func() {
		for _, c := range clients {
			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := c.Stop(stopCtx); err != nil {
				t.Error(err)
			}
			cancel()
		}
	}()
	// Extra triggers for the same business, as repeated schedule runs and
	// look-aheads make, so that the clients race for the same cycles.
	var extra []river.InsertManyParams
	for i := 0; i < 9; i++ {
		extra = append(extra, river.InsertManyParams{Args: jobs.EngineDueArgs{BusinessID: biz.ID, At: now.Add(-time.Duration(i) * time.Second)}})
	}
	if _, err := clients[0].InsertMany(ctx, extra); err != nil {
		t.Fatal(err)
	}

	waitFixed(t, db, biz)
	var r struct {
		Invoices int `bun:"invoices"`
		Fixed    int `bun:"fixed"`
		Events   int `bun:"events"`
		Distinct int `bun:"distinct_cycles"`
		Numbers  int `bun:"numbers"`
		MaxNum   int `bun:"max_number"`
		Unbilled int `bun:"unbilled"`
		Mismatch int `bun:"mismatch"`
	}
	if err := db.Bun.NewRaw(`SELECT
		(SELECT count(*) FROM invoices WHERE business_id = ?0) AS invoices,
		(SELECT count(*) FROM recurring_cycles WHERE business_id = ?0 AND invoice_id IS NOT NULL) AS fixed,
		(SELECT count(*) FROM events WHERE business_id = ?0 AND type = 'recurring.cycle.amount_fixed') AS events,
		(SELECT count(DISTINCT data->>'id') FROM events WHERE business_id = ?0 AND type = 'recurring.cycle.amount_fixed') AS distinct_cycles,
		(SELECT count(DISTINCT number) FROM invoices WHERE business_id = ?0) AS numbers,
		(SELECT max(substring(number from '[0-9]+$')::int) FROM invoices WHERE business_id = ?0) AS max_number,
		(SELECT count(*) FROM usage_events WHERE business_id = ?0 AND billed_cycle_id IS NULL) AS unbilled,
		(SELECT count(*) FROM invoices i JOIN recurring_cycles c ON c.id = i.cycle_id
			WHERE i.business_id = ?0 AND (c.amount <> i.total OR i.total <> (SELECT sum(amount) FROM invoice_lines WHERE invoice_id = i.id))) AS mismatch`,
		biz.ID).Scan(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if r.Invoices != count || r.Fixed != count || r.Events != count || r.Distinct != count || r.Numbers != count || r.MaxNum != count ||
		r.Unbilled != 0 || r.Mismatch != 0 {
		t.Fatalf("after three processes: %+v, want %d of each, nothing unbilled, no mismatch", r, count)
	}
	var workers []string
	if err := db.Bun.NewRaw(`SELECT DISTINCT unnest(attempted_by) FROM river_job WHERE kind = ?`, jobs.EngineDueArgs{}.Kind()).Scan(ctx, &workers); err != nil {
		t.Fatal(err)
	}
	t.Logf("engine_due jobs were worked by %d clients", len(workers))
}

// TestEngineDueHelpers: one trigger for a business with more than a batch
// due inserts a helper trigger per other due-work slot (DueWorkers 3: two),
// and the work is shared; a business with less than a batch due gets
// none, and helpers insert no helpers. Every cycle's amount is fixed once either way.
func TestEngineDueHelpers(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	clock := billing.NewSettableClock(now)
	busy, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: t.Name() + " busy", Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	quiet, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: t.Name() + " quiet", Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	seedDueCycles(t, db, busy, now, 40)
	seedDueCycles(t, db, quiet, now, 3)

	eng := billingengine.New(billingengine.Config{DB: db.Bun, BatchSize: 4, DueWorkers: 3})
	client := startClient(t, db, jobs.Deps{DB: db.Bun, Clock: clock, Engine: eng})
	// One trigger each, as the wake listener inserts; the schedule's own
	// come only once the client is elected leader, seconds later.
	for _, biz := range []*business.Business{busy, quiet} {
		if _, err := client.Insert(ctx, jobs.EngineDueArgs{BusinessID: biz.ID, At: now}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFixed(t, db, busy, quiet)
	var got []struct {
		BusinessID string `bun:"business_id"`
		Helper     int    `bun:"helper"`
		Triggers   int    `bun:"triggers"`
	}
	if err := db.Bun.NewRaw(`SELECT args->>'business_id' AS business_id, coalesce((args->>'helper')::int, 0) AS helper, count(*) AS triggers
		FROM river_job WHERE kind = ? GROUP BY 1, 2 ORDER BY 1, 2`, jobs.EngineDueArgs{}.Kind()).Scan(ctx, &got); err != nil {
		t.Fatal(err)
	}
	helpers, primaries := map[string][]int{}, map[string]int{}
	for _, g := range got {
		if g.Helper == 0 {
			primaries[g.BusinessID] = g.Triggers
			continue
		}
		helpers[g.BusinessID] = append(helpers[g.BusinessID], g.Helper)
		if g.Triggers > primaries[g.BusinessID] {
			t.Errorf("helper %d of business %s: %d triggers for %d primary triggers; helpers insert none", g.Helper, g.BusinessID,
				g.Triggers, primaries[g.BusinessID])
		}
	}
	if fmt.Sprint(helpers[busy.ID]) != "[1 2]" || len(helpers[quiet.ID]) != 0 {
		t.Fatalf("helper triggers %v (rows %+v), want [1 2] for the business with 40 cycles due and none for the one with 3", helpers, got)
	}
	var invoices, fixed int
	if err := db.Bun.NewRaw(`SELECT (SELECT count(*) FROM invoices WHERE business_id IN (?0, ?1)),
		(SELECT count(*) FROM events WHERE business_id IN (?0, ?1) AND type = 'recurring.cycle.amount_fixed')`, busy.ID, quiet.ID).
		Scan(ctx, &invoices, &fixed); err != nil {
		t.Fatal(err)
	}
	if invoices != 43 || fixed != 43 {
		t.Fatalf("%d invoices and %d amount_fixed events for 43 cycles", invoices, fixed)
	}
}

// waitFixed waits until every cycle of the businesses has its amount
// fixed.
func waitFixed(t *testing.T, db *postgres.DB, bizs ...*business.Business) {
	t.Helper()
	ids := make([]string, len(bizs))
	for i, b := range bizs {
		ids[i] = b.ID
	}
	waitFor(t, 30*time.Second, "every cycle's amount fixed", func() bool {
		n, err := db.Bun.NewSelect().Table("recurring_cycles").Where("business_id IN (?)", bun.In(ids)).
			Where("amount_fixed_at IS NULL").Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// seedDueCycles creates count ACTIVE plans of business biz, each its own
// customer's, with a kWh charge, two usage events, and cycle 1 due now
// (fix_at an hour ago, charged tomorrow), as stored rows.
func seedDueCycles(t *testing.T, db *postgres.DB, biz *business.Business, now time.Time, count int) {
	t.Helper()
	ctx := context.Background()
	if _, err := metering.CreateMeter(ctx, db.Bun, biz.ID, now, metering.CreateMeterParams{Code: "kwh", Name: "Electricity", Unit: "kWh",
		Aggregation: metering.AggregationSum}); err != nil {
		t.Fatal(err)
	}
	activated := now.AddDate(0, -1, 0)
	fix := now.Add(-time.Hour)
	sched := &billingengine.Schedule{ID: billing.NewID(billing.PrefixSchedule), BusinessID: biz.ID, ReferenceID: "monthly", Interval: plans.IntervalMonth,
		IntervalCount: 1, AnchorDate: now.AddDate(0, 0, 1), FailedAttemptNotifications: []int{}, Created: now, Updated: now}
	if _, err := db.Bun.NewInsert().Model(sched).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var price plans.PriceJSON
	if err := json.Unmarshal([]byte(`{"model": "GRADUATED", "tiers": [{"up_to": 100, "unit_amount": 1000}, {"up_to": null, "unit_amount": 1500}]}`), &price); err != nil {
		t.Fatal(err)
	}
	ingester := metering.NewIngester(db.Pool, metering.NewPartitions(db.Pool))
	var events []map[string]any
	for i := 0; i < count; i++ {
		given := "Budi"
		c, err := customers.Create(ctx, db.Bun, biz.ID, now, customers.CreateParams{ReferenceID: fmt.Sprintf("C-%d", i), Type: customers.TypeIndividual,
			IndividualDetail: &customers.IndividualDetail{GivenNames: &given}})
		if err != nil {
			t.Fatal(err)
		}
		p := &billingengine.Plan{ID: billing.NewID(billing.PrefixPlan), BusinessID: biz.ID, CustomerID: c.ID, ReferenceID: fmt.Sprintf("P-%d", i),
			RecurringAction: "PAYMENT", Currency: "IDR", Amount: decimal.NewFromInt(50000), ScheduleID: sched.ID, FailedCycleAction: "RESUME",
			UsageCharges: []billingengine.UsageCharge{{Meter: "kwh", Price: price}}, AmountLeadDays: 1,
			ReviewPolicy: billingengine.ReviewPolicy{Mode: "AUTO", UsageFactor: billing.NumberOf(decimal.NewFromInt(3))},
			Status:       billingengine.PlanStatusActive, RecurringCycleCount: 1, ActivatedAt: &activated, Created: activated, Updated: activated}
		if _, err := db.Bun.NewInsert().Model(p).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		action := billingengine.ActionFixAmount
		cy := &billingengine.Cycle{ID: billing.NewID(billing.PrefixCycle), BusinessID: biz.ID, PlanID: p.ID, CustomerID: c.ID, CycleNumber: 1,
			Type: billingengine.CycleTypeScheduled, Status: billingengine.CycleStatusScheduled, ScheduledTimestamp: now.AddDate(0, 0, 1), Currency: "IDR",
			FixAt: fix, UsageWindowStart: activated, UsageWindowEnd: fix, NextAction: &action, NextActionAt: &fix, Created: activated, Updated: activated}
		if _, err := db.Bun.NewInsert().Model(cy).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			events = append(events, map[string]any{"event_id": fmt.Sprintf("e-%d-%d", i, j), "customer_id": c.ID, "meter": "kwh",
				"quantity": json.Number(fmt.Sprintf("%d.5", 40+i+j)), "timestamp": now.AddDate(0, 0, -3-j).Format(time.RFC3339)})
		}
	}
	raw, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := metering.DecodeBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := ingester.Ingest(ctx, biz.ID, now, batch); err != nil || res.Accepted != len(events) {
		t.Fatalf("ingest: %+v %v", res, err)
	}
}

// TestEngineWakeOnDue: a live business's cycle that falls due (here:
// created due) wakes the engine when its transaction commits — the wake
// listener inserts an engine_due trigger for the business at once, not at
// the next schedule run — while a sandbox business's due cycles wake
// nothing (they run when its clock is advanced).
func TestEngineWakeOnDue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := pgtest.New(t)
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	clock := billing.NewSettableClock(now)
	deps := jobs.Deps{DB: db.Bun, Clock: clock, Engine: billingengine.New(billingengine.Config{DB: db.Bun})}
	client, err := jobs.NewClient(db.Pool, deps, jobs.Config{Work: false, TestOnly: true}) // inserts only
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		jobs.Wake(ctx, db.Pool, client, deps, slog.New(slog.DiscardHandler), ready)
	}()
	defer func() { cancel(); <-done }()
	<-ready

	sandbox, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "sandbox", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	seedDueCycles(t, db, sandbox, now, 3)
	live, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "live", Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	seedDueCycles(t, db, live, now, 3)

	triggers := func() map[string]int {
		var rows []string
		if err := db.Bun.NewRaw("SELECT args->>'business_id' FROM river_job WHERE kind = 'engine_due'").Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, id := range rows {
			out[id]++
		}
		return out
	}
	sys := billing.SystemClock{}
	deadline := sys.Now().Add(10 * time.Second)
	for triggers()[live.ID] == 0 {
		if sys.Now().After(deadline) {
			t.Fatal("no engine_due trigger for the live business within 10s of its cycles falling due")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Notifications arrive in commit order: the sandbox's came first, and
	// made nothing.
	if got := triggers(); got[live.ID] != 1 || got[sandbox.ID] != 0 {
		t.Fatalf("triggers %v: want one for the live business (one transaction's wake-ups fold into one) and none for the sandbox", got)
	}
}
