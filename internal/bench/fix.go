package main

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/migrations"
)

// fixTariff is the plans' graduated kWh price (IDR): 1,000 per kWh up to
// 100, 1,500 up to 200, then 2,000 plus a flat 5,000.
const fixTariff = `[{"meter": "kwh", "description": "Electricity", "price": {"model": "GRADUATED", "tiers": [` +
	`{"up_to": 100, "unit_amount": 1000}, {"up_to": 200, "unit_amount": 1500}, {"up_to": null, "unit_amount": 2000, "flat_amount": 5000}]}}]`

// fixBase is each plan's base amount (IDR).
const fixBase = 100000

// placeholder is the due time of the seeded cycles until the engine's run
// gives them the real deadline.
var placeholder = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// fixWorld is the seeded database of the amount-fixing benchmark.
type fixWorld struct {
	url        string
	businessID string
	plans      int
	events     int
}

// benchFixing measures SPEC §9's amount fixing: plans ACTIVE plans of a
// live business, each its own customer's, with a graduated kWh charge and
// cycle 1 due at one moment, and events unbilled usage events spread over
// them. The engine (a real billing serve process, fixing through its River
// jobs and the same code the sandbox clock uses) is timed from the
// deadline until every cycle is fixed with its invoice written, against a
// hand-written set-based SQL doing the same reads and writes in one
// transaction on a copy of the same data.
func benchFixing(ctx context.Context, serverURL string, plans, events int) error {
	fmt.Printf("\nAmount fixing: %d cycles due at one moment, %d unbilled events, graduated kWh prices\n", plans, events)
	w, err := seedFixing(ctx, serverURL, plans, events)
	if err != nil {
		return err
	}
	// The baseline's copy of the data, made while nothing is connected to it.
	sqlURL, err := cloneDatabase(ctx, serverURL, "billing_bench_fix", "billing_bench_fix_sql")
	if err != nil {
		return err
	}
	sqlTime, sqlRes, err := timeFixSQL(ctx, sqlURL, w)
	if err != nil {
		return fmt.Errorf("SQL baseline: %w", err)
	}
	fmt.Printf("  SQL baseline        %8.1f s  (one transaction)\n", sqlTime.Seconds())
	if err := dropDatabase(ctx, serverURL, "billing_bench_fix_sql"); err != nil {
		return err
	}
	engTime, engRes, rss, err := timeFixEngine(ctx, w)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if !engRes.sum.Equal(sqlRes.sum) || engRes.digest != sqlRes.digest {
		return fmt.Errorf("the engine billed otherwise than the SQL: invoices total %s (digest %s), the SQL's %s (digest %s)",
			engRes.sum, engRes.digest, sqlRes.sum, sqlRes.digest)
	}
	fmt.Printf("  engine              %8.1f s  (billing serve, from the deadline until every cycle is fixed)\n", engTime.Seconds())
	fmt.Printf("  ratio               %8.2f × the SQL  (target ≤ 2×)\n", engTime.Seconds()/sqlTime.Seconds())
	fmt.Printf("  checked: each cycle fixed once, numbers 1..%d, every event billed once; each cycle's total, quantity and event count\n"+
		"           the same in both (invoices total IDR %s)\n", w.plans, engRes.sum.StringFixed(0))
	fmt.Printf("  engine peak RSS     %s  (target ≤ 300 MB)\n", rss)
	return nil
}

// seedFixing creates database billing_bench_fix and fills it with COPY.
func seedFixing(ctx context.Context, serverURL string, plans, events int) (*fixWorld, error) {
	url, err := recreate(ctx, serverURL, "billing_bench_fix")
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
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Bench Fixing Utility", Mode: business.ModeLive})
	if err != nil {
		return nil, err
	}
	if _, err := metering.CreateMeter(ctx, db.Bun, biz.ID, now, metering.CreateMeterParams{Code: "kwh", Name: "Electricity", Unit: "kWh",
		Aggregation: metering.AggregationSum}); err != nil {
		return nil, err
	}
	activated := now.AddDate(0, 0, -30)
	if err := metering.NewPartitions(db.Pool).Ensure(ctx, activated, now); err != nil {
		return nil, err
	}
	schedID := billing.NewID(billing.PrefixSchedule)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO recurring_schedules (id, business_id, reference_id, "interval", interval_count, anchor_date, created, updated)
		VALUES ($1, $2, 'monthly', 'MONTH', 1, $3, $4, $4)`, schedID, biz.ID, placeholder, now); err != nil {
		return nil, err
	}
	customers, planIDs := make([]string, plans), make([]string, plans)
	for i := range customers {
		customers[i], planIDs[i] = billing.NewID(billing.PrefixCustomer), billing.NewID(billing.PrefixPlan)
	}
	copyRows := func(table string, cols []string, n int, row func(i int) []any) error {
		_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
		if err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		return nil
	}
	given := []byte(`{"given_names": "Pelanggan"}`)
	if err := copyRows("customers", []string{"id", "business_id", "reference_id", "type", "individual_detail", "created", "updated"}, plans,
		func(i int) []any {
			return []any{customers[i], biz.ID, fmt.Sprintf("PLN-%07d", i), "INDIVIDUAL", given, now, now}
		}); err != nil {
		return nil, err
	}
	base := pgtype.Numeric{Int: big.NewInt(fixBase), Valid: true}
	policy := []byte(`{"mode": "AUTO", "max_total": null, "usage_factor": 3}`)
	if err := copyRows("recurring_plans", []string{"id", "business_id", "customer_id", "reference_id", "recurring_action", "currency", "amount",
		"schedule_id", "usage_charges", "amount_lead_days", "review_policy", "status", "recurring_cycle_count", "activated_at", "created", "updated"},
		plans, func(i int) []any {
			return []any{planIDs[i], biz.ID, customers[i], fmt.Sprintf("PLAN-%07d", i), "PAYMENT", "IDR", base, schedID, []byte(fixTariff), 1,
				policy, "ACTIVE", 1, activated, activated, activated}
		}); err != nil {
		return nil, err
	}
	scheduled := placeholder.AddDate(0, 0, 2)
	if err := copyRows("recurring_cycles", []string{"id", "business_id", "plan_id", "customer_id", "cycle_number", "type", "status",
		"scheduled_timestamp", "currency", "fix_at", "usage_window_start", "usage_window_end", "next_action", "next_action_at", "created", "updated"},
		plans, func(i int) []any {
			return []any{billing.NewID(billing.PrefixCycle), biz.ID, planIDs[i], customers[i], 1, "SCHEDULED", "SCHEDULED", scheduled, "IDR",
				placeholder, activated, placeholder, "FIX_AMOUNT", placeholder, activated, activated}
		}); err != nil {
		return nil, err
	}
	// Events: readings of 0.5 to 60.5 kWh, so that a month's usage lands in
	// every tier; timestamps over the 29 days after the activation.
	if err := copyRows("usage_events", []string{"business_id", "id", "event_id", "customer_id", "meter", "quantity", "timestamp", "received_at"},
		events, func(i int) []any {
			c := i % plans
			milli := int64(500 + (i*7919)%60000)
			ts := activated.Add(time.Duration(1+(i/plans)%29*24) * time.Hour).Add(time.Duration(c%3600) * time.Second)
			return []any{biz.ID, billing.NewID(billing.PrefixUsageEvent), fmt.Sprintf("reading-%08d", i), customers[c], "kwh",
				pgtype.Numeric{Int: big.NewInt(milli), Exp: -3, Valid: true}, ts, now}
		}); err != nil {
		return nil, err
	}
	for _, sql := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("%s: %w", sql, err)
		}
	}
	fmt.Printf("  seeded in %.1f s (COPY of customers, plans, cycles and events; then VACUUM ANALYZE)\n", time.Since(start).Seconds())
	return &fixWorld{url: url, businessID: biz.ID, plans: plans, events: events}, nil
}

// cloneDatabase creates database to as a copy of from and returns its URL.
func cloneDatabase(ctx context.Context, serverURL, from, to string) (string, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+to+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+to+" TEMPLATE "+from); err != nil {
		return "", err
	}
	return postgres.WithDatabase(serverURL, to)
}

func dropDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}
