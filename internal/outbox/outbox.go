// Package outbox writes domain events (SPEC §4.9) into the events table in
// the caller's transaction, so that an event exists exactly when the change
// it describes was committed. Delivery to webhook endpoints reads from the
// table; nothing here sends anything.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// APIVersion is written into every event's envelope.
const APIVersion = "2026-11-01"

// Event types (SPEC §4.9).
const (
	RecurringPlanActivated    = "recurring.plan.activated"
	RecurringPlanInactivated  = "recurring.plan.inactivated"
	RecurringCycleCreated     = "recurring.cycle.created"
	RecurringCycleAmountFixed = "recurring.cycle.amount_fixed"
	RecurringCycleSucceeded   = "recurring.cycle.succeeded"
	RecurringCycleRetrying    = "recurring.cycle.retrying"
	RecurringCycleFailed      = "recurring.cycle.failed"
	PaymentCapture            = "payment.capture"
	PaymentFailure            = "payment.failure"
	PaymentTokenActivation    = "payment_token.activation"
	PaymentTokenExpiry        = "payment_token.expiry"
	InvoiceFinalized          = "invoice.finalized"
	InvoiceNeedsReview        = "invoice.needs_review"
	InvoicePaid               = "invoice.paid"
	InvoiceVoided             = "invoice.voided"
	CustomerServiceSuspended  = "customer.service.suspended"
	CustomerServiceReinstated = "customer.service.reinstated"
	NotificationFailed        = "notification.failed"
	// WebhookEndpointDisabled is the engine's addition to SPEC §4.9: an
	// endpoint that failed for 3 days was disabled (docs/webhooks.md).
	WebhookEndpointDisabled = "webhook_endpoint.disabled"
)

// Types lists every event type the engine emits.
var Types = []string{
	RecurringPlanActivated, RecurringPlanInactivated, RecurringCycleCreated, RecurringCycleAmountFixed,
	RecurringCycleSucceeded, RecurringCycleRetrying, RecurringCycleFailed, PaymentCapture, PaymentFailure,
	PaymentTokenActivation, PaymentTokenExpiry, InvoiceFinalized, InvoiceNeedsReview, InvoicePaid,
	InvoiceVoided, CustomerServiceSuspended, CustomerServiceReinstated, NotificationFailed,
	WebhookEndpointDisabled,
}

var known = func() map[string]bool {
	m := make(map[string]bool, len(Types))
	for _, t := range Types {
		m[t] = true
	}
	return m
}()

// Event is one stored event.
type Event struct {
	bun.BaseModel `bun:"table:events"`

	ID         string          `bun:"id,pk"`
	BusinessID string          `bun:"business_id"`
	Type       string          `bun:"type"`
	APIVersion string          `bun:"api_version"`
	Created    time.Time       `bun:"created"`
	Data       json.RawMessage `bun:"data,type:json"`
}

// Emit writes an event of type eventType for business businessID, with data
// as its payload, through db: pass the transaction that makes the change the
// event describes. created is the business clock's reading at the change.
// An unknown event type is a programming error and is returned as one.
func Emit(ctx context.Context, db bun.IDB, businessID, eventType string, created time.Time, data any) (*Event, error) {
	e, err := New(businessID, eventType, created, data)
	if err != nil {
		return nil, err
	}
	if err := insert(ctx, db, []*Event{e}); err != nil {
		return nil, fmt.Errorf("emit %s: %w", eventType, err)
	}
	return e, nil
}

// New builds the event Emit would write, without writing it, for callers
// that write many at once with EmitAll.
func New(businessID, eventType string, created time.Time, data any) (*Event, error) {
	if !known[eventType] {
		return nil, fmt.Errorf("emit %q: unknown event type", eventType)
	}
	raw, err := encode(data)
	if err != nil {
		return nil, fmt.Errorf("emit %s: encode data: %w", eventType, err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("emit %s: data must be a JSON object", eventType)
	}
	return &Event{
		ID:         billing.NewID(billing.PrefixEvent),
		BusinessID: businessID,
		Type:       eventType,
		APIVersion: APIVersion,
		Created:    created.UTC().Truncate(time.Microsecond),
		Data:       raw,
	}, nil
}

// encode returns data's JSON. A json.Marshaler (the engine's documents) is
// called directly: json.Marshal would copy and re-scan its whole output to
// compact it, and the documents are built by json.Marshal already. The
// database reads the text as json, which rejects anything invalid.
func encode(data any) ([]byte, error) {
	if m, ok := data.(json.Marshaler); ok {
		if v := reflect.ValueOf(data); v.Kind() != reflect.Pointer || !v.IsNil() {
			return m.MarshalJSON()
		}
	}
	return json.Marshal(data)
}

// EmitAll writes events built with New through db, in one statement: pass
// the transaction that makes the changes they describe.
func EmitAll(ctx context.Context, db bun.IDB, events []*Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := insert(ctx, db, events); err != nil {
		return fmt.Errorf("emit %d events: %w", len(events), err)
	}
	return nil
}

// insertEvents writes events from arrays bound as parameters: one fixed
// statement for any number of events, whose documents PostgreSQL reads as
// values instead of parsing them out of the SQL text.
const insertEvents = `INSERT INTO events (id, business_id, type, api_version, created, data)
	SELECT id, business_id, type, api_version, created, data::json
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
		AS e(id, business_id, type, api_version, created, data)`

func insert(ctx context.Context, db bun.IDB, events []*Event) error {
	n := len(events)
	ids, businesses, types, versions, data := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	for i, e := range events {
		ids[i], businesses[i], types[i], versions[i], created[i], data[i] = e.ID, e.BusinessID, e.Type, e.APIVersion, e.Created, string(e.Data)
	}
	_, err := postgres.Exec(ctx, db, insertEvents, ids, businesses, types, versions, created, data)
	return err
}

// envelope is the JSON a webhook receiver gets (Xendit's shape).
type envelope struct {
	ID         string          `json:"id"`
	Event      string          `json:"event"`
	BusinessID string          `json:"business_id"`
	Created    string          `json:"created"`
	APIVersion string          `json:"api_version"`
	Data       json.RawMessage `json:"data"`
}

// Envelope returns the event as delivered: {"id", "event", "business_id",
// "created", "api_version", "data"}.
func (e *Event) Envelope() ([]byte, error) {
	return json.Marshal(envelope{
		ID:         e.ID,
		Event:      e.Type,
		BusinessID: e.BusinessID,
		Created:    billing.FormatTime(e.Created),
		APIVersion: e.APIVersion,
		Data:       e.Data,
	})
}
