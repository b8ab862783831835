package metering_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing/metering"
	"github.com/uptrace/bun"
)

// window of these tests: [Nov 1, Dec 1) 2026; fix at Dec 1 00:00 UTC.
var (
	windowStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cutoff      = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

func (w *world) target(customer int, meter string) metering.Target {
	return metering.Target{BusinessID: w.biz.ID, CustomerID: w.customers[customer].ID, Meter: w.meters[meter], WindowStart: windowStart, Cutoff: cutoff}
}

func TestAggregationsOverAWindow(t *testing.T) {
	w := setup(t)
	w.now = time.Date(2026, 12, 1, 0, 3, 0, 0, time.UTC) // the clock may read a little past the cut-off
	c := w.customers[0]
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }
	res := w.ingest(
		// kWh (SUM): 10 + 20 + 5.5 in the window, 7 late (October), 3 after the cut-off.
		ev("k1", c, "kwh", "10", at(1, 0)), // exactly at the window start: on time
		ev("k2", c, "kwh", "20", at(15, 12)),
		ev("k3", c, "kwh", "5.5", time.Date(2026, 11, 30, 23, 59, 59, 999999000, time.UTC)),
		ev("k4", c, "kwh", "7", time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC)),
		ev("k5", c, "kwh", "3", cutoff), // exactly at the cut-off: next window
		ev("k6", c, "kwh", "-2.5", time.Time{}, "timestamp", nil, "correction_of", "k2"),
		// readings (COUNT): three events.
		ev("c1", c, "readings", "", at(2, 0)), ev("c2", c, "readings", "", at(3, 0)), ev("c3", c, "readings", "99", at(4, 0)),
		// peak (MAX): 4, 9 corrected down to 6, 8 → 8.
		ev("m1", c, "peak_kw", "4", at(5, 0)), ev("m2", c, "peak_kw", "9", at(6, 0)), ev("m3", c, "peak_kw", "8", at(7, 0)),
		ev("m4", c, "peak_kw", "-3", time.Time{}, "timestamp", nil, "correction_of", "m2"),
		// index (LATEST): the reading at the latest timestamp, corrected.
		ev("l1", c, "index", "1000", at(10, 0)), ev("l2", c, "index", "1250", at(20, 0)), ev("l3", c, "index", "1100", at(12, 0)),
		ev("l4", c, "index", "5", time.Time{}, "timestamp", nil, "correction_of", "l2"),
		// sites (UNIQUE_COUNT): A, B, A → 2.
		ev("s1", c, "sites", "", at(1, 1), "properties", map[string]any{"site": "A"}),
		ev("s2", c, "sites", "", at(1, 2), "properties", map[string]any{"site": "B"}),
		ev("s3", c, "sites", "", at(1, 3), "properties", map[string]any{"site": "A"}),
	)
	if res.Accepted != 20 || len(res.Rejected) != 0 {
		t.Fatalf("%+v", res)
	}
	targets := []metering.Target{w.target(0, "kwh"), w.target(0, "readings"), w.target(0, "peak_kw"), w.target(0, "index"), w.target(0, "sites")}
	want := map[string]struct {
		qty    string
		events int64
		late   int
	}{
		"kwh": {"33", 4, 1}, "readings": {"3", 3, 0}, "peak_kw": {"8", 4, 0}, "index": {"1255", 4, 0}, "sites": {"2", 3, 0},
	}
	check := func(label string, got []metering.Usage) {
		t.Helper()
		for _, u := range got {
			exp := want[u.Meter]
			if !u.Quantity.Equal(dec(exp.qty)) || u.EventCount != exp.events || len(u.Late) != exp.late {
				t.Errorf("%s %s: quantity %s, %d events, %d late; want %s, %d, %d", label, u.Meter, u.Quantity, u.EventCount, len(u.Late), exp.qty, exp.events, exp.late)
			}
		}
	}
	preview, err := metering.PreviewUnbilled(w.ctx, w.db.Bun, targets)
	if err != nil {
		t.Fatal(err)
	}
	check("preview", preview)
	kwh := preview[0]
	if !kwh.FirstEventAt.Equal(at(1, 0)) || !kwh.LastEventAt.Equal(time.Date(2026, 11, 30, 23, 59, 59, 999999000, time.UTC)) ||
		kwh.Late[0].EventID != "k4" || !kwh.Late[0].Quantity.Equal(dec("7")) {
		t.Fatalf("kWh evidence: %+v first %v last %v", kwh, kwh.FirstEventAt, kwh.LastEventAt)
	}

	// Billing marks exactly what the preview showed, once.
	for i := range targets {
		targets[i].CycleID = "recy-test-1"
	}
	var billed []metering.Usage
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		billed, err = metering.BillUnbilled(ctx, tx, targets)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check("bill", billed)
	again, err := metering.BillUnbilled(w.ctx, w.db.Bun, targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range again {
		if !u.Quantity.IsZero() || u.EventCount != 0 || len(u.Late) != 0 || u.FirstEventAt != nil {
			t.Fatalf("billed twice: %+v", u)
		}
	}
	var unbilled []string
	if err := w.db.Bun.NewSelect().Table("usage_events").Column("event_id").Where("business_id = ?", w.biz.ID).Where("billed_cycle_id IS NULL").Scan(w.ctx, &unbilled); err != nil {
		t.Fatal(err)
	}
	if len(unbilled) != 1 || unbilled[0] != "k5" {
		t.Fatalf("unbilled after billing: %v (want only k5, at the cut-off)", unbilled)
	}
	// Usage before a plan's activation (Since) is not the plan's.
	w.ingest(ev("pre", c, "kwh", "9", at(3, 0)), ev("post", c, "kwh", "4", at(3, 2)))
	since := w.target(0, "kwh")
	since.Since, since.CycleID = at(3, 1), "recy-test-2"
	billed2, err := metering.BillUnbilled(w.ctx, w.db.Bun, []metering.Target{since})
	if err != nil || !billed2[0].Quantity.Equal(dec("4")) || billed2[0].EventCount != 1 {
		t.Fatalf("with Since: %+v %v", billed2, err)
	}
	evidence, err := metering.BilledEvents(w.ctx, w.db.Bun, w.biz.ID, "recy-test-1", "kwh")
	if err != nil || len(evidence) != 5 || evidence[0].EventID != "k4" {
		t.Fatalf("evidence %+v %v", evidence, err)
	}
	// Re-rating October with its late event, in Go, agrees with SQL's rule.
	if got := metering.Aggregate(metering.AggregationSum, evidence); !got.Equal(dec("40")) {
		t.Fatalf("Aggregate(SUM) = %s", got)
	}
}

// TestBillOnceUnderConcurrency has two engines bill the same customers at
// the same moment with different cycles: every event ends in exactly one.
func TestBillOnceUnderConcurrency(t *testing.T) {
	w := setup(t)
	var batch []any
	for i := 0; i < 900; i++ {
		batch = append(batch, ev(fmt.Sprintf("e%d", i), w.customers[i%3], "kwh", "1.25", windowStart.Add(time.Duration(i)*time.Hour/2)))
	}
	if res := w.ingest(batch...); res.Accepted != 900 {
		t.Fatal(res)
	}
	total := decimal.Zero
	var mu sync.Mutex
	var wg sync.WaitGroup
	for engine := 0; engine < 2; engine++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ts []metering.Target
			for c := 0; c < 3; c++ {
				tg := w.target(c, "kwh")
				tg.CycleID = fmt.Sprintf("recy-engine-%d-%d", engine, c)
				ts = append(ts, tg)
			}
			for try := 0; ; try++ { // a deadlock aborts one transaction, which is run again
				var us []metering.Usage
				err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					var err error
					us, err = metering.BillUnbilled(ctx, tx, ts)
					return err
				})
				if metering.IsRetryable(err) && try < 5 {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, u := range us {
					total = total.Add(u.Quantity)
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if !total.Equal(dec("1125")) {
		t.Fatalf("billed %s in all, want 1125 (900 × 1.25)", total)
	}
	var unbilled int
	if err := w.db.Bun.NewRaw("SELECT count(*) FROM usage_events WHERE business_id = ? AND billed_cycle_id IS NULL", w.biz.ID).Scan(w.ctx, &unbilled); err != nil || unbilled != 0 {
		t.Fatalf("%d unbilled (%v)", unbilled, err)
	}
}

// TestSQLAndGoAggregationsAgree checks on random events, corrections
// included, that the set-based SQL and the Go rule give the same quantity
// for every aggregation, and that many customers in one call get their own.
func TestSQLAndGoAggregationsAgree(t *testing.T) {
	w := setup(t)
	rng := rand.New(rand.NewSource(7))
	records := map[string][]metering.EventRecord{} // by customer/meter
	var batch []any
	n := 0
	for ci, c := range w.customers {
		for code, m := range w.meters {
			k := fmt.Sprintf("%d/%s", ci, code)
			for i := 0; i < 40; i++ {
				n++
				id := fmt.Sprintf("r%d", n)
				ts := windowStart.Add(time.Duration(rng.Intn(29*24)) * time.Hour)
				qty := decimal.New(rng.Int63n(100000), -int32(rng.Intn(4)))
				site := fmt.Sprintf("S%d", rng.Intn(6))
				e := ev(id, c, code, qty.String(), ts, "properties", map[string]any{"site": site})
				rec := metering.EventRecord{EventID: id, Timestamp: ts, Quantity: qty}
				if m.Aggregation == metering.AggregationCount || m.Aggregation == metering.AggregationUniqueCount {
					rec.Quantity = dec("1")
					delete(e, "quantity")
				}
				if m.Aggregation == metering.AggregationUniqueCount {
					rec.UniqueValue = &site
				}
				batch = append(batch, e)
				records[k] = append(records[k], rec)
				if m.Aggregation != metering.AggregationCount && m.Aggregation != metering.AggregationUniqueCount && rng.Intn(4) == 0 {
					n++
					corr := decimal.New(-rng.Int63n(qty.Coefficient().Int64()+1), qty.Exponent())
					batch = append(batch, ev(fmt.Sprintf("r%d", n), c, code, corr.String(), time.Time{}, "timestamp", nil, "correction_of", id))
					records[k] = append(records[k], metering.EventRecord{EventID: fmt.Sprintf("r%d", n), Timestamp: ts, Quantity: corr, CorrectionOf: id})
				}
			}
		}
	}
	if res := w.ingest(batch...); res.Accepted != len(batch) {
		t.Fatalf("accepted %d of %d: %+v", res.Accepted, len(batch), res.Rejected)
	}
	var targets []metering.Target
	for ci := range w.customers {
		for code := range w.meters {
			targets = append(targets, w.target(ci, code))
		}
	}
	got, err := metering.PreviewUnbilled(w.ctx, w.db.Bun, targets)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range got {
		tg := targets[i]
		ci := 0
		for j, c := range w.customers {
			if c.ID == u.CustomerID {
				ci = j
			}
		}
		want := metering.Aggregate(tg.Meter.Aggregation, records[fmt.Sprintf("%d/%s", ci, u.Meter)])
		if !u.Quantity.Equal(want) {
			t.Errorf("customer %d %s (%s): SQL %s, Go %s", ci, u.Meter, tg.Meter.Aggregation, u.Quantity, want)
		}
	}
}
