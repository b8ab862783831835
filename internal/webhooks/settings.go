package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Settings are a business's webhook settings: the callback token every
// delivery carries in x-callback-token, as Xendit's webhooks do, so that a
// receiver can check that a request comes from the engine without
// verifying the signature.
type Settings struct {
	bun.BaseModel `bun:"table:webhook_settings"`

	BusinessID    string    `bun:"business_id,pk"`
	CallbackToken string    `bun:"callback_token"`
	Created       time.Time `bun:"created"`
	Updated       time.Time `bun:"updated"`
}

type settingsView struct {
	CallbackToken string `json:"callback_token"`
	Created       string `json:"created"`
	Updated       string `json:"updated"`
}

// MarshalJSON writes the settings as GET /webhook_settings shows them.
func (s *Settings) MarshalJSON() ([]byte, error) {
	return json.Marshal(settingsView{CallbackToken: s.CallbackToken, Created: billing.FormatTime(s.Created), Updated: billing.FormatTime(s.Updated)})
}

// callbackTokenPrefix starts every callback token.
const callbackTokenPrefix = "whcb_"

// ensureSettings returns the business's settings, creating them (with a
// new callback token) when it has none. With lock, the row stays locked
// for the rest of db's transaction.
func ensureSettings(ctx context.Context, db bun.IDB, businessID string, now time.Time, lock bool) (*Settings, error) {
	now = truncate(now)
	row := &Settings{BusinessID: businessID, CallbackToken: callbackTokenPrefix + randomToken(24), Created: now, Updated: now}
	if _, err := db.NewInsert().Model(row).On("CONFLICT (business_id) DO NOTHING").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create webhook settings: %w", err)
	}
	q := db.NewSelect().Model(row).Where("business_id = ?", businessID)
	if lock {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("read webhook settings: %w", err)
	}
	return row, nil
}

// GetSettings returns the business's webhook settings, creating its
// callback token on first use.
func GetSettings(ctx context.Context, db bun.IDB, businessID string, now time.Time) (*Settings, error) {
	return ensureSettings(ctx, db, businessID, now, false)
}

// RotateCallbackToken gives the business a new callback token and returns
// the settings. Deliveries sent from then on carry the new token; one
// already in flight may still carry the old one.
func RotateCallbackToken(ctx context.Context, db bun.IDB, businessID string, now time.Time) (*Settings, error) {
	row, err := ensureSettings(ctx, db, businessID, now, true)
	if err != nil {
		return nil, err
	}
	row.CallbackToken, row.Updated = callbackTokenPrefix+randomToken(24), truncate(now)
	if _, err := db.NewUpdate().Model(row).WherePK().Column("callback_token", "updated").Exec(ctx); err != nil {
		return nil, fmt.Errorf("rotate callback token: %w", err)
	}
	return row, nil
}
