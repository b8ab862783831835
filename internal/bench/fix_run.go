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
// emits (the invoice's with its lines and audit entry, the cycle's as
// updated), the cycles' amounts and next action, and the number counter.
// Each statement names its parameters: the business, the deadline, now
// and the year.
//
// It is tuned as one would tune a one-off batch, so that the engine is
// measured against a strong baseline: enough work_mem for its sorts and
// aggregates; the usage billed through the unbilled-events index, cycle by
// cycle (a nested loop: with hash joins PostgreSQL scans the events in
// table order and scatters its index writes over every customer, which
// took twice as long on 128 MB of shared buffers); ids in the order made,
// as the engine's are (random UUIDs scatter the primary-key writes);
// written rows taken from RETURNING instead of read back; and the invoices,
// lines, audit entries and invoice events in one statement, the cycles and
// their events in another.
var fixSQL = []struct {
	sql    string
	params []string
}{
	{`SET LOCAL work_mem = '256MB'`, nil},
	{`CREATE TEMP SEQUENCE fix_ids`, nil},
	{`SET LOCAL enable_hashjoin = off`, nil},
	{`SET LOCAL enable_mergejoin = off`, nil},
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
	{`SET LOCAL enable_hashjoin = on`, nil},
	{`SET LOCAL enable_mergejoin = on`, nil},

	{`CREATE TEMP TABLE fix_rated ON COMMIT DROP AS
	SELECT c.id AS cycle_id, 'inv-' || to_char(nextval('fix_ids'), 'FM00000000000000') AS invoice_id, c.plan_id, c.customer_id,
		c.usage_window_start, c.usage_window_end, c.scheduled_timestamp, p.amount AS base, p.usage_charges->0->>'meter' AS meter,
		p.usage_charges->0 AS charge, coalesce(u.q, 0) AS q, coalesce(u.n, 0) AS n, u.first, u.last, r.tiers,
		coalesce(r.amount, 0) AS usage_amount, row_number() OVER (ORDER BY c.id) AS k
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

	{`WITH i AS (
		INSERT INTO invoices (id, business_id, number, number_year, cycle_id, plan_id, customer_id, currency, period_start, period_end, status,
			review_status, review_reasons, subtotal, total, due_at, finalized_at, created, updated)
		SELECT invoice_id, $1, 'INV-' || $3::int || '-' || lpad(k::text, 6, '0'), $3::int, cycle_id, plan_id, customer_id, 'IDR',
			usage_window_start, usage_window_end, 'OPEN', 'NOT_REQUIRED', '{}', base + usage_amount, base + usage_amount, scheduled_timestamp,
			$2, $2, $2
		FROM fix_rated
		RETURNING *),
	l AS (
		INSERT INTO invoice_lines (id, business_id, invoice_id, position, kind, meter, description, quantity, unit_amount, tiers, amount, usage,
			charge, created)
		SELECT 'invl-' || to_char(nextval('fix_ids'), 'FM00000000000000'), $1, invoice_id, 1, 'BASE', NULL, 'Base fee', 1, base, NULL, base,
			NULL, NULL, $2::timestamptz
		FROM fix_rated
		UNION ALL
		SELECT 'invl-' || to_char(nextval('fix_ids'), 'FM00000000000000'), $1, invoice_id, 2, 'USAGE', meter, 'Electricity', q, NULL, tiers,
			usage_amount, jsonb_build_object('event_count', n, 'first_event_at', first, 'last_event_at', last, 'window_start', usage_window_start,
				'window_end', usage_window_end, 'correction_count', 0), charge, $2::timestamptz
		FROM fix_rated
		RETURNING *),
	a AS (
		INSERT INTO invoice_audit (id, business_id, invoice_id, action, actor, note, created)
		SELECT 'inva-' || to_char(nextval('fix_ids'), 'FM00000000000000'), $1, invoice_id, 'finalized', 'engine',
			'amount fixed at IDR ' || (base + usage_amount), $2
		FROM fix_rated
		RETURNING *),
	ll AS (SELECT invoice_id, jsonb_agg(to_jsonb(l) ORDER BY position) AS lines FROM l GROUP BY invoice_id),
	aa AS (SELECT invoice_id, jsonb_agg(to_jsonb(a)) AS audit FROM a GROUP BY invoice_id)
	INSERT INTO events (id, business_id, type, api_version, created, data)
	SELECT 'evt-' || to_char(nextval('fix_ids'), 'FM00000000000000'), $1, 'invoice.finalized', '2026-11-01', $2::timestamptz,
		to_jsonb(i) || jsonb_build_object('lines', ll.lines, 'audit', aa.audit)
	FROM i JOIN ll ON ll.invoice_id = i.id JOIN aa ON aa.invoice_id = i.id`, []string{"business", "now", "year"}},

	{`WITH c AS (
		UPDATE recurring_cycles c SET amount = r.base + r.usage_amount, amount_fixed_at = $2, invoice_id = r.invoice_id,
			next_action = 'CHARGE', next_action_at = c.scheduled_timestamp, updated = $2
		FROM fix_rated r WHERE c.id = r.cycle_id
		RETURNING c.*)
	INSERT INTO events (id, business_id, type, api_version, created, data)
	SELECT 'evt-' || to_char(nextval('fix_ids'), 'FM00000000000000'), $1, 'recurring.cycle.amount_fixed', '2026-11-01', $2::timestamptz,
		to_jsonb(c) - 'business_id'
	FROM c`, []string{"business", "now"}},
}

// timeFixSQL runs the baseline on the database at url and returns its
// time and the sum of the invoices' totals.
func timeFixSQL(ctx context.Context, url string, w *fixWorld) (time.Duration, fixResult, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fixResult{}, err
	}
	defer conn.Close(ctx)
	// As before the engine's run: nothing left to write from the copy.
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, fixResult{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fixResult{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	values := map[string]any{"business": w.businessID, "deadline": placeholder, "now": now, "year": now.Year()}
	for i, st := range fixSQL {
		args := make([]any, len(st.params))
		for j, p := range st.params {
			args[j] = values[p]
		}
		if _, err := tx.Exec(ctx, st.sql, args...); err != nil {
			return 0, fixResult{}, fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fixResult{}, err
	}
	elapsed := time.Since(start)
	res, err := checkFixed(ctx, conn, w)
	return elapsed, res, err
}

// fixResult is what a fix wrote, as checkFixed reads it back.
type fixResult struct {
	// sum is the invoices' totals; digest hashes each cycle's total,
	// usage quantity and event count, in cycle order, so that two runs
	// that billed every cycle alike have the same digest.
	sum    decimal.Decimal
	digest string
}

// checkFixed checks that every cycle was fixed once: one invoice each,
// numbered 1..N without gaps, with its BASE and USAGE lines; every event
// billed by the cycle of its own customer; and the two events of each fix
// emitted. It returns the sum and digest of what was billed, for comparing
// the engine's run with the baseline's.
func checkFixed(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, w *fixWorld) (fixResult, error) {
	var invoices, numbers, maxNumber, lines, unfixed, unbilled, misbilled, fixedEvents, finalizedEvents int
	var r fixResult
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM invoices WHERE business_id = $1),
		(SELECT count(DISTINCT number) FROM invoices WHERE business_id = $1 AND status = 'OPEN'),
		(SELECT coalesce(max(right(number, 6)::int), 0) FROM invoices WHERE business_id = $1),
		(SELECT count(*) FROM invoice_lines WHERE business_id = $1),
		(SELECT count(*) FROM recurring_cycles WHERE business_id = $1 AND (amount_fixed_at IS NULL OR next_action IS DISTINCT FROM 'CHARGE')),
		(SELECT count(*) FROM usage_events WHERE business_id = $1 AND billed_cycle_id IS NULL),
		(SELECT count(*) FROM usage_events e JOIN recurring_cycles c ON c.id = e.billed_cycle_id
			WHERE e.business_id = $1 AND c.customer_id <> e.customer_id),
		(SELECT count(*) FROM events WHERE business_id = $1 AND type = 'recurring.cycle.amount_fixed'),
		(SELECT count(*) FROM events WHERE business_id = $1 AND type = 'invoice.finalized'),
		(SELECT coalesce(sum(total), 0) FROM invoices WHERE business_id = $1),
		(SELECT md5(string_agg(i.cycle_id || ':' || trim_scale(i.total) || ':' || trim_scale(l.quantity) || ':' || (l.usage->>'event_count'),
			',' ORDER BY i.cycle_id))
			FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id AND l.kind = 'USAGE' WHERE i.business_id = $1)`,
		w.businessID).Scan(&invoices, &numbers, &maxNumber, &lines, &unfixed, &unbilled, &misbilled, &fixedEvents, &finalizedEvents,
		&r.sum, &r.digest); err != nil {
		return r, err
	}
	n := w.plans
	if invoices != n || numbers != n || maxNumber != n || lines != 2*n || unfixed != 0 || unbilled != 0 || misbilled != 0 ||
		fixedEvents != n || finalizedEvents != n {
		return r, fmt.Errorf("for %d cycles: %d invoices, %d numbers up to %d, %d lines, %d cycles not fixed, %d events unbilled, "+
			"%d billed by another customer's cycle, %d amount_fixed and %d invoice.finalized events",
			n, invoices, numbers, maxNumber, lines, unfixed, unbilled, misbilled, fixedEvents, finalizedEvents)
	}
	return r, nil
}

// timeFixEngine gives the seeded cycles a deadline half a minute ahead,
// starts a billing serve process on the database (a live business: its
// River jobs fix the cycles at the deadline), and returns the time from
// the deadline until no cycle is left to fix, what was billed, and the
// process's peak memory.
func timeFixEngine(ctx context.Context, w *fixWorld) (time.Duration, fixResult, string, error) {
	db, err := postgres.Open(ctx, w.url, 2)
	if err != nil {
		return 0, fixResult{}, "", err
	}
	defer db.Close()
	if err := buildEngine(ctx); err != nil {
		return 0, fixResult{}, "", err
	}
	deadline := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	if _, err := db.Pool.Exec(ctx, `UPDATE recurring_cycles SET fix_at = $1, usage_window_end = $1, next_action_at = $1,
		scheduled_timestamp = $2 WHERE business_id = $3`, deadline, deadline.AddDate(0, 0, 2), w.businessID); err != nil {
		return 0, fixResult{}, "", fmt.Errorf("set the deadline: %w", err)
	}
	for _, sql := range []string{"VACUUM (ANALYZE) recurring_cycles", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return 0, fixResult{}, "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	eng, err := startEngine(ctx, w.url)
	if err != nil {
		return 0, fixResult{}, "", err
	}
	defer eng.stop()
	if time.Now().After(deadline) {
		return 0, fixResult{}, "", fmt.Errorf("the engine took more than 30 s to start")
	}
	time.Sleep(time.Until(deadline))
	cpu0 := eng.cpuTime()
	// Done when no cycle is due to be fixed at the deadline (anyDue).
	var done time.Time
	for {
		left, err := anyDue(ctx, db, w.businessID, deadline, "FIX_AMOUNT")
		if err != nil {
			return 0, fixResult{}, "", err
		}
		if !left {
			done = time.Now()
			break
		}
		if time.Since(deadline) > 10*time.Minute {
			return 0, fixResult{}, "", fmt.Errorf("cycles still unfixed 10 minutes after the deadline")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss, cpu := eng.peakRSS(), eng.cpuTime()-cpu0
	var first time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT min(created) FROM invoices WHERE business_id = $1`, w.businessID).Scan(&first); err != nil {
		return 0, fixResult{}, "", err
	}
	fmt.Printf("  engine's first batch started %.1f s after the deadline; the engine process used %.1f s of CPU\n",
		first.Sub(deadline).Seconds(), cpu.Seconds())
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return 0, fixResult{}, "", err
	}
	defer conn.Release()
	res, err := checkFixed(ctx, conn, w)
	return done.Sub(deadline), res, rss, err
}
