package webhooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/internal/wake"
	"github.com/uptrace/bun"
)

// Endpoint statuses and the reasons a DISABLED endpoint gives.
const (
	StatusEnabled  = "ENABLED"
	StatusDisabled = "DISABLED"
	// DisabledRequested: the business disabled it (PATCH status DISABLED).
	DisabledRequested = "REQUESTED"
	// DisabledFailing: every attempt to reach it failed for 3 days.
	DisabledFailing = "FAILING"
)

// AllEvents in enabled_events subscribes an endpoint to every event type.
const AllEvents = "*"

// Endpoint is a URL that receives a business's events.
type Endpoint struct {
	bun.BaseModel `bun:"table:webhook_endpoints"`

	ID            string   `bun:"id,pk"`
	BusinessID    string   `bun:"business_id"`
	URL           string   `bun:"url"`
	Description   *string  `bun:"description"`
	EnabledEvents []string `bun:"enabled_events,array"`
	// Secret is the HMAC-SHA256 key of the webhook-signature header, stored
	// as is (see docs/webhooks.md on encryption at rest).
	Secret         string     `bun:"secret"`
	Status         string     `bun:"status"`
	DisabledReason *string    `bun:"disabled_reason"`
	DisabledAt     *time.Time `bun:"disabled_at"`
	// FailingSince is the first failed attempt since the last successful
	// one (business clock); nil while the endpoint answers.
	FailingSince *time.Time `bun:"failing_since"`
	LeaseToken   *string    `bun:"lease_token"`
	LeaseUntil   *time.Time `bun:"lease_until"`
	Created      time.Time  `bun:"created"`
	Updated      time.Time  `bun:"updated"`
	DeletedAt    *time.Time `bun:"deleted_at"`

	// showSecret makes MarshalJSON include the secret: only in the answer
	// to the request that created the endpoint.
	showSecret bool
}

// Subscribed reports whether the endpoint wants events of eventType.
func (e *Endpoint) Subscribed(eventType string) bool {
	for _, t := range e.EnabledEvents {
		if t == AllEvents || t == eventType {
			return true
		}
	}
	return false
}

type endpointView struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Description    *string  `json:"description"`
	EnabledEvents  []string `json:"enabled_events"`
	Status         string   `json:"status"`
	DisabledReason *string  `json:"disabled_reason"`
	DisabledAt     *string  `json:"disabled_at"`
	FailingSince   *string  `json:"failing_since"`
	Secret         string   `json:"secret,omitempty"`
	Created        string   `json:"created"`
	Updated        string   `json:"updated"`
}

// MarshalJSON writes the endpoint as the API shows it. The secret appears
// only in the answer to the request that created the endpoint.
func (e *Endpoint) MarshalJSON() ([]byte, error) {
	v := endpointView{
		ID: e.ID, URL: e.URL, Description: e.Description, EnabledEvents: e.EnabledEvents, Status: e.Status,
		DisabledReason: e.DisabledReason, DisabledAt: formatPtr(e.DisabledAt), FailingSince: formatPtr(e.FailingSince),
		Created: billing.FormatTime(e.Created), Updated: billing.FormatTime(e.Updated),
	}
	if e.showSecret {
		v.Secret = e.Secret
	}
	return json.Marshal(v)
}

func formatPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := billing.FormatTime(*t)
	return &s
}

// secretPrefix starts every endpoint secret.
const secretPrefix = "whsec_"

// errTooManyEndpoints answers a business that already has MaxEndpoints.
var errTooManyEndpoints = &billing.Error{Code: billing.EFORBIDDEN, Reason: billing.ReasonForbidden,
	Message: fmt.Sprintf("a business may have at most %d webhook endpoints; delete one first", MaxEndpoints)}

// CreateEndpoint stores a new ENABLED endpoint for biz and returns it with
// its secret, which only this answer shows. It creates the business's
// callback token too when it has none. The URL is checked against the
// outbound-safety rules (see Guard). The endpoint's creation time is the
// business's clock read after lockForNewEndpoint.
func (s *Service) CreateEndpoint(ctx context.Context, db bun.IDB, biz *business.Business, p CreateParams) (*Endpoint, error) {
	url, err := s.validateCreate(ctx, biz, p)
	if err != nil {
		return nil, err
	}
	now, err := s.lockForNewEndpoint(ctx, db, biz.ID)
	if err != nil {
		return nil, err
	}
	// The settings row is locked for the rest of the transaction, so that
	// two concurrent creations count the endpoints one after the other.
	if _, err := ensureSettings(ctx, db, biz.ID, now, true); err != nil {
		return nil, err
	}
	n, err := db.NewSelect().Model((*Endpoint)(nil)).Where("business_id = ?", biz.ID).Where("deleted_at IS NULL").Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count webhook endpoints: %w", err)
	}
	if n >= MaxEndpoints {
		return nil, errTooManyEndpoints
	}
	e := &Endpoint{
		ID: billing.NewID(billing.PrefixWebhookEndpoint), BusinessID: biz.ID, URL: url, Description: p.Description,
		EnabledEvents: normalizeEvents(p.EnabledEvents), Secret: secretPrefix + randomToken(32), Status: StatusEnabled,
		Created: now, Updated: now, showSecret: true,
	}
	if _, err := db.NewInsert().Model(e).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert webhook endpoint: %w", err)
	}
	return e, nil
}

// lockForNewEndpoint makes an endpoint that db's transaction creates or
// enables see every event inserted after it: events are queued for
// dispatch only while their business has an ENABLED endpoint (the trigger
// of migration 20261201000001), and an event transaction still under way
// could otherwise miss an endpoint that counts it, by its time, as its
// own. It locks the business's row FOR UPDATE, which waits for every
// transaction that inserted events of the business (each holds the row FOR
// KEY SHARE through the events' foreign key) and makes the ones that come
// after wait for this one's commit; then it returns the business's clock,
// read under the lock, as the endpoint's time: later than every event
// committed before it. (A sandbox clock stands still: an event written at
// the same instant by a transaction that committed first is not queued for
// the endpoint, though its time equals the endpoint's.)
func (s *Service) lockForNewEndpoint(ctx context.Context, db bun.IDB, businessID string) (time.Time, error) {
	var sandboxNow *time.Time
	if err := db.NewRaw("SELECT sandbox_now FROM businesses WHERE id = ? FOR UPDATE", businessID).Scan(ctx, &sandboxNow); err != nil {
		return time.Time{}, fmt.Errorf("lock business %s for a webhook endpoint: %w", businessID, err)
	}
	return truncate(businessNow(sandboxNow, s.clock.Now())), nil
}

// GetEndpoint returns the business's endpoint id, or DATA_NOT_FOUND (also
// for a deleted endpoint and for another business's).
func GetEndpoint(ctx context.Context, db bun.IDB, businessID, id string) (*Endpoint, error) {
	return getEndpoint(ctx, db, businessID, id, false)
}

func getEndpoint(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*Endpoint, error) {
	if !billing.ValidID(billing.PrefixWebhookEndpoint, id) {
		return nil, billing.NotFound("webhook endpoint")
	}
	e := new(Endpoint)
	q := db.NewSelect().Model(e).Where("business_id = ?", businessID).Where("id = ?", id).Where("deleted_at IS NULL")
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("webhook endpoint")
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// ListEndpoints returns one page of the business's endpoints, newest
// first, and whether more follow.
func ListEndpoints(ctx context.Context, db bun.IDB, businessID string, page billing.Page) ([]*Endpoint, bool, error) {
	var rows []*Endpoint
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID).Where("deleted_at IS NULL")
	if err := postgres.Paginate(q, "id", page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list webhook endpoints: %w", err)
	}
	rows, more := postgres.PageResult(rows, page)
	return rows, more, nil
}

// UpdateEndpoint applies p to the business's endpoint id, at the
// business's clock read after lockForNewEndpoint. Setting status DISABLED
// cancels its pending deliveries; setting ENABLED again clears the failure
// record, and the endpoint receives events from then on.
func (s *Service) UpdateEndpoint(ctx context.Context, db bun.IDB, biz *business.Business, id string, p PatchParams) (*Endpoint, error) {
	if err := s.validatePatch(ctx, biz, &p); err != nil {
		return nil, err
	}
	now, err := s.lockForNewEndpoint(ctx, db, biz.ID)
	if err != nil {
		return nil, err
	}
	e, err := getEndpoint(ctx, db, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	if p.URL.Set {
		e.URL = p.URL.Value
	}
	if p.EnabledEvents.Set {
		e.EnabledEvents = normalizeEvents(p.EnabledEvents.Value)
	}
	if p.Description.Set {
		e.Description = nil
		if !p.Description.Null {
			e.Description = &p.Description.Value
		}
	}
	if p.Status.Set && p.Status.Value != e.Status {
		e.Status = p.Status.Value
		if e.Status == StatusDisabled {
			reason := DisabledRequested
			e.DisabledReason, e.DisabledAt = &reason, &now
			if err := cancelPending(ctx, db, e.ID, now); err != nil {
				return nil, err
			}
		} else {
			e.DisabledReason, e.DisabledAt, e.FailingSince = nil, nil, nil
		}
	}
	e.Updated = now
	_, err = db.NewUpdate().Model(e).WherePK().
		Column("url", "description", "enabled_events", "status", "disabled_reason", "disabled_at", "failing_since", "updated").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("update webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// DeletedEndpoint is the answer to a deletion.
type DeletedEndpoint struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// DeleteEndpoint deletes the business's endpoint id: it receives nothing
// more, its pending deliveries are cancelled, and the API no longer shows
// it; the delivery log keeps its id.
func DeleteEndpoint(ctx context.Context, db bun.IDB, businessID, id string, now time.Time) (*DeletedEndpoint, error) {
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		e, err := getEndpoint(ctx, tx, businessID, id, true)
		if err != nil {
			return err
		}
		now = truncate(now)
		if _, err := tx.NewUpdate().Model(e).WherePK().Set("deleted_at = ?", now).Set("updated = ?", now).Exec(ctx); err != nil {
			return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
		}
		return cancelPending(ctx, tx, e.ID, now)
	})
	if err != nil {
		return nil, err
	}
	return &DeletedEndpoint{ID: id, Deleted: true}, nil
}

// cancelPending ends the pending deliveries of an endpoint that will
// receive nothing more.
func cancelPending(ctx context.Context, db bun.IDB, endpointID string, now time.Time) error {
	_, err := db.NewUpdate().Model((*Delivery)(nil)).
		Set("status = ?", DeliveryCancelled).Set("next_attempt_at = NULL").Set("updated = ?", now).
		Where("webhook_endpoint_id = ?", endpointID).Where("status = ?", DeliveryPending).Exec(ctx)
	if err != nil {
		return fmt.Errorf("cancel deliveries of %s: %w", endpointID, err)
	}
	return nil
}

// wakeEndpoint asks the workers, once db's transaction commits, to send the
// endpoint's due deliveries.
func wakeEndpoint(ctx context.Context, db bun.IDB, endpointID string) error {
	return wake.Notify(ctx, db, wake.TopicWebhookEndpoint+":"+endpointID)
}
