// Package notify sends messages to a business's customers (SPEC §4.10):
// the engine's moments (a cycle created, succeeded or failed, a failed
// payment attempt, service suspended or reinstated) rendered from templates
// in English and Indonesian, by e-mail over SMTP, and by WhatsApp and SMS
// through an HTTP gateway.
//
// Other features call Service.Queue in their own transaction: it renders
// the message and records one notification per channel, QUEUED or, when
// the channel is not configured or the customer has no address for it,
// SKIPPED_NO_CHANNEL, so that nothing is dropped silently. Service.Send
// delivers a queued notification (River jobs trigger it), retrying on
// failure; one that finally fails emits notification.failed.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Channel is how a notification reaches the customer.
type Channel string

// Channels (SPEC §4.4 notification_config).
const (
	ChannelEmail    Channel = "EMAIL"
	ChannelWhatsApp Channel = "WHATSAPP"
	ChannelSMS      Channel = "SMS"
)

// Kind is the moment a notification tells the customer about.
type Kind string

// Kinds (SPEC §4.10).
const (
	KindCycleCreated      Kind = "CYCLE_CREATED"
	KindCycleSucceeded    Kind = "CYCLE_SUCCEEDED"
	KindAttemptFailed     Kind = "ATTEMPT_FAILED"
	KindCycleFailed       Kind = "CYCLE_FAILED"
	KindServiceSuspended  Kind = "SERVICE_SUSPENDED"
	KindServiceReinstated Kind = "SERVICE_REINSTATED"
)

// Kinds lists every kind.
var Kinds = []Kind{KindCycleCreated, KindCycleSucceeded, KindAttemptFailed, KindCycleFailed, KindServiceSuspended, KindServiceReinstated}

// Statuses of a notification.
const (
	StatusQueued           = "QUEUED"
	StatusSent             = "SENT"
	StatusFailed           = "FAILED"
	StatusSkippedNoChannel = "SKIPPED_NO_CHANNEL"
)

// Locales of the templates.
const (
	LocaleEnglish    = "en"
	LocaleIndonesian = "id"
)

// Notification is one message to one customer on one channel.
type Notification struct {
	bun.BaseModel `bun:"table:notifications"`

	ID         string  `bun:"id,pk"`
	BusinessID string  `bun:"business_id"`
	CustomerID string  `bun:"customer_id"`
	PlanID     *string `bun:"plan_id"`
	CycleID    *string `bun:"cycle_id"`
	Kind       Kind    `bun:"kind"`
	// AttemptNumber is the cycle's failed payment attempt an
	// ATTEMPT_FAILED notification is about.
	AttemptNumber *int    `bun:"attempt_number"`
	Channel       Channel `bun:"channel"`
	Locale        string  `bun:"locale"`
	// Recipient is the e-mail address or E.164 number sent to; nil when
	// the customer has none for the channel.
	Recipient *string `bun:"recipient"`
	// Subject is the e-mail's subject; nil on other channels.
	Subject *string `bun:"subject"`
	Body    string  `bun:"body"`
	Status  string  `bun:"status"`
	// StatusReason says why a notification was skipped or failed.
	StatusReason *string `bun:"status_reason"`
	// Tries counts the sends tried.
	Tries int `bun:"tries"`
	// NextTryAt is when the next send is due (business clock); set only
	// while QUEUED.
	NextTryAt *time.Time `bun:"next_try_at"`
	// LeaseUntil (system clock) keeps two processes from sending at once.
	LeaseUntil *time.Time `bun:"lease_until"`
	Created    time.Time  `bun:"created"`
	Updated    time.Time  `bun:"updated"`
	SentAt     *time.Time `bun:"sent_at"`
}

type view struct {
	ID            string  `json:"id"`
	CustomerID    string  `json:"customer_id"`
	PlanID        *string `json:"plan_id"`
	CycleID       *string `json:"cycle_id"`
	Kind          Kind    `json:"kind"`
	AttemptNumber *int    `json:"attempt_number"`
	Channel       Channel `json:"channel"`
	Locale        string  `json:"locale"`
	Recipient     *string `json:"recipient"`
	Subject       *string `json:"subject"`
	Body          string  `json:"body"`
	Status        string  `json:"status"`
	StatusReason  *string `json:"status_reason"`
	Tries         int     `json:"tries"`
	Created       string  `json:"created"`
	SentAt        *string `json:"sent_at"`
}

// MarshalJSON writes the notification as the API and the
// notification.failed event show it.
func (n *Notification) MarshalJSON() ([]byte, error) {
	v := view{ID: n.ID, CustomerID: n.CustomerID, PlanID: n.PlanID, CycleID: n.CycleID, Kind: n.Kind,
		AttemptNumber: n.AttemptNumber, Channel: n.Channel, Locale: n.Locale, Recipient: n.Recipient, Subject: n.Subject,
		Body: n.Body, Status: n.Status, StatusReason: n.StatusReason, Tries: n.Tries, Created: billing.FormatTime(n.Created)}
	if n.SentAt != nil {
		s := billing.FormatTime(*n.SentAt)
		v.SentAt = &s
	}
	return json.Marshal(v)
}

// Filter selects notifications in List.
type Filter struct {
	// CustomerID, CycleID and Status, when set, keep only the matching ones.
	CustomerID string
	CycleID    string
	Status     string
	Page       billing.Page
}

// List returns one page of the business's notifications, newest first,
// and whether more follow. An unknown status is an API_VALIDATION_ERROR.
func List(ctx context.Context, db bun.IDB, businessID string, f Filter) ([]*Notification, bool, error) {
	switch f.Status {
	case "", StatusQueued, StatusSent, StatusFailed, StatusSkippedNoChannel:
	default:
		return nil, false, billing.Invalid("status", "must be QUEUED, SENT, FAILED or SKIPPED_NO_CHANNEL")
	}
	var rows []*Notification
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID)
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.CycleID != "" {
		q = q.Where("cycle_id = ?", f.CycleID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if err := postgres.Paginate(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list notifications: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	return rows, more, nil
}
