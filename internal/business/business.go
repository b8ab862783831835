// Package business manages the engine's tenants: businesses, their API
// keys, and the sandbox clock of a sandbox business (SPEC §3, §6.7).
package business

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Mode is whether a business bills for real (LIVE) or plays (SANDBOX).
type Mode string

// Modes.
const (
	ModeSandbox Mode = "SANDBOX"
	ModeLive    Mode = "LIVE"
)

// ParseMode reads "sandbox" or "live", in any case.
func ParseMode(s string) (Mode, error) {
	switch Mode(strings.ToUpper(s)) {
	case ModeSandbox:
		return ModeSandbox, nil
	case ModeLive:
		return ModeLive, nil
	}
	return "", billing.Invalid("mode", "must be sandbox or live")
}

// Business is one tenant. Every other row belongs to exactly one business.
type Business struct {
	bun.BaseModel `bun:"table:businesses"`

	ID   string `bun:"id,pk"`
	Name string `bun:"name"`
	Mode Mode   `bun:"mode"`
	// SandboxNow is the sandbox clock's reading; nil for a live business.
	SandboxNow *time.Time `bun:"sandbox_now"`
	Created    time.Time  `bun:"created"`
}

// Clock returns the business's clock as of when b was read: the stored
// sandbox time for a sandbox business (it stands still until advanced), the
// system clock for a live one.
func (b *Business) Clock() billing.Clock {
	if b.SandboxNow != nil {
		return billing.NewSettableClock(*b.SandboxNow)
	}
	return billing.SystemClock{}
}

// Sandbox reports whether b is a sandbox business.
func (b *Business) Sandbox() bool { return b.Mode == ModeSandbox }

// CreateParams are the inputs of Create.
type CreateParams struct {
	Name string
	Mode Mode
}

// Validate checks the name (1–255 characters) and mode.
func (p CreateParams) Validate() error {
	var v billing.Validation
	name := strings.TrimSpace(p.Name)
	v.Check(name != "" && len(name) <= 255, "name", "must be 1 to 255 characters")
	v.Check(p.Mode == ModeSandbox || p.Mode == ModeLive, "mode", "must be sandbox or live")
	return v.Err()
}

// Create stores a new business and its first API key, and returns the key:
// the only time it is ever available, since only its hash is stored. A
// sandbox business's clock starts at clock's reading.
func Create(ctx context.Context, db bun.IDB, clock billing.Clock, p CreateParams) (*Business, string, error) {
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	now := clock.Now().Truncate(time.Microsecond)
	b := &Business{ID: billing.NewID(billing.PrefixBusiness), Name: strings.TrimSpace(p.Name), Mode: p.Mode, Created: now}
	if p.Mode == ModeSandbox {
		// The sandbox clock keeps the API's precision, milliseconds, so that
		// a time read from it and sent back (an event's timestamp, say)
		// means the very instant it read.
		start := now.Truncate(time.Millisecond)
		b.SandboxNow = &start
	}
	var key string
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(b).Exec(ctx); err != nil {
			return fmt.Errorf("insert business: %w", err)
		}
		var err error
		key, err = NewAPIKey(ctx, tx, now, b)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return b, key, nil
}

// Get returns the business with id, or a DATA_NOT_FOUND error.
func Get(ctx context.Context, db bun.IDB, id string) (*Business, error) {
	b := new(Business)
	err := db.NewSelect().Model(b).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("business")
	}
	if err != nil {
		return nil, fmt.Errorf("get business %s: %w", id, err)
	}
	return b, nil
}

// Count returns how many businesses exist.
func Count(ctx context.Context, db bun.IDB) (int, error) {
	n, err := db.NewSelect().Model((*Business)(nil)).Count(ctx)
	return int(n), err
}

// apiKey is a stored API key: its SHA-256, never the key.
type apiKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         string     `bun:"id,pk"`
	BusinessID string     `bun:"business_id"`
	KeyHash    []byte     `bun:"key_hash"`
	KeyHint    string     `bun:"key_hint"`
	Created    time.Time  `bun:"created"`
	RevokedAt  *time.Time `bun:"revoked_at"`
}

// keyAlphabet is the alphabet of the random part of a key (base62).
const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// keyRandomLength gives 43 × log2(62) ≈ 256 bits of randomness.
const keyRandomLength = 43

// NewAPIKey creates another API key for b and returns it: "sk_test_…" for a
// sandbox business, "sk_live_…" for a live one.
func NewAPIKey(ctx context.Context, db bun.IDB, now time.Time, b *Business) (string, error) {
	prefix := "sk_live_"
	if b.Mode == ModeSandbox {
		prefix = "sk_test_"
	}
	var sb strings.Builder
	sb.WriteString(prefix)
	max := big.NewInt(int64(len(keyAlphabet)))
	for i := 0; i < keyRandomLength; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate api key: %w", err)
		}
		sb.WriteByte(keyAlphabet[n.Int64()])
	}
	key := sb.String()
	row := &apiKey{
		ID:         billing.NewID(billing.PrefixAPIKey),
		BusinessID: b.ID,
		KeyHash:    hashKey(key),
		KeyHint:    key[:len(prefix)+4] + "…",
		Created:    now,
	}
	if _, err := db.NewInsert().Model(row).Exec(ctx); err != nil {
		return "", fmt.Errorf("insert api key: %w", err)
	}
	return key, nil
}

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// ErrInvalidAPIKey is returned by Authenticate for a missing, unknown or
// revoked key.
var ErrInvalidAPIKey = &billing.Error{Code: billing.EUNAUTHORIZED, Reason: billing.ReasonInvalidAPIKey,
	Message: "API key is missing, invalid or revoked; send it as the HTTP Basic user name or as a Bearer token"}

// Authenticate returns the business that key belongs to, read now (so its
// sandbox clock is current), and the id of the key ("key-…", for audit
// trails and rate limits), or ErrInvalidAPIKey.
func Authenticate(ctx context.Context, db bun.IDB, key string) (*Business, string, error) {
	if !strings.HasPrefix(key, "sk_test_") && !strings.HasPrefix(key, "sk_live_") || len(key) > 100 {
		return nil, "", ErrInvalidAPIKey
	}
	var row struct {
		Business `bun:",extend"`
		KeyID    string `bun:"key_id"`
	}
	err := db.NewSelect().Model(&row).
		ColumnExpr("business.*").ColumnExpr("k.id AS key_id").
		Join("JOIN api_keys AS k ON k.business_id = business.id").
		Where("k.key_hash = ?", hashKey(key)).
		Where("k.revoked_at IS NULL").
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrInvalidAPIKey
	}
	if err != nil {
		return nil, "", fmt.Errorf("authenticate: %w", err)
	}
	return &row.Business, row.KeyID, nil
}
