package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// StoredEvent is a usage event as GET /usage_events returns it.
type StoredEvent struct {
	bun.BaseModel `bun:"table:usage_events"`

	BusinessID    string          `bun:"business_id" json:"-"`
	ID            string          `bun:"id" json:"id"`
	EventID       string          `bun:"event_id" json:"event_id"`
	CustomerID    string          `bun:"customer_id" json:"customer_id"`
	Meter         string          `bun:"meter" json:"meter"`
	Quantity      decimal.Decimal `bun:"quantity,type:numeric" json:"-"`
	Timestamp     time.Time       `bun:"timestamp" json:"-"`
	Properties    json.RawMessage `bun:"properties,type:jsonb" json:"properties"`
	CorrectionOf  *string         `bun:"correction_of" json:"correction_of"`
	BilledCycleID *string         `bun:"billed_cycle_id" json:"billed_cycle_id"`
	ReceivedAt    time.Time       `bun:"received_at" json:"-"`
}

// MarshalJSON writes the event with exact quantity and API times.
func (e *StoredEvent) MarshalJSON() ([]byte, error) {
	type plain StoredEvent
	props := e.Properties
	if len(props) == 0 {
		props = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		*plain
		Quantity   billing.Number  `json:"quantity"`
		Timestamp  string          `json:"timestamp"`
		ReceivedAt string          `json:"received_at"`
		Properties json.RawMessage `json:"properties"`
	}{(*plain)(e), billing.NumberOf(e.Quantity), billing.FormatTime(e.Timestamp), billing.FormatTime(e.ReceivedAt), props})
}

// EventFilter selects events in ListEvents. Zero fields do not filter.
type EventFilter struct {
	CustomerID string
	Meter      string
	// From and To bound the usage timestamp: From ≤ timestamp < To.
	From, To time.Time
	// Billed keeps only billed (true) or unbilled (false) events.
	Billed *bool
	Page   billing.Page
}

// ListEvents returns one page of the business's stored events, most
// recently received first, and whether more follow.
func ListEvents(ctx context.Context, db bun.IDB, businessID string, f EventFilter) ([]*StoredEvent, bool, error) {
	var rows []*StoredEvent
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID)
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.Meter != "" {
		q = q.Where("meter = ?", f.Meter)
	}
	if !f.From.IsZero() {
		q = q.Where(`"timestamp" >= ?`, f.From)
	}
	if !f.To.IsZero() {
		q = q.Where(`"timestamp" < ?`, f.To)
	}
	if f.Billed != nil {
		if *f.Billed {
			q = q.Where("billed_cycle_id IS NOT NULL")
		} else {
			q = q.Where("billed_cycle_id IS NULL")
		}
	}
	if err := postgres.Paginate(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list usage events: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	return rows, more, nil
}
