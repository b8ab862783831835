package metering

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"
	"github.com/uptrace/bun"
)

// reading is one original event with its corrections folded in.
type reading struct {
	key         string
	quantity    decimal.Decimal
	timestamp   time.Time
	uniqueValue *string
}

// Aggregate applies aggregation agg to events, folding each correction into
// the event it corrects (a correction whose original is not among events
// stands as a reading of its own). It is the same rule PreviewUnbilled and
// BillUnbilled apply in SQL, for the engine to re-rate a window that late
// events change: the window's billed events plus the late ones. No events
// aggregate to zero.
func Aggregate(agg Aggregation, events []EventRecord) decimal.Decimal {
	byKey := map[string]*reading{}
	for _, e := range events {
		k := e.EventID
		if e.CorrectionOf != "" {
			k = e.CorrectionOf
		}
		r := byKey[k]
		if r == nil {
			r = &reading{key: k, timestamp: e.Timestamp}
			byKey[k] = r
		}
		r.quantity = r.quantity.Add(e.Quantity)
		if e.Timestamp.Before(r.timestamp) {
			r.timestamp = e.Timestamp
		}
		if e.UniqueValue != nil && (r.uniqueValue == nil || *e.UniqueValue > *r.uniqueValue) {
			r.uniqueValue = e.UniqueValue
		}
	}
	if len(byKey) == 0 {
		return decimal.Zero
	}
	readings := make([]*reading, 0, len(byKey))
	for _, r := range byKey {
		readings = append(readings, r)
	}
	switch agg {
	case AggregationSum:
		sum := decimal.Zero
		for _, r := range readings {
			sum = sum.Add(r.quantity)
		}
		return sum
	case AggregationCount:
		return decimal.NewFromInt(int64(len(readings)))
	case AggregationMax:
		peak := readings[0].quantity
		for _, r := range readings[1:] {
			if r.quantity.GreaterThan(peak) {
				peak = r.quantity
			}
		}
		return peak
	case AggregationLatest:
		sort.Slice(readings, func(i, j int) bool {
			if !readings[i].timestamp.Equal(readings[j].timestamp) {
				return readings[i].timestamp.After(readings[j].timestamp)
			}
			return readings[i].key > readings[j].key
		})
		return readings[0].quantity
	case AggregationUniqueCount:
		seen := map[string]bool{}
		for _, r := range readings {
			if r.uniqueValue != nil {
				seen[*r.uniqueValue] = true
			}
		}
		return decimal.NewFromInt(int64(len(seen)))
	}
	return decimal.Zero
}

// BilledEvents returns the events of meter that cycle billed, oldest first:
// the evidence behind an invoice line, and what a window held when late
// events make the engine re-rate it.
func BilledEvents(ctx context.Context, db bun.IDB, businessID, cycleID, meter string) ([]EventRecord, error) {
	var rows []struct {
		ID           string          `bun:"id"`
		EventID      string          `bun:"event_id"`
		Timestamp    time.Time       `bun:"timestamp"`
		Quantity     decimal.Decimal `bun:"quantity,type:numeric"`
		CorrectionOf *string         `bun:"correction_of"`
		UniqueValue  *string         `bun:"unique_value"`
	}
	err := db.NewSelect().Table("usage_events").
		Column("id", "event_id", "timestamp", "quantity", "correction_of", "unique_value").
		Where("billed_cycle_id = ?", cycleID).Where("meter = ?", meter).Where("business_id = ?", businessID).
		OrderExpr(`"timestamp", event_id`).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("events billed by %s: %w", cycleID, err)
	}
	out := make([]EventRecord, len(rows))
	for i, r := range rows {
		out[i] = EventRecord{ID: r.ID, EventID: r.EventID, Timestamp: r.Timestamp.UTC(), Quantity: r.Quantity, UniqueValue: r.UniqueValue}
		if r.CorrectionOf != nil {
			out[i].CorrectionOf = *r.CorrectionOf
		}
	}
	return out, nil
}
