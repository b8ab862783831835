package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

// original is an event that a correction refers to.
type original struct {
	customerID   string
	meter        string
	quantity     decimal.Decimal
	timestamp    time.Time
	isCorrection bool
	corrected    decimal.Decimal // sum of the corrections stored so far
}

// resolveCorrections checks each correction against the event it corrects
// (sent before, or earlier in this batch): same customer and meter, not
// itself a correction, and the corrected reading not below zero. A
// correction takes its original's timestamp, so it is billed in the
// original's window, as late usage when that window is already billed. The
// originals' id rows are locked for the transaction, so that concurrent
// corrections of one reading apply one after the other.
func resolveCorrections(ctx context.Context, tx pgx.Tx, businessID string, events []*event, res *Result) ([]*event, error) {
	var refs, ownIDs []string
	inBatch := map[string]*event{}
	for _, ev := range events {
		if ev.correctionOf == "" {
			inBatch[ev.eventID] = ev
			continue
		}
		refs = append(refs, ev.correctionOf)
		ownIDs = append(ownIDs, ev.eventID)
	}
	if len(refs) == 0 {
		return events, nil
	}
	stored, err := loadOriginals(ctx, tx, businessID, refs)
	if err != nil {
		return nil, err
	}
	alreadySent := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT key FROM usage_event_ids WHERE key = ANY($1)`, eventKeys(businessID, ownIDs))
	if err != nil {
		return nil, fmt.Errorf("find sent corrections: %w", err)
	}
	sent, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return nil, err
	}
	sentKeys := map[[16]byte]bool{}
	for _, k := range sent {
		sentKeys[k] = true
	}
	for _, id := range ownIDs {
		alreadySent[id] = sentKeys[eventKey(businessID, id)]
	}

	kept := events[:0]
	for _, ev := range events {
		if ev.correctionOf == "" {
			kept = append(kept, ev)
			continue
		}
		o := stored[ev.correctionOf]
		if b := inBatch[ev.correctionOf]; o == nil && b != nil && b.index < ev.index {
			o = &original{customerID: b.customerID, meter: b.meterCode, quantity: b.quantity, timestamp: b.timestamp}
			stored[ev.correctionOf] = o
		}
		if err := ev.applyCorrection(o, alreadySent[ev.eventID]); err != nil {
			res.Rejected = append(res.Rejected, reject(ev.index, ev.eventID, err))
			continue
		}
		kept = append(kept, ev)
	}
	return kept, nil
}

func (ev *event) applyCorrection(o *original, alreadySent bool) *billing.Error {
	switch {
	case o == nil:
		return notFound("correction_of", "is not the event_id of an event of this business sent before")
	case o.isCorrection:
		return billing.Invalid("correction_of", "refers to a correction; correct the original event instead")
	case o.customerID != ev.customerID || o.meter != ev.meterCode:
		return billing.Invalid("correction_of", "refers to an event of another customer or meter")
	case ev.hasTimestamp && !ev.timestamp.Equal(o.timestamp):
		return billing.Invalid("timestamp", fmt.Sprintf("a correction takes the timestamp of the event it corrects (%s); leave it out", billing.FormatTime(o.timestamp)))
	}
	ev.timestamp, ev.hasTimestamp = o.timestamp, true
	ev.hash = ev.contentHash()
	if alreadySent { // a repeat: the id claim decides whether it is a duplicate
		return nil
	}
	after := o.quantity.Add(o.corrected).Add(ev.quantity)
	if after.IsNegative() {
		return billing.Invalid("quantity", fmt.Sprintf("would make the corrected reading negative (%s)", after))
	}
	o.corrected = o.corrected.Add(ev.quantity)
	return nil
}

// loadOriginals reads and locks the events with the given event_ids, with
// the sum of the corrections already stored for each.
func loadOriginals(ctx context.Context, tx pgx.Tx, businessID string, eventIDs []string) (map[string]*original, error) {
	out := map[string]*original{}
	rows, err := tx.Query(ctx, `SELECT e.event_id, e.customer_id, e.meter, e.quantity::text, e."timestamp", e.correction_of IS NOT NULL
		FROM usage_event_ids k
		JOIN usage_events e ON e.business_id = $1 AND e.id = 'uev-' || k.id::text AND e."timestamp" = k."timestamp"
		WHERE k.key = ANY($2)
		ORDER BY k.key
		FOR UPDATE OF k`, businessID, eventKeys(businessID, eventIDs))
	if err != nil {
		return nil, fmt.Errorf("load corrected events: %w", err)
	}
	var customers []string
	var stamps []time.Time
	for rows.Next() {
		var id, q string
		o := &original{}
		if err := rows.Scan(&id, &o.customerID, &o.meter, &q, &o.timestamp, &o.isCorrection); err != nil {
			return nil, err
		}
		o.quantity = decimal.RequireFromString(q)
		o.timestamp = o.timestamp.UTC()
		out[id] = o
		customers = append(customers, o.customerID)
		stamps = append(stamps, o.timestamp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load corrected events: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	// Corrections share their original's customer and timestamp.
	rows, err = tx.Query(ctx, `SELECT correction_of, sum(quantity)::text FROM usage_events
		WHERE business_id = $1 AND customer_id = ANY($2) AND "timestamp" = ANY($3) AND correction_of = ANY($4)
		GROUP BY correction_of`, businessID, customers, stamps, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("sum stored corrections: %w", err)
	}
	for rows.Next() {
		var id, sum string
		if err := rows.Scan(&id, &sum); err != nil {
			return nil, err
		}
		if o := out[id]; o != nil {
			o.corrected = decimal.RequireFromString(sum)
		}
	}
	return out, rows.Err()
}

// propertyValue returns the value of property name in a canonical
// properties object, as text, when it is a string or a number.
func propertyValue(props []byte, name string) (string, bool) {
	if props == nil {
		return "", false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(props, &m); err != nil {
		return "", false
	}
	raw, ok := m[name]
	if !ok || len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", false
		}
		return s, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true
	}
	return "", false
}
