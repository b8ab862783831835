package metering

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

// Limits on usage events (SPEC §4.3).
const (
	// MaxBatch is the most events one request may carry.
	MaxBatch = 10000
	// MaxPropertiesBytes bounds an event's properties object, as sent.
	MaxPropertiesBytes = 4096
	// MaxFuture is how far ahead of the business clock a timestamp may be.
	MaxFuture = 5 * time.Minute
	// MaxQuantityPlaces is the most decimal places a quantity may have.
	MaxQuantityPlaces = 12
	maxEventIDLength  = 255
)

// MinTimestamp is the earliest usage timestamp accepted: anything before is
// taken for a mistake (an unset clock) rather than usage to bill.
var MinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Batch is a decoded POST /usage_events body. Its events are decoded in
// one pass when every one of them is well formed; otherwise they are kept
// raw, so that each malformed event is rejected alone.
type Batch struct {
	// Single is true when the body was one event rather than {"events": […]}.
	Single bool
	// Events are the raw events, when the one-pass decoding failed.
	Events []json.RawMessage
	// decoded are the events, when the one-pass decoding succeeded.
	decoded []eventInput
}

// Len returns the number of events in the batch.
func (b Batch) Len() int { return max(len(b.Events), len(b.decoded)) }

// DecodeBatch reads a POST /usage_events body: one event object, or
// {"events": [ … ]} with 1 to 10,000 events. A body that is not one of
// these is an error for the whole request, and nothing is stored.
func DecodeBatch(body []byte) (Batch, error) {
	// The fast path: a batch whose events are all well formed decodes in
	// one pass. Anything else (a single event, a malformed event, a
	// malformed body) takes the path below, which says what is wrong where.
	var fast struct {
		Events []eventInput `json:"events"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&fast); err == nil && !d.More() && len(fast.Events) > 0 && len(fast.Events) <= MaxBatch {
		if _, err := d.Token(); err == io.EOF {
			return Batch{decoded: fast.Events}, nil
		}
	}

	var probe map[string]json.RawMessage
	if err := billing.DecodeJSON(body, &probe, false); err != nil {
		return Batch{}, err
	}
	raw, isBatch := probe["events"]
	if !isBatch {
		return Batch{Single: true, Events: []json.RawMessage{bytes.TrimSpace(body)}}, nil
	}
	for k := range probe {
		if k != "events" {
			return Batch{}, billing.Invalid(k, `is not a known field; a batch is {"events": [ … ]}`)
		}
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil || events == nil {
		return Batch{}, billing.Invalid("events", "must be an array of usage events")
	}
	if len(events) == 0 || len(events) > MaxBatch {
		return Batch{}, billing.Invalid("events", fmt.Sprintf("must hold 1 to %d events", MaxBatch))
	}
	return Batch{Events: events}, nil
}

// parse decodes (if needed) and checks event i of the batch.
func (b Batch) parse(i int, now time.Time) (*event, *billing.Error) {
	if b.decoded != nil {
		return checkEvent(i, &b.decoded[i], now)
	}
	return parseEvent(i, b.Events[i], now)
}

// eventInput is one usage event as sent.
type eventInput struct {
	EventID             *string         `json:"event_id"`
	CustomerID          *string         `json:"customer_id"`
	CustomerReferenceID *string         `json:"customer_reference_id"`
	Meter               *string         `json:"meter"`
	Quantity            *billing.Number `json:"quantity"`
	Timestamp           *string         `json:"timestamp"`
	Properties          json.RawMessage `json:"properties"`
	CorrectionOf        *string         `json:"correction_of"`
}

// event is a usage event being ingested: validated on its own, then
// resolved (customer, meter, correction) against the database.
type event struct {
	index        int
	eventID      string
	customerID   string // as sent, or resolved from customerRef
	customerRef  string
	meterCode    string
	meter        *Meter
	quantity     decimal.Decimal
	hasQuantity  bool
	timestamp    time.Time
	hasTimestamp bool
	properties   []byte // canonical JSON object, or nil
	uniqueValue  *string
	correctionOf string
	hash         int64    // contentHash
	key          [16]byte // in usage_event_ids, given when stored
	id           string   // uev-…, given when stored
}

// Rejection says why one event of a batch was not stored.
type Rejection struct {
	Index     int     `json:"index"`
	EventID   *string `json:"event_id"`
	ErrorCode string  `json:"error_code"`
	Field     string  `json:"field,omitempty"`
	Message   string  `json:"message"`
}

func reject(index int, eventID string, err *billing.Error) Rejection {
	r := Rejection{Index: index, ErrorCode: err.Reason, Message: err.Message}
	if eventID != "" {
		r.EventID = &eventID
	}
	if len(err.Fields) > 0 {
		r.Field = err.Fields[0].Field
		r.Message = err.Fields[0].Field + " " + err.Fields[0].Message
	}
	return r
}

// Error turns a rejection back into the API error it stands for (for a
// request that sent a single event).
func (r Rejection) Error() *billing.Error {
	code := billing.EINVALID
	switch r.ErrorCode {
	case billing.ReasonNotFound:
		code = billing.ENOTFOUND
	case billing.ReasonDuplicate:
		code = billing.ECONFLICT
	}
	e := &billing.Error{Code: code, Reason: r.ErrorCode, Message: r.Message}
	if r.Field != "" {
		e.Fields = []billing.FieldError{{Field: r.Field, Message: strings.TrimPrefix(r.Message, r.Field+" ")}}
	}
	return e
}

// parseEvent decodes and checks one event on its own (not yet against the
// database): every field error names the field.
func parseEvent(index int, raw json.RawMessage, now time.Time) (*event, *billing.Error) {
	var in eventInput
	if err := billing.DecodeJSON(raw, &in, true); err != nil {
		e, _ := billing.AsError(err)
		if e.Fields[0].Field == "body" {
			e = billing.Invalid("event", "must be a JSON object")
		}
		return nil, e
	}
	return checkEvent(index, &in, now)
}

// checkEvent checks one decoded event on its own.
func checkEvent(index int, in *eventInput, now time.Time) (*event, *billing.Error) {
	ev := &event{index: index}
	var v billing.Validation
	if in.EventID == nil {
		v.Add("event_id", "is required: your own unique id for this event, used to discard duplicates")
	} else {
		ev.eventID = *in.EventID
		v.Check(isPrintable(ev.eventID, maxEventIDLength), "event_id", "must be 1 to 255 printable characters")
	}
	switch {
	case in.CustomerID != nil && in.CustomerReferenceID != nil:
		v.Add("customer_id", "give customer_id or customer_reference_id, not both")
	case in.CustomerID != nil:
		ev.customerID = *in.CustomerID
	case in.CustomerReferenceID != nil:
		ev.customerRef = *in.CustomerReferenceID
		v.Check(isPrintable(ev.customerRef, 255), "customer_reference_id", "must be 1 to 255 printable characters")
	default:
		v.Add("customer_id", "is required (or customer_reference_id)")
	}
	if v.Check(in.Meter != nil && *in.Meter != "", "meter", "is required: the code of a meter, such as electricity_kwh") {
		ev.meterCode = *in.Meter
	}
	if in.CorrectionOf != nil {
		ev.correctionOf = *in.CorrectionOf
		v.Check(isPrintable(ev.correctionOf, maxEventIDLength), "correction_of", "must be the event_id of an event you sent before")
		v.Check(ev.correctionOf != ev.eventID, "correction_of", "must not be the event's own event_id")
	}
	if in.Quantity != nil {
		ev.quantity, ev.hasQuantity = in.Quantity.Decimal, true
		switch {
		case billing.DecimalPlaces(ev.quantity) > MaxQuantityPlaces:
			v.Add("quantity", fmt.Sprintf("must have at most %d decimal places", MaxQuantityPlaces))
		case ev.quantity.IsNegative() && ev.correctionOf == "":
			v.Add("quantity", "must not be negative (only a correction, with correction_of, may be)")
		}
	}
	if in.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.Timestamp)
		switch {
		case err != nil:
			v.Add("timestamp", "must be an RFC 3339 time such as 2026-11-21T08:00:00Z")
		case t.Before(MinTimestamp):
			v.Add("timestamp", "must not be before 2000-01-01")
		case t.After(now.Add(MaxFuture)):
			v.Add("timestamp", fmt.Sprintf("must not be more than 5 minutes ahead of the business clock (%s)", billing.FormatTime(now)))
		default:
			ev.timestamp, ev.hasTimestamp = t.UTC().Truncate(time.Microsecond), true
		}
	} else if ev.correctionOf == "" {
		v.Add("timestamp", "is required: when the usage happened")
	}
	if p := bytes.TrimSpace(in.Properties); len(p) > 0 && string(p) != "null" {
		switch {
		case len(in.Properties) > MaxPropertiesBytes:
			v.Add("properties", fmt.Sprintf("must be at most %d bytes", MaxPropertiesBytes))
		case p[0] != '{':
			v.Add("properties", "must be a JSON object")
		case string(p) != "{}" && !isEmptyObject(p):
			ev.properties = p
		}
	}
	if err := v.Err(); err != nil {
		e, _ := billing.AsError(err)
		return ev, e
	}
	return ev, nil
}

// isEmptyObject reports whether p, a JSON object, has no members ("{ }").
func isEmptyObject(p []byte) bool {
	return len(bytes.TrimSpace(p[1:len(p)-1])) == 0
}

func isPrintable(s string, max int) bool {
	if s == "" || len(s) > max*4 || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// contentHash identifies what an event says, so that the same event_id sent
// again with the same bytes is recognised as a duplicate at once. The
// properties are hashed as sent: the same properties written differently
// (other key order, spacing) hash differently, and are then compared by
// value (see sameContent) before an event is called a conflict.
func (ev *event) contentHash() int64 {
	h := sha256.New()
	for _, part := range []string{ev.customerID, ev.meterCode, ev.quantity.String(), ev.timestamp.Format(time.RFC3339Nano), ev.correctionOf} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(ev.properties)
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}
