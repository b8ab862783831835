package metering

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

// Result is the answer to a batch: how many events were stored, how many
// were duplicates of events stored before, and why the others were not.
type Result struct {
	Accepted   int         `json:"accepted"`
	Duplicates int         `json:"duplicates"`
	Rejected   []Rejection `json:"rejected"`
}

// Ingester stores usage events. It is safe for concurrent use.
type Ingester struct {
	pool       *pgxpool.Pool
	partitions *Partitions
	known      *known
}

// NewIngester returns an Ingester writing through pool, creating partitions
// with partitions.
func NewIngester(pool *pgxpool.Pool, partitions *Partitions) *Ingester {
	return &Ingester{pool: pool, partitions: partitions, known: newKnown()}
}

// Ingest validates the batch's events, stores the good ones that are new,
// and returns the outcome of each. It returns only when every accepted event
// is committed. now is the business clock. An event_id the business sent
// before is a duplicate when its content is the same, and rejected with
// DUPLICATE_ERROR when it differs; the same holds inside one batch. Two
// requests carrying the same events at once store each event once.
func (in *Ingester) Ingest(ctx context.Context, businessID string, now time.Time, b Batch) (*Result, error) {
	res := &Result{Rejected: []Rejection{}}
	events := make([]*event, 0, b.Len())
	for i := 0; i < b.Len(); i++ {
		ev, err := b.parse(i, now)
		if err != nil {
			id := ""
			if ev != nil {
				id = ev.eventID
			}
			res.Rejected = append(res.Rejected, reject(i, id, err))
			continue
		}
		events = append(events, ev)
	}
	events, err := in.resolve(ctx, businessID, events, res)
	if err != nil {
		return nil, err
	}
	events = dedupeBatch(events, res)
	if len(events) > 0 {
		if err := in.store(ctx, businessID, now, events, res); err != nil {
			return nil, err
		}
	}
	sort.Slice(res.Rejected, func(i, j int) bool { return res.Rejected[i].Index < res.Rejected[j].Index })
	return res, nil
}

// resolve finds each event's meter and customer, asking the database only
// for what the ingester does not know yet (one query each), and applies the
// meter's rules. It returns the events still standing.
func (in *Ingester) resolve(ctx context.Context, businessID string, events []*event, res *Result) ([]*event, error) {
	meters := map[string]*Meter{}
	byID, byRef := map[string]bool{}, map[string]string{}
	var codes, ids, refs []string
	for _, ev := range events {
		if _, seen := meters[ev.meterCode]; !seen {
			m := in.known.meter(businessID, ev.meterCode)
			meters[ev.meterCode] = m
			if m == nil {
				codes = append(codes, ev.meterCode)
			}
		}
		switch {
		case ev.customerRef != "":
			if _, seen := byRef[ev.customerRef]; !seen {
				byRef[ev.customerRef] = ""
				refs = append(refs, ev.customerRef) // references can change: always asked
			}
		case !byID[ev.customerID]:
			if in.known.customer(businessID, ev.customerID) {
				byID[ev.customerID] = true
			} else {
				ids = append(ids, ev.customerID)
			}
		}
	}
	if len(codes) > 0 {
		rows, err := in.pool.Query(ctx, `SELECT id, code, aggregation, value_property FROM meters WHERE business_id = $1 AND code = ANY($2)`, businessID, codes)
		if err != nil {
			return nil, fmt.Errorf("resolve meters: %w", err)
		}
		for rows.Next() {
			m := &Meter{BusinessID: businessID}
			if err := rows.Scan(&m.ID, &m.Code, &m.Aggregation, &m.ValueProperty); err != nil {
				return nil, err
			}
			meters[m.Code] = m
			in.known.addMeter(m)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("resolve meters: %w", err)
		}
	}
	if len(ids) > 0 || len(refs) > 0 {
		rows, err := in.pool.Query(ctx, `SELECT id, reference_id FROM customers WHERE business_id = $1 AND (id = ANY($2) OR reference_id = ANY($3))`, businessID, ids, refs)
		if err != nil {
			return nil, fmt.Errorf("resolve customers: %w", err)
		}
		for rows.Next() {
			var id, ref string
			if err := rows.Scan(&id, &ref); err != nil {
				return nil, err
			}
			byID[id] = true
			if _, asked := byRef[ref]; asked {
				byRef[ref] = id
			}
			in.known.addCustomer(businessID, id)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("resolve customers: %w", err)
		}
	}

	kept := events[:0]
	for _, ev := range events {
		if err := ev.resolve(meters, byID, byRef); err != nil {
			res.Rejected = append(res.Rejected, reject(ev.index, ev.eventID, err))
			continue
		}
		kept = append(kept, ev)
	}
	return kept, nil
}

// resolve applies what the database knows to one event.
func (ev *event) resolve(meters map[string]*Meter, customerIDs map[string]bool, customerRefs map[string]string) *billing.Error {
	ev.meter = meters[ev.meterCode]
	if ev.meter == nil {
		return notFound("meter", "is not a meter of this business")
	}
	if ev.customerRef != "" {
		id := customerRefs[ev.customerRef]
		if id == "" {
			return notFound("customer_reference_id", "is not the reference_id of a customer of this business")
		}
		ev.customerID = id
	} else if !customerIDs[ev.customerID] {
		return notFound("customer_id", "is not a customer of this business")
	}
	agg := ev.meter.Aggregation
	if !ev.hasQuantity {
		if agg.usesQuantity() {
			return billing.Invalid("quantity", fmt.Sprintf("is required for a %s meter", agg))
		}
		ev.quantity, ev.hasQuantity = decimal.NewFromInt(1), true // COUNT and UNIQUE_COUNT count events
	}
	if ev.correctionOf != "" && !agg.correctable() {
		return billing.Invalid("correction_of", fmt.Sprintf("corrections adjust a quantity; a %s meter does not use quantities", agg))
	}
	if agg == AggregationUniqueCount {
		v, ok := propertyValue(ev.properties, *ev.meter.ValueProperty)
		if !ok {
			return billing.Invalid("properties."+*ev.meter.ValueProperty, "is required by this UNIQUE_COUNT meter: a string or number whose distinct values are counted")
		}
		ev.uniqueValue = &v
	}
	return nil
}

func notFound(field, msg string) *billing.Error {
	return &billing.Error{Code: billing.ENOTFOUND, Reason: billing.ReasonNotFound, Message: field + " " + msg,
		Fields: []billing.FieldError{{Field: field, Message: msg}}}
}

// dedupeBatch handles an event_id repeated inside the batch: the first
// stands; a later copy with the same content counts as a duplicate, one with
// different content is rejected. Corrections get their hash later, once
// their original is known, so they are compared then.
func dedupeBatch(events []*event, res *Result) []*event {
	first := map[string]*event{}
	kept := events[:0]
	for _, ev := range events {
		if ev.correctionOf == "" {
			ev.hash = ev.contentHash()
		}
		prev, seen := first[ev.eventID]
		switch {
		case !seen:
			first[ev.eventID] = ev
			kept = append(kept, ev)
		case ev.correctionOf == "" && prev.correctionOf == "" && (prev.hash == ev.hash || sameContent(prev, ev)):
			res.Duplicates++
		default:
			res.Rejected = append(res.Rejected, reject(ev.index, ev.eventID, duplicateError(ev.eventID)))
		}
	}
	return kept
}

func duplicateError(eventID string) *billing.Error {
	return &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonDuplicate,
		Message: "event_id was already used for an event with different content",
		Fields:  []billing.FieldError{{Field: "event_id", Message: fmt.Sprintf("%q was already used for an event with different content", eventID)}}}
}

// store writes the batch in one transaction: corrections are checked
// against their originals, the event_ids are claimed (sorted, so that
// concurrent batches lock in the same order and never deadlock), and the new
// events are copied in.
func (in *Ingester) store(ctx context.Context, businessID string, now time.Time, events []*event, res *Result) error {
	err := in.storeOnce(ctx, businessID, now, events, res)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.Message != "" { // no partition for a row: re-learn and retry once
		in.partitions.Forget()
		err = in.storeOnce(ctx, businessID, now, events, res)
	}
	return err
}

func (in *Ingester) storeOnce(ctx context.Context, businessID string, now time.Time, events []*event, res *Result) error {
	events = append([]*event(nil), events...) // the steps below filter and sort in place
	saved := *res
	saved.Rejected = append([]Rejection(nil), res.Rejected...)
	// Partitions first, outside the transaction: creating one locks the
	// parent table, which the transaction below reads. A correction takes
	// the timestamp of an event already stored, so it needs none.
	var times []time.Time
	for _, ev := range events {
		if ev.correctionOf == "" {
			times = append(times, ev.timestamp)
		}
	}
	if err := in.partitions.Ensure(ctx, times...); err != nil {
		return err
	}
	tx, err := in.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	if events, err = resolveCorrections(ctx, tx, businessID, events, res); err != nil {
		*res = saved
		return err
	}
	fresh, err := claimEventIDs(ctx, tx, businessID, events, res)
	if err != nil {
		*res = saved
		return err
	}
	if len(fresh) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_events"}, copyColumns, &eventRows{events: fresh, businessID: businessID, receivedAt: now.UTC().Truncate(time.Microsecond)}); err != nil {
			*res = saved
			return fmt.Errorf("copy usage events: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		*res = saved
		return fmt.Errorf("commit usage events: %w", err)
	}
	res.Accepted += len(fresh)
	return nil
}

// claimEventIDs inserts the events' ids into usage_event_ids and returns
// the events that are new. The others were sent before: duplicates when the
// content is the same, else rejected. The ids go in sorted, so that
// concurrent batches lock them in the same order and never deadlock. The
// usual case, where every id is new, is one COPY; when that meets an id sent
// before (a unique violation), it is undone to a savepoint and the ids are
// inserted again with ON CONFLICT DO NOTHING to sort new from old.
func claimEventIDs(ctx context.Context, tx pgx.Tx, businessID string, events []*event, res *Result) ([]*event, error) {
	n := len(events)
	for _, ev := range events {
		ev.id = billing.NewID(billing.PrefixUsageEvent)
		ev.key = eventKey(businessID, ev.eventID)
	}
	sort.Slice(events, func(i, j int) bool { return bytes.Compare(events[i].key[:], events[j].key[:]) < 0 })
	if _, err := tx.Exec(ctx, "SAVEPOINT claim_event_ids"); err != nil {
		return nil, err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_event_ids"}, []string{"key", "content_hash", "id", "timestamp"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			ev := events[i]
			return []any{ev.key, ev.hash, idUUID(ev.id), ev.timestamp}, nil
		}))
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return events, nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation: some ids were sent before
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT claim_event_ids"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("claim event ids: %w", err)
	}

	keys, hashes, ids, stamps := make([][16]byte, n), make([]int64, n), make([][16]byte, n), make([]time.Time, n)
	for i, ev := range events {
		keys[i], hashes[i], ids[i], stamps[i] = ev.key, ev.hash, idUUID(ev.id), ev.timestamp
	}
	rows, err := tx.Query(ctx, `INSERT INTO usage_event_ids (key, content_hash, id, "timestamp")
		SELECT e.key, e.content_hash, e.id, e.ts
		FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::timestamptz[]) AS e(key, content_hash, id, ts)
		ORDER BY e.key
		ON CONFLICT (key) DO NOTHING
		RETURNING key`, keys, hashes, ids, stamps)
	if err != nil {
		return nil, fmt.Errorf("claim event ids: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return nil, fmt.Errorf("claim event ids: %w", err)
	}
	if len(inserted) == n {
		return events, nil
	}
	isNewKey := make(map[[16]byte]bool, len(inserted))
	for _, k := range inserted {
		isNewKey[k] = true
	}
	isNew := make(map[string]bool, len(inserted))
	for _, ev := range events {
		if isNewKey[ev.key] {
			isNew[ev.eventID] = true
		}
	}
	var old []string
	for _, ev := range events {
		if !isNew[ev.eventID] {
			old = append(old, ev.eventID)
		}
	}
	stored, err := storedEvents(ctx, tx, businessID, old)
	if err != nil {
		return nil, err
	}
	fresh := make([]*event, 0, len(inserted))
	for _, ev := range events {
		prev := stored[ev.eventID]
		switch {
		case isNew[ev.eventID]:
			fresh = append(fresh, ev)
		case prev != nil && (prev.hash == ev.hash || sameContent(prev, ev)):
			res.Duplicates++
		default:
			res.Rejected = append(res.Rejected, reject(ev.index, ev.eventID, duplicateError(ev.eventID)))
		}
	}
	return fresh, nil
}

// storedEvents reads the stored events with the given event_ids, as far as
// comparing content goes.
func storedEvents(ctx context.Context, tx pgx.Tx, businessID string, eventIDs []string) (map[string]*event, error) {
	rows, err := tx.Query(ctx, `SELECT e.event_id, k.content_hash, e.customer_id, e.meter, e.quantity::text, e."timestamp",
			e.properties::text, coalesce(e.correction_of, '')
		FROM usage_event_ids k
		JOIN usage_events e ON e.business_id = $1 AND e.id = 'uev-' || k.id::text AND e."timestamp" = k."timestamp"
		WHERE k.key = ANY($2)`, businessID, eventKeys(businessID, eventIDs))
	if err != nil {
		return nil, fmt.Errorf("read sent events: %w", err)
	}
	defer rows.Close()
	out := map[string]*event{}
	for rows.Next() {
		ev := &event{}
		var qty string
		var props *string
		if err := rows.Scan(&ev.eventID, &ev.hash, &ev.customerID, &ev.meterCode, &qty, &ev.timestamp, &props, &ev.correctionOf); err != nil {
			return nil, err
		}
		ev.quantity = decimal.RequireFromString(qty)
		if props != nil && *props != "{}" {
			ev.properties = []byte(*props)
		}
		out[ev.eventID] = ev
	}
	return out, rows.Err()
}

var copyColumns = []string{"business_id", "id", "event_id", "customer_id", "meter", "quantity", "timestamp", "properties", "unique_value", "correction_of", "received_at"}

// eventRows feeds events to COPY.
type eventRows struct {
	events     []*event
	businessID string
	receivedAt time.Time
	i          int
}

func (r *eventRows) Next() bool { r.i++; return r.i <= len(r.events) }
func (r *eventRows) Err() error { return nil }
func (r *eventRows) Values() ([]any, error) {
	ev := r.events[r.i-1]
	var props, unique, corr any
	if ev.properties != nil {
		props = ev.properties
	}
	if ev.uniqueValue != nil {
		unique = *ev.uniqueValue
	}
	if ev.correctionOf != "" {
		corr = ev.correctionOf
	}
	return []any{r.businessID, ev.id, ev.eventID, ev.customerID, ev.meterCode, numeric(ev.quantity), ev.timestamp, props, unique, corr, r.receivedAt}, nil
}

// numeric converts a decimal for pgx's binary numeric encoding, exactly.
func numeric(d decimal.Decimal) pgtype.Numeric {
	return pgtype.Numeric{Int: new(big.Int).Set(d.Coefficient()), Exp: d.Exponent(), Valid: true}
}

// eventKey is the key of event_id eventID of business businessID in
// usage_event_ids: the first 16 bytes of SHA-256(businessID, NUL, eventID).
func eventKey(businessID, eventID string) [16]byte {
	h := sha256.New()
	h.Write([]byte(businessID))
	h.Write([]byte{0})
	h.Write([]byte(eventID))
	return [16]byte(h.Sum(nil))
}

// idUUID returns the UUID of a usage event id ("uev-<uuid>").
func idUUID(id string) [16]byte {
	var u [16]byte
	hexDigits := strings.ReplaceAll(strings.TrimPrefix(id, billing.PrefixUsageEvent), "-", "")
	if _, err := hex.Decode(u[:], []byte(hexDigits)); err != nil {
		panic("metering: malformed usage event id " + id)
	}
	return u
}

func eventKeys(businessID string, eventIDs []string) [][16]byte {
	out := make([][16]byte, len(eventIDs))
	for i, id := range eventIDs {
		out[i] = eventKey(businessID, id)
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
