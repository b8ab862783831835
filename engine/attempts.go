package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Attempt types (Xendit's attempt_details[].type).
const (
	// AttemptInitial is a cycle's first scheduled attempt, at its
	// scheduled timestamp.
	AttemptInitial = "INITIAL"
	// AttemptRetry is a later scheduled attempt, at a retry time.
	AttemptRetry = "RETRY"
	// AttemptForced is an attempt made by force_attempt.
	AttemptForced = "FORCED"
)

// Attempt (action) statuses.
const (
	AttemptPending   = "PENDING"
	AttemptSucceeded = "SUCCEEDED"
	AttemptFailed    = "FAILED"
)

// maxForcedAttempts bounds force_attempt per cycle (SPEC §5.4).
const maxForcedAttempts = 5

// prefixAttempt starts the ids of attempt rows, which the API does not show.
const prefixAttempt = "cyat-"

// failureNoToken is the failure code of an attempt that found no ACTIVE
// token among the plan's payment methods, and of an action whose token
// could no longer be charged when the engine came to charge it.
const failureNoToken = "NO_ACTIVE_PAYMENT_TOKEN"

// Attempt is one action of a charge attempt of a cycle: an attempt tries
// the plan's ACTIVE tokens in rank order, one action each, until one
// succeeds or none is left. ProviderKey (<cycle id>/<attempt>/<action>) is
// the provider idempotency key, committed before the provider is called.
type Attempt struct {
	bun.BaseModel `bun:"table:cycle_attempts"`

	ID            string `bun:"id,pk"`
	BusinessID    string `bun:"business_id"`
	CycleID       string `bun:"cycle_id"`
	AttemptNumber int    `bun:"attempt_number"`
	ActionNumber  int    `bun:"action_number"`
	Type          string `bun:"type"`
	Status        string `bun:"status"`
	// PaymentTokenID is the token charged; nil when the attempt found no
	// ACTIVE token (it failed with NO_ACTIVE_PAYMENT_TOKEN uncharged).
	PaymentTokenID   *string `bun:"payment_token_id"`
	PaymentRequestID *string `bun:"payment_request_id"`
	ProviderKey      string  `bun:"provider_key"`
	// Amount is what the action charges: what the invoice owed when the
	// attempt was opened.
	Amount      decimal.Decimal `bun:"amount,type:numeric"`
	FailureCode *string         `bun:"failure_code"`
	// NextRetryTimestamp is set on the last action of a failed scheduled
	// attempt that is retried: the attempt time plus retry_interval_count
	// days.
	NextRetryTimestamp *time.Time `bun:"next_retry_timestamp"`
	// RequestKey is the Idempotency-Key of the force_attempt request that
	// opened this action, the first of a FORCED attempt; nil otherwise.
	RequestKey *string   `bun:"request_key"`
	Created    time.Time `bun:"created"`
	Updated    time.Time `bun:"updated"`
}

type attemptView struct {
	AttemptNumber      int     `json:"attempt_number"`
	ActionNumber       int     `json:"action_number"`
	Type               string  `json:"type"`
	Status             string  `json:"status"`
	PaymentTokenID     *string `json:"payment_token_id"`
	PaymentRequestID   *string `json:"payment_request_id"`
	FailureCode        *string `json:"failure_code"`
	NextRetryTimestamp *string `json:"next_retry_timestamp"`
	Created            string  `json:"created"`
}

// MarshalJSON writes the action as one of Xendit's attempt_details, with
// the payment request that carried it.
func (a *Attempt) MarshalJSON() ([]byte, error) {
	return json.Marshal(a.view())
}

// view is the action as MarshalJSON writes it. Documents that hold
// actions hold their views, so that encoding/json writes them in the
// same pass instead of calling MarshalJSON and re-reading its output.
func (a *Attempt) view() attemptView {
	return attemptView{AttemptNumber: a.AttemptNumber, ActionNumber: a.ActionNumber, Type: a.Type, Status: a.Status,
		PaymentTokenID: a.PaymentTokenID, PaymentRequestID: a.PaymentRequestID, FailureCode: a.FailureCode,
		NextRetryTimestamp: formatOptional(a.NextRetryTimestamp), Created: billing.FormatTime(a.Created)}
}

// attemptKey is the provider idempotency key of an action (SPEC §5.3).
func attemptKey(cycleID string, attempt, action int) string {
	return fmt.Sprintf("%s/%d/%d", cycleID, attempt, action)
}

// cycleAttemptsSQL reads the attempts of the cycles $2 of business $1.
var cycleAttemptsSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Attempt)(nil)).Where("business_id = $1").Where("cycle_id = ANY($2::text[])").
		Order("cycle_id", "attempt_number", "action_number").String()
})

// loadAttempts reads the attempt rows of cs, in order, for their JSON.
func loadAttempts(ctx context.Context, db bun.IDB, cs ...*Cycle) error {
	if len(cs) == 0 {
		return nil
	}
	ids := make([]string, len(cs))
	byID := make(map[string]*Cycle, len(cs))
	for i, c := range cs {
		ids[i], byID[c.ID] = c.ID, c
		c.attempts = []*Attempt{}
	}
	var rows []*Attempt
	if err := cycleAttemptsSQL.Scan(ctx, db, &rows, cs[0].BusinessID, ids); err != nil {
		return fmt.Errorf("read charge attempts: %w", err)
	}
	for _, a := range rows {
		c := byID[a.CycleID]
		c.attempts = append(c.attempts, a)
	}
	return nil
}

// lastAttempt returns the cycle's latest attempt row, or nil.
func lastAttempt(ctx context.Context, db bun.IDB, c *Cycle) (*Attempt, error) {
	var rows []*Attempt
	if err := db.NewSelect().Model(&rows).Where("cycle_id = ?", c.ID).
		OrderExpr("attempt_number DESC, action_number DESC").Limit(1).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read the last attempt of cycle %s: %w", c.ID, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0], nil
}

// triedTokens returns the tokens the cycle's attempt number already
// charged (or tried to), and the attempt's first action, whose time is
// the attempt time.
func triedTokens(ctx context.Context, db bun.IDB, c *Cycle, number int) (map[string]bool, *Attempt, error) {
	var rows []*Attempt
	if err := db.NewSelect().Model(&rows).Where("cycle_id = ?", c.ID).Where("attempt_number = ?", number).
		Order("action_number").Scan(ctx); err != nil {
		return nil, nil, fmt.Errorf("read attempt %d of cycle %s: %w", number, c.ID, err)
	}
	tried := map[string]bool{}
	for _, a := range rows {
		if a.PaymentTokenID != nil {
			tried[*a.PaymentTokenID] = true
		}
	}
	if len(rows) == 0 {
		return tried, nil, nil
	}
	return tried, rows[0], nil
}

// nextToken returns the first of the plan's payment methods, in rank
// order, whose token is ACTIVE and not in tried; nil when none is left.
// Tokens cancelled or expired since the plan named them are skipped.
func (s *Service) nextToken(ctx context.Context, db bun.IDB, plan *Plan, tried map[string]bool) (*payments.PaymentToken, error) {
	for _, m := range plan.PaymentMethods {
		if tried[m.PaymentTokenID] {
			continue
		}
		tok, err := s.payments.GetToken(ctx, db, plan.BusinessID, m.PaymentTokenID)
		if billing.CodeOf(err) == billing.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		if tok.Status == payments.TokenActive && tok.Currency == string(plan.Currency) {
			return tok, nil
		}
	}
	return nil, nil
}

// saveAttempt writes a changed attempt row.
func saveAttempt(ctx context.Context, tx bun.IDB, a *Attempt) error {
	if _, err := tx.NewUpdate().Model(a).WherePK().Column("status", "payment_request_id", "failure_code",
		"next_retry_timestamp", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update attempt %s: %w", a.ProviderKey, err)
	}
	return nil
}

// saveCycleState writes what charging changes on a cycle.
func saveCycleState(ctx context.Context, tx bun.IDB, c *Cycle) error {
	if _, err := tx.NewUpdate().Model(c).WherePK().Column("status", "attempt_count", "forced_attempt_count",
		"next_action", "next_action_at", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update cycle %s: %w", c.ID, err)
	}
	return nil
}
