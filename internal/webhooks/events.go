package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// EventView is an event as the API shows it: its webhook envelope.
type EventView struct{ *outbox.Event }

// MarshalJSON writes the envelope.
func (v EventView) MarshalJSON() ([]byte, error) { return v.Envelope() }

// EventFilter selects events in ListEvents.
type EventFilter struct {
	// Type, when set, keeps only events of that type.
	Type string
	Page billing.Page
}

// ListEvents returns one page of the business's events, newest first.
// An unknown type is an API_VALIDATION_ERROR naming "type".
func ListEvents(ctx context.Context, db bun.IDB, businessID string, f EventFilter) ([]EventView, bool, error) {
	if f.Type != "" && !slices.Contains(outbox.Types, f.Type) {
		return nil, false, billing.Invalid("type", fmt.Sprintf("%q is not an event type", f.Type))
	}
	var rows []*outbox.Event
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID)
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if err := postgres.Paginate(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list events: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	out := make([]EventView, len(rows))
	for i, e := range rows {
		out[i] = EventView{e}
	}
	return out, more, nil
}

// GetEvent returns the business's event id, or DATA_NOT_FOUND.
func GetEvent(ctx context.Context, db bun.IDB, businessID, id string) (*outbox.Event, error) {
	if !billing.ValidID(billing.PrefixEvent, id) {
		return nil, billing.NotFound("event")
	}
	e := new(outbox.Event)
	err := db.NewSelect().Model(e).Where("business_id = ?", businessID).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("event")
	}
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", id, err)
	}
	return e, nil
}

// DeliveryView is a delivery with its attempts, as the API shows it.
type DeliveryView struct {
	ID                string        `json:"id"`
	EventID           string        `json:"event_id"`
	WebhookEndpointID string        `json:"webhook_endpoint_id"`
	Redelivery        bool          `json:"redelivery"`
	Status            string        `json:"status"`
	AttemptCount      int           `json:"attempt_count"`
	NextAttemptAt     *string       `json:"next_attempt_at"`
	Attempts          []AttemptView `json:"attempts"`
	Created           string        `json:"created"`
	Updated           string        `json:"updated"`
}

// AttemptView is one logged attempt.
type AttemptView struct {
	AttemptNumber   int     `json:"attempt_number"`
	URL             string  `json:"url"`
	AttemptedAt     string  `json:"attempted_at"`
	StatusCode      *int    `json:"status_code"`
	LatencyMS       int     `json:"latency_ms"`
	ResponseExcerpt string  `json:"response_excerpt"`
	Error           *string `json:"error"`
	Succeeded       bool    `json:"succeeded"`
}

// ListDeliveries returns one page of the deliveries of the business's
// event id, newest first, each with every attempt; DATA_NOT_FOUND when the
// event is not the business's.
func ListDeliveries(ctx context.Context, db bun.IDB, businessID, eventID string, page billing.Page) ([]DeliveryView, bool, error) {
	if _, err := GetEvent(ctx, db, businessID, eventID); err != nil {
		return nil, false, err
	}
	var rows []*Delivery
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID).Where("event_id = ?", eventID)
	if err := postgres.Paginate(q, "id", page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list deliveries: %w", err)
	}
	rows, more := postgres.PageResult(rows, page)
	return views(ctx, db, rows, more)
}

func views(ctx context.Context, db bun.IDB, rows []*Delivery, more bool) ([]DeliveryView, bool, error) {
	out := make([]DeliveryView, len(rows))
	if len(rows) == 0 {
		return out, more, nil
	}
	ids := make([]string, len(rows))
	for i, d := range rows {
		ids[i] = d.ID
	}
	var attempts []*Attempt
	if err := db.NewSelect().Model(&attempts).Where("delivery_id IN (?)", bun.In(ids)).Order("delivery_id", "attempt_number").Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list attempts: %w", err)
	}
	byDelivery := map[string][]AttemptView{}
	for _, a := range attempts {
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], AttemptView{
			AttemptNumber: a.AttemptNumber, URL: a.URL, AttemptedAt: billing.FormatTime(a.AttemptedAt), StatusCode: a.StatusCode,
			LatencyMS: a.LatencyMS, ResponseExcerpt: a.ResponseExcerpt, Error: a.Error, Succeeded: a.Succeeded})
	}
	for i, d := range rows {
		out[i] = DeliveryView{ID: d.ID, EventID: d.EventID, WebhookEndpointID: d.WebhookEndpointID, Redelivery: d.Redelivery,
			Status: d.Status, AttemptCount: d.AttemptCount, NextAttemptAt: formatPtr(d.NextAttemptAt), Attempts: byDelivery[d.ID],
			Created: billing.FormatTime(d.Created), Updated: billing.FormatTime(d.Updated)}
		if out[i].Attempts == nil {
			out[i].Attempts = []AttemptView{}
		}
	}
	return out, more, nil
}

// RedeliverParams is the body of POST /events/{id}/redeliver.
type RedeliverParams struct {
	// WebhookEndpointID, when set, sends the event to that endpoint only
	// (whatever it subscribes to); else to every ENABLED endpoint that
	// subscribes to the event's type.
	WebhookEndpointID *string `json:"webhook_endpoint_id"`
}

// DecodeRedeliver reads a POST /events/{id}/redeliver body; an empty body
// is {}. Unknown fields are rejected.
func DecodeRedeliver(body []byte) (RedeliverParams, error) {
	var p RedeliverParams
	if len(body) == 0 {
		return p, nil
	}
	err := billing.DecodeJSON(body, &p, true)
	return p, err
}

var errNoEndpoint = &billing.Error{Code: billing.EFORBIDDEN, Reason: billing.ReasonForbidden,
	Message: "no enabled webhook endpoint subscribes to this event's type; name one in webhook_endpoint_id"}

var errEndpointDisabled = &billing.Error{Code: billing.EFORBIDDEN, Reason: billing.ReasonForbidden,
	Message: "the webhook endpoint is disabled; enable it with PATCH status ENABLED first"}

// Redeliver sends the business's event eventID again, as it was (same id,
// same body), to the endpoints p names, and returns the deliveries that
// will do it. A delivery of the event to such an endpoint that is still
// PENDING is made due now instead of doubled. It must run in the caller's
// transaction, which wakes the workers when it commits.
func Redeliver(ctx context.Context, db bun.IDB, businessID, eventID string, now time.Time, p RedeliverParams) ([]DeliveryView, error) {
	ev, err := GetEvent(ctx, db, businessID, eventID)
	if err != nil {
		return nil, err
	}
	var targets []*Endpoint
	if p.WebhookEndpointID != nil {
		e, err := getEndpoint(ctx, db, businessID, *p.WebhookEndpointID, true)
		if billing.CodeOf(err) == billing.ENOTFOUND {
			return nil, &billing.Error{Code: billing.ENOTFOUND, Reason: billing.ReasonNotFound, Message: "webhook endpoint not found",
				Fields: []billing.FieldError{{Field: "webhook_endpoint_id", Message: "is not a webhook endpoint of this business"}}}
		}
		if err != nil {
			return nil, err
		}
		if e.Status != StatusEnabled {
			return nil, errEndpointDisabled
		}
		targets = append(targets, e)
	} else {
		var all []*Endpoint
		err := db.NewSelect().Model(&all).Where("business_id = ?", businessID).Where("status = ?", StatusEnabled).
			Where("deleted_at IS NULL").Order("id").For("UPDATE").Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("read webhook endpoints: %w", err)
		}
		for _, e := range all {
			if e.Subscribed(ev.Type) {
				targets = append(targets, e)
			}
		}
		if len(targets) == 0 {
			return nil, errNoEndpoint
		}
	}
	now = truncate(now)
	var rows []*Delivery
	for _, e := range targets {
		d := new(Delivery)
		err := db.NewSelect().Model(d).Where("event_id = ?", ev.ID).Where("webhook_endpoint_id = ?", e.ID).
			Where("status = ?", DeliveryPending).Order("id").Limit(1).For("UPDATE").Scan(ctx)
		switch {
		case err == nil:
			d.NextAttemptAt, d.Updated = &now, now
			if _, err := db.NewUpdate().Model(d).WherePK().Column("next_attempt_at", "updated").Exec(ctx); err != nil {
				return nil, fmt.Errorf("make delivery %s due: %w", d.ID, err)
			}
		case errors.Is(err, sql.ErrNoRows):
			d = &Delivery{ID: billing.NewID(prefixDelivery), BusinessID: businessID, EventID: ev.ID, WebhookEndpointID: e.ID,
				Redelivery: true, Status: DeliveryPending, NextAttemptAt: &now, Created: now, Updated: now}
			if _, err := db.NewInsert().Model(d).Exec(ctx); err != nil {
				return nil, fmt.Errorf("insert redelivery: %w", err)
			}
		default:
			return nil, fmt.Errorf("read delivery: %w", err)
		}
		if err := wakeEndpoint(ctx, db, e.ID); err != nil {
			return nil, err
		}
		rows = append(rows, d)
	}
	out, _, err := views(ctx, db, rows, false)
	return out, err
}
