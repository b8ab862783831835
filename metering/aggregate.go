package metering

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Target asks for the unbilled usage of one customer on one meter:
// events with a timestamp in [Since, Cutoff) that no cycle has billed. Those
// before WindowStart are late (their own window was billed already) and are
// returned one by one; the rest are aggregated. Events before Since (a
// plan's activation) are not the target's at all: they are left alone.
type Target struct {
	BusinessID  string
	CustomerID  string
	Meter       *Meter
	Since       time.Time
	WindowStart time.Time
	Cutoff      time.Time
	// CycleID is the cycle that bills the usage (BillUnbilled only).
	CycleID string
}

// Usage is the unbilled usage of one target.
type Usage struct {
	CustomerID string
	Meter      string
	// Quantity is the meter's aggregation over the on-time readings
	// (timestamps in [WindowStart, Cutoff)), corrections folded in.
	Quantity decimal.Decimal
	// EventCount counts the on-time events, corrections included;
	// Corrections counts the corrections among them.
	EventCount  int64
	Corrections int64
	// FirstEventAt and LastEventAt are the earliest and latest on-time
	// timestamps; nil when there are none.
	FirstEventAt, LastEventAt *time.Time
	// Late are the unbilled events timestamped before WindowStart.
	Late []EventRecord
}

// EventRecord is one stored event as aggregation sees it.
type EventRecord struct {
	ID           string
	EventID      string
	Timestamp    time.Time
	Quantity     decimal.Decimal
	CorrectionOf string
	UniqueValue  *string
}

// PreviewUnbilled returns the unbilled usage of each target without
// changing anything: the live estimate of GET /customers/{id}/usage, and the
// engine's view before it bills. Targets with no events come back with a
// zero quantity.
func PreviewUnbilled(ctx context.Context, db bun.IDB, targets []Target) ([]Usage, error) {
	return aggregate(ctx, db, targets, false)
}

// BillUnbilled marks the unbilled events of each target as billed by its
// CycleID and returns the usage of exactly the events it marked, in one
// statement: an event is billed once, by one cycle, even when two engines
// bill the same customer at once (the second finds the rows taken). Run it
// in the transaction that writes the invoice. Many targets are handled in
// one set-based statement.
//
// Two transactions billing the same customer and meter at the same moment
// lock the same rows, possibly in different orders; PostgreSQL then aborts
// one of them with a deadlock (SQLSTATE 40P01), and its caller retries the
// whole transaction. Either way no event is billed twice; IsRetryable
// tells such errors apart.
func BillUnbilled(ctx context.Context, db bun.IDB, targets []Target) ([]Usage, error) {
	for _, t := range targets {
		if t.CycleID == "" {
			return nil, fmt.Errorf("bill unbilled usage of %s: no cycle id", t.CustomerID)
		}
	}
	return aggregate(ctx, db, targets, true)
}

const aggregateSQL = `
WITH targets AS (
	SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[], ?::timestamptz[], ?::text[])
		AS t(business_id, customer_id, meter, since, window_start, cutoff, cycle_id)
),
src AS (%s),
readings AS (
	SELECT customer_id, meter, coalesce(correction_of, event_id) AS reading,
		sum(quantity) AS q, min("timestamp") AS ts, max(unique_value) AS uv, count(*) AS n, count(correction_of) AS nc
	FROM src WHERE NOT late
	GROUP BY customer_id, meter, coalesce(correction_of, event_id)
),
agg AS (
	SELECT customer_id, meter, sum(q) AS total, count(*) AS readings, max(q) AS peak,
		(array_agg(q ORDER BY ts DESC, reading DESC))[1] AS latest,
		count(DISTINCT uv) AS uniques, sum(n) AS events, sum(nc) AS corrections, min(ts) AS first, max(ts) AS last
	FROM readings GROUP BY customer_id, meter
)
SELECT false AS is_late, customer_id, meter, total::text, readings, peak::text, latest::text, uniques, events, corrections, first, last,
	NULL AS id, NULL AS event_id, NULL AS quantity, NULL::timestamptz AS ts, NULL AS correction_of, NULL AS unique_value
FROM agg
UNION ALL
SELECT true, customer_id, meter, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	id, event_id, quantity::text, "timestamp", correction_of, unique_value
FROM src WHERE late`

const previewSource = `
	SELECT e.customer_id, e.meter, e.id, e.event_id, e.quantity, e."timestamp", e.unique_value, e.correction_of,
		e."timestamp" < t.window_start AS late
	FROM targets t JOIN usage_events e
		ON e.business_id = t.business_id AND e.customer_id = t.customer_id AND e.meter = t.meter
		AND e.billed_cycle_id IS NULL AND e."timestamp" >= t.since AND e."timestamp" < t.cutoff`

const billSource = `
	UPDATE usage_events e SET billed_cycle_id = t.cycle_id
	FROM targets t
	WHERE e.business_id = t.business_id AND e.customer_id = t.customer_id AND e.meter = t.meter
		AND e.billed_cycle_id IS NULL AND e."timestamp" >= t.since AND e."timestamp" < t.cutoff
	RETURNING e.customer_id, e.meter, e.id, e.event_id, e.quantity, e."timestamp", e.unique_value, e.correction_of,
		e."timestamp" < t.window_start AS late`

func aggregate(ctx context.Context, db bun.IDB, targets []Target, bill bool) ([]Usage, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	n := len(targets)
	biz, cust, meters, cycles := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sinces, starts, cutoffs := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	type key struct{ customer, meter string }
	out := make([]Usage, n)
	index := make(map[key]int, n)
	for i, t := range targets {
		k := key{t.CustomerID, t.Meter.Code}
		if _, dup := index[k]; dup {
			return nil, fmt.Errorf("aggregate usage: customer %s and meter %s asked twice", t.CustomerID, t.Meter.Code)
		}
		index[k] = i
		biz[i], cust[i], meters[i], cycles[i] = t.BusinessID, t.CustomerID, t.Meter.Code, t.CycleID
		sinces[i], starts[i], cutoffs[i] = t.Since, t.WindowStart, t.Cutoff
		if t.Since.IsZero() {
			sinces[i] = MinTimestamp
		}
		out[i] = Usage{CustomerID: t.CustomerID, Meter: t.Meter.Code}
	}
	source := previewSource
	if bill {
		source = billSource
	}
	rs, err := db.QueryContext(ctx, fmt.Sprintf(aggregateSQL, source), pgdialect.Array(biz), pgdialect.Array(cust),
		pgdialect.Array(meters), pgdialect.Array(sinces), pgdialect.Array(starts), pgdialect.Array(cutoffs), pgdialect.Array(cycles))
	if err != nil {
		return nil, fmt.Errorf("aggregate usage: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			isLate                        bool
			customer, meter               string
			total, peak, latest, qty      sql.NullString
			readings, uniques, events     sql.NullInt64
			corrections                   sql.NullInt64
			first, last, ts               sql.NullTime
			id, eventID, correctionOf, uv sql.NullString
		)
		if err := rs.Scan(&isLate, &customer, &meter, &total, &readings, &peak, &latest, &uniques, &events, &corrections, &first, &last,
			&id, &eventID, &qty, &ts, &correctionOf, &uv); err != nil {
			return nil, err
		}
		i, ok := index[key{customer, meter}]
		if !ok {
			return nil, fmt.Errorf("aggregate usage: unexpected row for %s %s", customer, meter)
		}
		u := &out[i]
		if isLate {
			rec := EventRecord{ID: id.String, EventID: eventID.String, Timestamp: ts.Time.UTC(), Quantity: decimal.RequireFromString(qty.String), CorrectionOf: correctionOf.String}
			if uv.Valid {
				v := uv.String
				rec.UniqueValue = &v
			}
			u.Late = append(u.Late, rec)
			continue
		}
		switch targets[i].Meter.Aggregation {
		case AggregationSum:
			u.Quantity = decimal.RequireFromString(total.String)
		case AggregationMax:
			u.Quantity = decimal.RequireFromString(peak.String)
		case AggregationLatest:
			u.Quantity = decimal.RequireFromString(latest.String)
		case AggregationCount:
			u.Quantity = decimal.NewFromInt(readings.Int64)
		case AggregationUniqueCount:
			u.Quantity = decimal.NewFromInt(uniques.Int64)
		}
		u.EventCount, u.Corrections = events.Int64, corrections.Int64
		f, l := first.Time.UTC(), last.Time.UTC()
		u.FirstEventAt, u.LastEventAt = &f, &l
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("aggregate usage: %w", err)
	}
	for i := range out {
		sort.Slice(out[i].Late, func(a, b int) bool {
			la, lb := out[i].Late[a], out[i].Late[b]
			if !la.Timestamp.Equal(lb.Timestamp) {
				return la.Timestamp.Before(lb.Timestamp)
			}
			return la.EventID < lb.EventID
		})
	}
	return out, nil
}

// IsRetryable reports whether err is a deadlock or serialization failure,
// after which the caller's transaction can be run again from the start.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
