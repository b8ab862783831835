package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing/internal/postgres"
)

// fixSQL is the baseline: what fixing the amounts of every due cycle
// reads and writes, by hand, set-based, in one transaction. It marks the
// events billed and aggregates them per cycle; prices the usage with each
// plan's graduated tiers (read from its usage_charges); and writes the
// invoices (numbered), their BASE and USAGE lines with tier breakdown and
// usage evidence, an audit entry each, the two events each cycle's fix
// emits, the cycles' amounts and next action, and the number counter.
// Each statement names its parameters: the business, the deadline, now
// and the year.
var fixSQL = []struct {
	sql    string
	params []string
}{
	{`CREATE TEMP TABLE fix_usage ON COMMIT DROP AS
	WITH billed AS (
		UPDATE usage_events e SET billed_cycle_id = c.id
		FROM recurring_cycles c JOIN recurring_plans p ON p.id = c.plan_id
		WHERE c.business_id = $1 AND c.next_action = 'FIX_AMOUNT' AND c.next_action_at <= $2
			AND e.business_id = c.business_id AND e.customer_id = c.customer_id AND e.meter = p.usage_charges->0->>'meter'
			AND e.billed_cycle_id IS NULL AND e."timestamp" >= p.activated_at AND e."timestamp" < c.fix_at
		RETURNING c.id AS cycle_id, e.quantity, e."timestamp")
	SELECT cycle_id, sum(quantity) AS q, count(*) AS n, min("timestamp") AS first, max("timestamp") AS last
	FROM billed GROUP BY cycle_id`, []string{"business", "deadline"}},

	{`CREATE TEMP TABLE fix_rated ON COMMIT DROP AS
	SELECT c.id AS cycle_id, 'inv-' || gen_random_uuid() AS invoice_id, c.plan_id, c.customer_id, c.usage_window_start,
		c.usage_window_end, c.scheduled_timestamp, p.amount AS base, p.usage_charges->0->>'meter' AS meter,
		coalesce(u.q, 0) AS q, coalesce(u.n, 0) AS n, u.first, u.last, r.tiers, coalesce(r.amount, 0) AS usage_amount,
		row_number() OVER (ORDER BY c.id) AS k
	FROM recurring_cycles c JOIN recurring_plans p ON p.id = c.plan_id
	LEFT JOIN fix_usage u ON u.cycle_id = c.id
	CROSS JOIN LATERAL (
		SELECT jsonb_agg(jsonb_build_object('from', lo, 'to', up, 'quantity', inq, 'unit_amount', unit, 'flat_amount', flat,
				'amount', round(inq * unit + flat)) ORDER BY i) FILTER (WHERE inq > 0) AS tiers,
			round(sum(inq * unit + flat) FILTER (WHERE inq > 0)) AS amount
		FROM (
			SELECT i, lo, up, unit, flat, greatest(least(coalesce(u.q, 0), coalesce(up, 'Infinity')) - lo, 0) AS inq
			FROM (
				SELECT i, coalesce(lag(up) OVER (ORDER BY i), 0) AS lo, up, unit, flat
				FROM (
					SELECT i, (t->>'up_to')::numeric AS up, (t->>'unit_amount')::numeric AS unit, coalesce((t->>'flat_amount')::numeric, 0) AS flat
					FROM jsonb_array_elements(p.usage_charges->0->'price'->'tiers') WITH ORDINALITY AS x(t, i)
				) tiers
			) bounds
		) parts
	) r
	WHERE c.business_id = $1 AND c.next_action = 'FIX_AMOUNT' AND c.next_action_at <= $2`, []string{"business", "deadline"}},

	{`INSERT INTO invoice_numbers (business_id, year, last) VALUES ($1, $2, (SELECT count(*) FROM fix_rated))
	ON CONFLICT (business_id, year) DO UPDATE SET last = invoice_numbers.last + EXCLUDED.last`, []string{"business", "year"}},

	{`INSERT INTO invoices (id, business_id, number, number_year, cycle_id, plan_id, customer_id, currency, period_start, period_end, status,
		review_status, review_reasons, subtotal, total, due_at, finalized_at, created, updated)
	SELECT invoice_id, $1, 'INV-' || $3::int || '-' || lpad(k::text, 6, '0'), $3::int, cycle_id, plan_id, customer_id, 'IDR', usage_window_start,
		usage_window_end, 'OPEN', 'NOT_REQUIRED', '{}', base + usage_amount, base + usage_amount, scheduled_timestamp, $2, $2, $2
	FROM fix_rated`, []string{"business", "now", "year"}},

	{`INSERT INTO invoice_lines (id, business_id, invoice_id, position, kind, meter, description, quantity, unit_amount, tiers, amount, usage, charge, created)
	SELECT 'invl-' || gen_random_uuid(), $1, invoice_id, 1, 'BASE', NULL, 'Base fee', 1, base, NULL, base, NULL, NULL, $2::timestamptz FROM fix_rated
	UNION ALL
	SELECT 'invl-' || gen_random_uuid(), $1, r.invoice_id, 2, 'USAGE', r.meter, 'Electricity', r.q, NULL, r.tiers, r.usage_amount,
		jsonb_build_object('event_count', r.n, 'first_event_at', r.first, 'last_event_at', r.last, 'window_start', r.usage_window_start,
			'window_end', r.usage_window_end, 'correction_count', 0), p.usage_charges->0, $2::timestamptz
	FROM fix_rated r JOIN recurring_plans p ON p.id = r.plan_id`, []string{"business", "now"}},

	{`INSERT INTO invoice_audit (id, business_id, invoice_id, action, actor, note, created)
	SELECT 'inva-' || gen_random_uuid(), $1, invoice_id, 'finalized', 'engine', 'amount fixed at IDR ' || (base + usage_amount), $2 FROM fix_rated`, []string{"business", "now"}},

	{`UPDATE recurring_cycles c SET amount = r.base + r.usage_amount, amount_fixed_at = $1, invoice_id = r.invoice_id,
		next_action = 'CHARGE', next_action_at = c.scheduled_timestamp, updated = $1
	FROM fix_rated r WHERE c.id = r.cycle_id`, []string{"now"}},

	{`INSERT INTO events (id, business_id, type, api_version, created, data)
	SELECT 'evt-' || gen_random_uuid(), $1, 'recurring.cycle.amount_fixed', '2026-11-01', $2::timestamptz, to_jsonb(c) - 'business_id'
	FROM recurring_cycles c JOIN fix_rated r ON r.cycle_id = c.id
	UNION ALL
	SELECT 'evt-' || gen_random_uuid(), $1, 'invoice.finalized', '2026-11-01', $2::timestamptz,
		to_jsonb(i) || jsonb_build_object('lines', (SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position) FROM invoice_lines l WHERE l.invoice_id = i.id))
	FROM invoices i JOIN fix_rated r ON r.invoice_id = i.id`, []string{"business", "now"}},
}

// timeFixSQL runs the baseline on the database at url and returns its
// time and the sum of the invoices' totals.
func timeFixSQL(ctx context.Context, url string, w *fixWorld) (time.Duration, decimal.Decimal, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, decimal.Zero, err
	}
	defer conn.Close(ctx)
	now := time.Now().UTC().Truncate(time.Microsecond)
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, decimal.Zero, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	values := map[string]any{"business": w.businessID, "deadline": placeholder, "now": now, "year": now.Year()}
	for i, st := range fixSQL {
		args := make([]any, len(st.params))
		for j, p := range st.params {
			args[j] = values[p]
		}
		if _, err := tx.Exec(ctx, st.sql, args...); err != nil {
			return 0, decimal.Zero, fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, decimal.Zero, err
	}
	elapsed := time.Since(start)
	sum, err := checkFixed(ctx, conn, w)
	return elapsed, sum, err
}

// checkFixed checks that every cycle has its invoice and every event was
// billed, and returns the sum of the invoices' totals.
func checkFixed(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, w *fixWorld) (decimal.Decimal, error) {
	var invoices, unfixed, unbilled int
	var sum decimal.Decimal
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM invoices WHERE business_id = $1),
		(SELECT count(*) FROM recurring_cycles WHERE business_id = $1 AND amount_fixed_at IS NULL),
		(SELECT count(*) FROM usage_events WHERE business_id = $1 AND billed_cycle_id IS NULL),
		(SELECT coalesce(sum(total), 0) FROM invoices WHERE business_id = $1)`, w.businessID).Scan(&invoices, &unfixed, &unbilled, &sum); err != nil {
		return decimal.Zero, err
	}
	if invoices != w.plans || unfixed != 0 || unbilled != 0 {
		return decimal.Zero, fmt.Errorf("%d invoices for %d cycles, %d cycles unfixed, %d events unbilled", invoices, w.plans, unfixed, unbilled)
	}
	return sum, nil
}

// timeFixEngine gives the seeded cycles a deadline half a minute ahead,
// starts a billing serve process on the database (a live business: its
// River jobs fix the cycles at the deadline), and returns the time from
// the deadline until no cycle is left to fix, the sum of the invoices'
// totals, and the process's peak memory.
func timeFixEngine(ctx context.Context, w *fixWorld) (time.Duration, decimal.Decimal, string, error) {
	db, err := postgres.Open(ctx, w.url, 2)
	if err != nil {
		return 0, decimal.Zero, "", err
	}
	defer db.Close()
	if err := buildEngine(ctx); err != nil {
		return 0, decimal.Zero, "", err
	}
	deadline := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	if _, err := db.Pool.Exec(ctx, `UPDATE recurring_cycles SET fix_at = $1, usage_window_end = $1, next_action_at = $1,
		scheduled_timestamp = $2 WHERE business_id = $3`, deadline, deadline.AddDate(0, 0, 2), w.businessID); err != nil {
		return 0, decimal.Zero, "", fmt.Errorf("set the deadline: %w", err)
	}
	for _, sql := range []string{"VACUUM (ANALYZE) recurring_cycles", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return 0, decimal.Zero, "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	eng, err := startEngine(ctx, w.url)
	if err != nil {
		return 0, decimal.Zero, "", err
	}
	defer eng.stop()
	if time.Now().After(deadline) {
		return 0, decimal.Zero, "", fmt.Errorf("the engine took more than 30 s to start")
	}
	time.Sleep(time.Until(deadline))
	var done time.Time
	for {
		var left int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM recurring_cycles WHERE business_id = $1 AND next_action = 'FIX_AMOUNT'`,
			w.businessID).Scan(&left); err != nil {
			return 0, decimal.Zero, "", err
		}
		if left == 0 {
			done = time.Now()
			break
		}
		if time.Since(deadline) > 10*time.Minute {
			return 0, decimal.Zero, "", fmt.Errorf("%d cycles still unfixed 10 minutes after the deadline", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss := eng.peakRSS()
	var first time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT min(created) FROM invoices WHERE business_id = $1`, w.businessID).Scan(&first); err != nil {
		return 0, decimal.Zero, "", err
	}
	fmt.Printf("  engine's first batch started %.1f s after the deadline\n", first.Sub(deadline).Seconds())
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return 0, decimal.Zero, "", err
	}
	defer conn.Release()
	sum, err := checkFixed(ctx, conn, w)
	return done.Sub(deadline), sum, rss, err
}
