package main

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/migrations"
	"github.com/uptrace/bun"
)

// chargeAmount is every seeded cycle's amount (IDR): an amount the sandbox
// charges successfully.
const chargeAmount = 150000

// chargeWorld is the seeded database of the charging benchmark.
type chargeWorld struct {
	url        string
	businessID string
	cycles     int
}

// benchCharging measures SPEC §9's charging: cycles cycles of as many
// plans, each its own customer's with a sandbox token, their invoices
// OPEN, all due at one moment, charged by a real engine process (billing
// serve: its River trigger runs the engine's CHARGE step, which calls the
// sandbox provider through the payment service and settles each outcome
// in the transaction that records it: attempt, invoice PAID, events, the
// next cycle). The baseline, in the same run, is River's own throughput on
// as many no-op jobs with the same number of workers, timed once before
// the engine and once after: the ratio is to the mean of the two rates, so
// that the VM's drift during the run (River's rate moved by a third
// between runs minutes apart) weighs less on it.
//
// The business is live, so that the engine's jobs run it by the system
// clock (a sandbox business's work runs when its clock is advanced), and
// its tokens are the sandbox provider's, seeded directly: the API would
// not let a live business use the sandbox.
func benchCharging(ctx context.Context, serverURL string, cycles, workers int) error {
	fmt.Printf("\nCharging: %d cycles due at one moment, charged through the sandbox provider; %d River workers\n", cycles, workers)
	before, beforeBusy, err := riverBaseline(ctx, serverURL, cycles, workers, "before")
	if err != nil {
		return err
	}
	w, err := seedCharging(ctx, serverURL, cycles)
	if err != nil {
		return err
	}
	took, busy, err := timeChargeEngine(ctx, w, workers)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	rate := float64(cycles) / took.Seconds()
	fmt.Printf("  engine              %8.1f s  %8.0f cycles/s  (from the due moment until every cycle is SUCCEEDED)\n", took.Seconds(), rate)
	fmt.Printf("                                 machine busy %.1f s, %.0f µs a cycle\n", busy.Seconds(), perItem(busy, cycles))
	after, afterBusy, err := riverBaseline(ctx, serverURL, cycles, workers, "after")
	if err != nil {
		return err
	}
	riverRate := (before + after) / 2
	fmt.Printf("  ratio               %8.1f%% of River's no-op throughput (%.0f jobs/s, the mean of before and after; target ≥ 25%%)\n",
		100*rate/riverRate, riverRate)
	fmt.Printf("                      %8.1f%% and %.1f%% of the rates before and after\n", 100*rate/before, 100*rate/after)
	if noopBusy := (beforeBusy + afterBusy) / 2; noopBusy > 0 && busy > 0 {
		fmt.Printf("                      %8.1f%% of River's no-op work per item (machine CPU a job / a cycle)\n",
			100*perItem(noopBusy, cycles)/perItem(busy, cycles))
	}
	return nil
}

// riverBaseline times River's no-op run (timeRiverNoop), prints it as the
// run when (before or after the engine's), and returns its rate in jobs a
// second and the machine's busy CPU time over it.
func riverBaseline(ctx context.Context, serverURL string, n, workers int, when string) (float64, time.Duration, error) {
	took, busy, err := timeRiverNoop(ctx, serverURL, n, workers)
	if err != nil {
		return 0, 0, fmt.Errorf("River baseline (%s): %w", when, err)
	}
	rate := float64(n) / took.Seconds()
	fmt.Printf("  River no-op jobs    %8.1f s  %8.0f jobs/s    machine busy %.1f s, %.0f µs a job (%s the engine)\n", took.Seconds(), rate,
		busy.Seconds(), perItem(busy, n), when)
	return rate, busy, nil
}

// perItem is busy CPU time per item, in microseconds.
func perItem(busy time.Duration, n int) float64 {
	return float64(busy.Microseconds()) / float64(n)
}

// noopArgs is the baseline's job: it does nothing.
type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// timeRiverNoop inserts n no-op jobs into a database of its own, then
// starts a River client with workers workers and times it from its start
// until every job completed.
func timeRiverNoop(ctx context.Context, serverURL string, n, workers int) (time.Duration, time.Duration, error) {
	url, err := recreate(ctx, serverURL, "billing_bench_river")
	if err != nil {
		return 0, 0, err
	}
	defer dropDatabase(context.WithoutCancel(ctx), serverURL, "billing_bench_river") //nolint:errcheck
	db, err := postgres.Open(ctx, url, int32(workers+10))
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return 0, 0, err
	}
	if _, err := m.Up(ctx); err != nil {
		return 0, 0, err
	}
	client, err := noopClient(db.Pool, workers)
	if err != nil {
		return 0, 0, err
	}
	for done := 0; done < n; {
		batch := min(10_000, n-done)
		params := make([]river.InsertManyParams, batch)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if _, err := client.InsertManyFast(ctx, params); err != nil {
			return 0, 0, err
		}
		done += batch
	}
	for _, sql := range []string{"VACUUM (ANALYZE) river_job", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return 0, 0, err
		}
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{Kinds: []river.EventKind{river.EventKindJobCompleted}, ChanSize: n})
	defer cancel()
	start, busy0 := time.Now(), machineBusy()
	if err := client.Start(ctx); err != nil {
		return 0, 0, err
	}
	defer client.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	timeout := time.After(10 * time.Minute)
	for seen := 0; seen < n; seen++ {
		select {
		case <-events:
		case <-timeout:
			return 0, 0, fmt.Errorf("%d of %d no-op jobs completed in 10 minutes", seen, n)
		}
	}
	return time.Since(start), machineBusy() - busy0, nil
}

func noopClient(pool *pgxpool.Pool, workers int) (*river.Client[pgx.Tx], error) {
	ws := river.NewWorkers()
	if err := river.AddWorkerSafely(ws, noopWorker{}); err != nil {
		return nil, err
	}
	// River's own benchmark fetches every 2 ms (polling every 20 ms); with
	// the defaults (100 ms, 1 s) fetching, not working, would be measured.
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: ws, FetchCooldown: 2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}}})
}

// seedCharging creates database billing_bench_charge and fills it with
// COPY: a live business, and per cycle a customer, a sandbox token saved
// by a Pay and Save, an ACTIVE plan charging it, and cycle 1 with its
// amount fixed and its invoice (one BASE line) OPEN and numbered, due to
// be charged at a placeholder time.
func seedCharging(ctx context.Context, serverURL string, n int) (*chargeWorld, error) {
	url, err := recreate(ctx, serverURL, "billing_bench_charge")
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, url, 4)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		return nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	clock := billing.SystemClock{}
	now := clock.Now().Truncate(time.Microsecond)
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Bench Charging Utility", Mode: business.ModeLive})
	if err != nil {
		return nil, err
	}
	schedID := billing.NewID(billing.PrefixSchedule)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO recurring_schedules (id, business_id, reference_id, "interval", interval_count, anchor_date, created, updated)
		VALUES ($1, $2, 'monthly', 'MONTH', 1, $3, $4, $4)`, schedID, biz.ID, placeholder, now); err != nil {
		return nil, err
	}
	type ids struct{ customer, link, sandbox, token, plan, cycle, invoice string }
	rows := make([]ids, n)
	for i := range rows {
		rows[i] = ids{billing.NewID(billing.PrefixCustomer), billing.NewID(billing.PrefixPaymentRequest), billing.NewID("sbxtok-"),
			billing.NewID(billing.PrefixPaymentToken), billing.NewID(billing.PrefixPlan), billing.NewID(billing.PrefixCycle),
			billing.NewID(billing.PrefixInvoice)}
	}
	// One transaction: a cycle and its invoice refer to each other (the
	// cycle's reference is checked at commit).
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	copyRows := func(table string, cols []string, row func(r ids, i int) []any) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(rows[i], i), nil }))
		if err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		return nil
	}
	amount := pgtype.Numeric{Int: big.NewInt(chargeAmount), Valid: true}
	activated := now.AddDate(0, 0, -30)
	scheduled := placeholder.AddDate(0, 0, 2)
	tables := []struct {
		name string
		cols []string
		row  func(r ids, i int) []any
	}{
		{"customers", []string{"id", "business_id", "reference_id", "type", "individual_detail", "created", "updated"}, func(r ids, i int) []any {
			return []any{r.customer, biz.ID, fmt.Sprintf("PLN-%07d", i), "INDIVIDUAL", []byte(`{"given_names": "Pelanggan"}`), now, now}
		}},
		{"payment_requests", []string{"id", "business_id", "customer_id", "type", "reference_id", "country", "currency", "request_amount",
			"capture_method", "channel_code", "status", "provider", "provider_key", "created", "updated"}, func(r ids, i int) []any {
			return []any{r.link, biz.ID, r.customer, "PAY_AND_SAVE", "link", "ID", "IDR", pgtype.Numeric{Int: big.NewInt(10000), Valid: true},
				"AUTOMATIC", "DANA", "SUCCEEDED", "sandbox", r.link, activated, activated}
		}},
		{"sandbox_tokens", []string{"id", "business_id", "channel_code", "currency", "created"}, func(r ids, i int) []any {
			return []any{r.sandbox, biz.ID, "DANA", "IDR", activated}
		}},
		{"payment_tokens", []string{"id", "business_id", "customer_id", "reference_id", "provider", "provider_token_ref", "country", "currency",
			"channel_code", "status", "consented_at", "consent_channel_code", "consent_payment_request_id", "created", "updated"}, func(r ids, i int) []any {
			return []any{r.token, biz.ID, r.customer, "link", "sandbox", r.sandbox, "ID", "IDR", "DANA", "ACTIVE", activated, "DANA", r.link, activated, activated}
		}},
		{"recurring_plans", []string{"id", "business_id", "customer_id", "reference_id", "recurring_action", "currency", "amount", "schedule_id",
			"payment_methods", "failed_cycle_action", "amount_lead_days", "review_policy", "status", "recurring_cycle_count", "activated_at", "created", "updated"},
			func(r ids, i int) []any {
				return []any{r.plan, biz.ID, r.customer, fmt.Sprintf("PLAN-%07d", i), "PAYMENT", "IDR", amount, schedID,
					[]byte(`[{"payment_token_id": "` + r.token + `", "rank": 1}]`), "RESUME", 1, []byte(`{"mode": "AUTO", "max_total": null, "usage_factor": 3}`),
					"ACTIVE", 1, activated, activated, activated}
			}},
		{"recurring_cycles", []string{"id", "business_id", "plan_id", "customer_id", "cycle_number", "type", "status", "scheduled_timestamp",
			"currency", "amount", "amount_fixed_at", "fix_at", "usage_window_start", "usage_window_end", "invoice_id", "next_action", "next_action_at",
			"created", "updated"}, func(r ids, i int) []any {
			return []any{r.cycle, biz.ID, r.plan, r.customer, 1, "SCHEDULED", "SCHEDULED", scheduled, "IDR", amount, now, placeholder, activated,
				placeholder, r.invoice, "CHARGE", placeholder, activated, activated}
		}},
		{"invoices", []string{"id", "business_id", "number", "number_year", "cycle_id", "plan_id", "customer_id", "currency", "period_start",
			"period_end", "status", "review_status", "review_reasons", "subtotal", "total", "due_at", "finalized_at", "created", "updated"},
			func(r ids, i int) []any {
				return []any{r.invoice, biz.ID, fmt.Sprintf("INV-%d-%06d", now.Year(), i+1), now.Year(), r.cycle, r.plan, r.customer, "IDR", activated,
					placeholder, "OPEN", "NOT_REQUIRED", []string{}, amount, amount, scheduled, now, now, now}
			}},
		{"invoice_lines", []string{"id", "business_id", "invoice_id", "position", "kind", "description", "quantity", "unit_amount", "amount", "created"},
			func(r ids, i int) []any {
				return []any{billing.NewID("invl-"), biz.ID, r.invoice, 1, "BASE", "Base fee", pgtype.Numeric{Int: big.NewInt(1), Valid: true},
					amount, amount, now}
			}},
	}
	for _, t := range tables {
		if err := copyRows(t.name, t.cols, t.row); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_numbers (business_id, year, last) VALUES ($1, $2, $3)`, biz.ID, now.Year(), n); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	for _, sql := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("%s: %w", sql, err)
		}
	}
	fmt.Printf("  seeded in %.1f s (COPY of customers, tokens, plans, cycles and OPEN invoices; then VACUUM ANALYZE)\n", time.Since(start).Seconds())
	return &chargeWorld{url: url, businessID: biz.ID, cycles: n}, nil
}

// timeChargeEngine makes every seeded cycle due 30 seconds from now,
// starts the engine with workers River workers, and times it from that
// moment until every cycle is SUCCEEDED, measuring the machine's busy CPU
// time over it too (machineBusy); then checks that each was charged once.
func timeChargeEngine(ctx context.Context, w *chargeWorld, workers int) (time.Duration, time.Duration, error) {
	db, err := postgres.Open(ctx, w.url, 2)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	due := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	if _, err := db.Pool.Exec(ctx, `UPDATE recurring_cycles SET next_action_at = $1, scheduled_timestamp = $1 WHERE business_id = $2`,
		due, w.businessID); err != nil {
		return 0, 0, fmt.Errorf("set the due moment: %w", err)
	}
	for _, sql := range []string{"VACUUM (ANALYZE) recurring_cycles", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", sql, err)
		}
	}
	eng, err := startEngine(ctx, w.url, fmt.Sprintf("WORKERS=%d", workers))
	if err != nil {
		return 0, 0, err
	}
	defer eng.stop()
	if time.Now().After(due) {
		return 0, 0, fmt.Errorf("the engine took more than 30 s to start")
	}
	time.Sleep(time.Until(due))
	cpu0, busy0 := eng.cpuTime(), machineBusy()
	// Done when no cycle is SCHEDULED, PENDING or RETRYING. While cycles
	// wait to be charged (CHARGE) or are being sent (SEND_CHARGE, a lease
	// minutes ahead) anyDue says so cheaply; only then is every cycle's
	// status counted, so that polling takes little from the engine.
	var done time.Time
	for {
		busy, err := anyDue(ctx, db, w.businessID, due.Add(time.Hour), "CHARGE", "SEND_CHARGE")
		if err != nil {
			return 0, 0, err
		}
		left := 1
		if !busy {
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM recurring_cycles WHERE business_id = $1 AND cycle_number = 1
				AND status <> 'SUCCEEDED'`, w.businessID).Scan(&left); err != nil {
				return 0, 0, err
			}
		}
		if left == 0 {
			done = time.Now()
			break
		}
		if time.Since(due) > time.Hour {
			return 0, 0, fmt.Errorf("cycles still not charged an hour after they were due")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss, cpu, busy := eng.peakRSS(), eng.cpuTime()-cpu0, machineBusy()-busy0
	var first time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT min(created) FROM cycle_attempts WHERE business_id = $1`, w.businessID).Scan(&first); err != nil {
		return 0, 0, err
	}
	fmt.Printf("  engine's first charge %.1f s after the due moment; the engine process used %.1f s of CPU; peak RSS %s\n",
		first.Sub(due).Seconds(), cpu.Seconds(), rss)
	return done.Sub(due), busy, checkCharged(ctx, db, w)
}

// checkCharged fails unless every cycle was charged exactly once: one
// succeeded attempt, one sandbox charge and one captured payment of the
// cycle's amount, its invoice PAID, and its next cycle created.
func checkCharged(ctx context.Context, db *postgres.DB, w *chargeWorld) error {
	var attempts, succeeded, charged, requests, charges, payments, paid, next int
	if err := db.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM cycle_attempts WHERE business_id = $1),
		(SELECT count(*) FROM cycle_attempts WHERE business_id = $1 AND status = 'SUCCEEDED'),
		(SELECT count(DISTINCT cycle_id) FROM cycle_attempts WHERE business_id = $1),
		(SELECT count(*) FROM payment_requests WHERE business_id = $1 AND type = 'PAY'),
		(SELECT count(*) FROM sandbox_payments WHERE business_id = $1 AND kind = 'CHARGE'),
		(SELECT count(*) FROM payments WHERE business_id = $1 AND status = 'SUCCEEDED' AND amount = $2),
		(SELECT count(*) FROM invoices WHERE business_id = $1 AND status = 'PAID' AND amount_paid = total),
		(SELECT count(*) FROM recurring_cycles WHERE business_id = $1 AND cycle_number = 2)`, w.businessID, chargeAmount).
		Scan(&attempts, &succeeded, &charged, &requests, &charges, &payments, &paid, &next); err != nil {
		return err
	}
	n := w.cycles
	if attempts != n || succeeded != n || charged != n || requests != n || charges != n || payments != n || paid != n || next != n {
		return fmt.Errorf("for %d cycles: %d attempts (%d succeeded, of %d cycles), %d payment requests, %d sandbox charges, "+
			"%d payments, %d invoices paid, %d next cycles", n, attempts, succeeded, charged, requests, charges, payments, paid, next)
	}
	fmt.Printf("  checked: each of the %d cycles charged once (one attempt, one payment request, one sandbox charge, one payment),\n"+
		"           its invoice PAID, its next cycle created\n", n)
	return nil
}

// anyDue reports whether a cycle of the business has one of the next
// actions due at or before at. It reads the engine's own due index from
// its start, as the engine's due query does (ORDER BY next_action_at,
// LIMIT 1): written as a plain EXISTS, the planner, whose statistics were
// taken when every seeded cycle was due, scans the whole table instead,
// and a benchmark polling ten times a second would load PostgreSQL with
// reads the engine does not do.
func anyDue(ctx context.Context, db *postgres.DB, businessID string, at time.Time, actions ...string) (bool, error) {
	var found []string
	err := db.Bun.NewSelect().Table("recurring_cycles").Column("next_action").Where("business_id = ?", businessID).
		Where("next_action IS NOT NULL").Where("next_action_at <= ?", at).Where("next_action IN (?)", bun.In(actions)).
		OrderExpr("next_action_at").Limit(1).Scan(ctx, &found)
	if err != nil {
		return false, fmt.Errorf("look for due cycles: %w", err)
	}
	return len(found) > 0, nil
}
