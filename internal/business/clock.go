package business

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// maxAdvance bounds one move of a sandbox clock, so that a typo cannot
// schedule a century of billing.
const maxAdvance = 10 * 366 * 24 * time.Hour

// ClockAdvance says where to move a sandbox clock: to an instant, or by a
// duration. Exactly one is set.
type ClockAdvance struct {
	To *time.Time
	By *time.Duration
}

// ErrNotSandbox is returned for sandbox-only operations on a live business.
var ErrNotSandbox = &billing.Error{Code: billing.EFORBIDDEN, Reason: billing.ReasonForbidden,
	Message: "only a sandbox business has a sandbox clock; a live business uses the system clock"}

// ResolveAdvance returns the instant a says to move b's sandbox clock to:
// an API_VALIDATION_ERROR naming the field when it is backwards or more than
// ten years ahead, ErrNotSandbox for a live business.
func ResolveAdvance(b *Business, a ClockAdvance) (time.Time, error) {
	if (a.To == nil) == (a.By == nil) {
		return time.Time{}, billing.Invalid("to", "give exactly one of to (an RFC 3339 time) or by (a duration such as \"720h\")")
	}
	if b.SandboxNow == nil {
		return time.Time{}, ErrNotSandbox
	}
	now := *b.SandboxNow
	var to time.Time
	if a.By != nil {
		if *a.By < 0 {
			return time.Time{}, billing.Invalid("by", "must not be negative: the sandbox clock only moves forwards")
		}
		if *a.By > maxAdvance {
			return time.Time{}, billing.Invalid("by", "must be at most ten years")
		}
		to = now.Add(*a.By)
	} else {
		to = a.To.UTC()
		if to.Before(now) {
			return time.Time{}, billing.Invalid("to", fmt.Sprintf("must not be before the sandbox clock's current time %s: it only moves forwards", billing.FormatTime(now)))
		}
		if to.Sub(now) > maxAdvance {
			return time.Time{}, billing.Invalid("to", "must be at most ten years ahead of the sandbox clock")
		}
	}
	// Milliseconds, the API's precision (see Create); never behind now.
	if t := to.Truncate(time.Millisecond); !t.Before(now) {
		return t, nil
	}
	return now, nil
}

// SetSandboxNow moves the sandbox clock of business id forwards to t. It
// never moves it backwards: a t before the stored time changes nothing.
func SetSandboxNow(ctx context.Context, db bun.IDB, id string, t time.Time) error {
	t = t.UTC().Truncate(time.Microsecond)
	_, err := db.NewUpdate().Model((*Business)(nil)).Set("sandbox_now = ?", t).
		Where("id = ?", id).Where("sandbox_now IS NOT NULL").Where("sandbox_now < ?", t).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set sandbox clock: %w", err)
	}
	return nil
}

// AdvanceClock moves the sandbox clock of business id forwards, straight to
// where a says, and returns its new reading (see ResolveAdvance for the
// rules). The business row is locked for the rest of db's transaction, so
// concurrent advances apply one after the other.
func AdvanceClock(ctx context.Context, db bun.IDB, id string, a ClockAdvance) (time.Time, error) {
	b := new(Business)
	err := db.NewSelect().Model(b).Where("id = ?", id).For("UPDATE").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, billing.NotFound("business")
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("lock business %s: %w", id, err)
	}
	to, err := ResolveAdvance(b, a)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := db.NewUpdate().Model(b).Set("sandbox_now = ?", to).WherePK().Exec(ctx); err != nil {
		return time.Time{}, fmt.Errorf("advance sandbox clock: %w", err)
	}
	return to, nil
}
