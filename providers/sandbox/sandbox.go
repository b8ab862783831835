// Package sandbox is the engine's simulated payment provider (SPEC §6.2),
// the default for sandbox businesses. It keeps its own books in the
// engine's database (sandbox_payments, sandbox_tokens, sandbox_callbacks),
// as a real provider keeps its own: every request is idempotent by its key,
// so a repeated charge never pays twice, and its callbacks are rows due at
// a time of the business's clock, delivered by the engine's jobs through the
// same callback processing a real provider's go through.
//
// Outcomes are deterministic. Xendit's test amounts fail with their codes
// (21110 INSUFFICIENT_BALANCE, 21103 ACCOUNT_ACCESS_BLOCKED, 21106
// INVALID_ACCOUNT_DETAILS, 21107 MAXIMUM_LIMIT_REACHED) and other amounts
// succeed; a token can carry a scripted behaviour in the metadata of the
// Pay-and-Save that saved it (sandbox_behavior: always_fail,
// fail_until:<RFC 3339>, pending_then_succeed, timeout_once), which applies
// to its charges.
package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// Config configures the sandbox.
type Config struct {
	// DB is the engine's database, where the sandbox keeps its books.
	DB *bun.DB
	// DueFunc, when set, is called after the sandbox stored callbacks that
	// are due at once, with their business's id; wire it to enqueue the
	// delivery job. Callbacks are rows, so a missed call only delays them
	// until the periodic sweep.
	DueFunc func(ctx context.Context, businessID string)
	// PendingDelay is how long, on the business clock, a
	// pending_then_succeed charge stays PENDING before it settles and its
	// callback is due. Defaults to one minute.
	PendingDelay time.Duration
	// LinkTTL is how long, on the business clock, a linking or payment link
	// waits for the customer before it expires. Defaults to 24 hours.
	LinkTTL time.Duration
}

// Provider is the sandbox provider.
type Provider struct {
	cfg Config
}

// New returns the sandbox provider.
func New(cfg Config) *Provider {
	if cfg.PendingDelay == 0 {
		cfg.PendingDelay = time.Minute
	}
	if cfg.LinkTTL == 0 {
		cfg.LinkTTL = 24 * time.Hour
	}
	return &Provider{cfg: cfg}
}

// Name returns providers.Sandbox.
func (p *Provider) Name() providers.Name { return providers.Sandbox }

// Kinds of sandbox payment.
const (
	kindLink        = "LINK"         // Pay and Save: saves a token when it succeeds
	kindCharge      = "CHARGE"       // a charge of a saved token
	kindPaymentLink = "PAYMENT_LINK" // a hosted page for an amount owed
)

// checkoutURL is where the sandbox's actions point. Nothing answers there:
// in the sandbox, POST /payment_requests/{id}/simulate plays the customer.
const checkoutURL = "https://checkout.sandbox.invalid/pay/"

// payment is a row of sandbox_payments.
type payment struct {
	bun.BaseModel `bun:"table:sandbox_payments"`

	ID             string          `bun:"id,pk"`
	BusinessID     string          `bun:"business_id"`
	IdempotencyKey string          `bun:"idempotency_key"`
	Kind           string          `bun:"kind"`
	Reference      string          `bun:"reference"`
	RequestHash    []byte          `bun:"request_hash"`
	Currency       string          `bun:"currency"`
	Amount         decimal.Decimal `bun:"amount,type:numeric"`
	ChannelCode    string          `bun:"channel_code"`
	Behavior       string          `bun:"behavior"`
	TokenID        *string         `bun:"token_id"`
	PaymentRef     *string         `bun:"payment_ref"`
	Outcome        *string         `bun:"outcome"`
	FailureCode    *string         `bun:"failure_code"`
	Canceled       bool            `bun:"canceled"`
	SettlesAt      *time.Time      `bun:"settles_at"`
	ExpiresAt      *time.Time      `bun:"expires_at"`
	Created        time.Time       `bun:"created"`
}

// token is a row of sandbox_tokens.
type token struct {
	bun.BaseModel `bun:"table:sandbox_tokens"`

	ID          string    `bun:"id,pk"`
	BusinessID  string    `bun:"business_id"`
	ChannelCode string    `bun:"channel_code"`
	Currency    string    `bun:"currency"`
	Behavior    string    `bun:"behavior"`
	TimeoutUsed bool      `bun:"timeout_used"`
	Canceled    bool      `bun:"canceled"`
	Created     time.Time `bun:"created"`
}

// result is what the sandbox says about p at now (the business clock).
func (p *payment) result(now time.Time) providers.Result {
	r := providers.Result{ProviderRef: p.ID, ChannelCode: p.ChannelCode, ExpiresAt: p.ExpiresAt}
	if p.PaymentRef != nil {
		r.PaymentRef = *p.PaymentRef
	}
	switch {
	case p.Canceled:
		r.Status = providers.StatusCanceled
	case p.Outcome != nil && (p.SettlesAt == nil || !now.Before(*p.SettlesAt)):
		r.Status = providers.Status(*p.Outcome)
		if p.FailureCode != nil {
			r.FailureCode = *p.FailureCode
		}
		if p.Kind == kindLink && p.TokenID != nil && r.Status == providers.StatusSucceeded {
			r.TokenRef = *p.TokenID
		}
	case p.Outcome != nil:
		r.Status = providers.StatusPending
	case p.ExpiresAt != nil && !now.Before(*p.ExpiresAt):
		r.Status = providers.StatusExpired
	default:
		r.Status = providers.StatusRequiresAction
		r.Actions = []providers.Action{{Type: "REDIRECT_CUSTOMER", Descriptor: "WEB_URL", Value: checkoutURL + p.ID}}
	}
	return r
}

func requestHash(parts ...string) []byte {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// sameRequest reports whether pay and other were asked for by the same
// request (their request hashes match), as a repeat under one idempotency
// key must be.
func (pay *payment) sameRequest(other *payment) bool {
	return bytes.Equal(pay.RequestHash, other.RequestHash)
}

var errKeyReused = providers.Invalid(providers.Sandbox, "IDEMPOTENCY_ERROR", "the idempotency key was used before for a different request")

// insertOnce stores p unless a payment with its idempotency key exists,
// and returns the stored payment and whether it is p.
func (p *Provider) insertOnce(ctx context.Context, tx bun.Tx, pay *payment) (*payment, bool, error) {
	res, err := tx.NewInsert().Model(pay).On("CONFLICT (business_id, idempotency_key) DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("sandbox: insert payment: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return pay, true, nil
	}
	stored := new(payment)
	if err := tx.NewSelect().Model(stored).Where("business_id = ?", pay.BusinessID).
		Where("idempotency_key = ?", pay.IdempotencyKey).For("UPDATE").Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("sandbox: read payment: %w", err)
	}
	if !stored.sameRequest(pay) {
		return nil, false, errKeyReused
	}
	return stored, false, nil
}

// StartLinking records a Pay-and-Save waiting for the customer. Its
// outcome, decided by the amount when the customer acts (Simulate), comes
// by callback.
func (p *Provider) StartLinking(ctx context.Context, cfg providers.Config, req providers.LinkRequest) (providers.Result, error) {
	b, err := parseBehavior(req.Metadata)
	if err != nil {
		return providers.Result{}, err
	}
	return p.startCustomerPayment(ctx, req.BusinessID, req.IdempotencyKey, kindLink, req.Reference, req.Amount, req.ChannelCode, b, req.Now)
}

// CreatePaymentLink records a hosted payment waiting for the customer, as
// StartLinking but saving nothing.
func (p *Provider) CreatePaymentLink(ctx context.Context, cfg providers.Config, req providers.PaymentLinkRequest) (providers.Result, error) {
	channel := req.ChannelCode
	if channel == "" {
		channel = "SANDBOX_CHECKOUT"
	}
	return p.startCustomerPayment(ctx, req.BusinessID, req.IdempotencyKey, kindPaymentLink, req.Reference, req.Amount, channel, "", req.Now)
}

func (p *Provider) startCustomerPayment(ctx context.Context, businessID, key, kind, reference string, amount billing.Money, channel, behavior string, now time.Time) (providers.Result, error) {
	expires := now.Add(p.cfg.LinkTTL)
	pay := &payment{
		ID: billing.NewID("sbxpr-"), BusinessID: businessID, IdempotencyKey: key, Kind: kind, Reference: reference,
		RequestHash: requestHash(kind, reference, amount.Amount.String(), string(amount.Currency), channel, behavior),
		Currency:    string(amount.Currency), Amount: amount.Amount, ChannelCode: channel, Behavior: behavior,
		ExpiresAt: &expires, Created: now,
	}
	var stored *payment
	err := p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		stored, _, err = p.insertOnce(ctx, tx, pay)
		return err
	})
	if err != nil {
		return providers.Result{}, err
	}
	return stored.result(now), nil
}

// conclude decides pay's outcome (failure code, or "" for success) as of
// at, and names the payment it made; nothing is stored.
func (pay *payment) conclude(code string, at time.Time) {
	outcome := string(providers.StatusSucceeded)
	var failure *string
	if code != "" {
		outcome = string(providers.StatusFailed)
		failure = &code
	}
	ref := billing.NewID("sbxpy-")
	pay.Outcome, pay.FailureCode, pay.SettlesAt, pay.PaymentRef = &outcome, failure, &at, &ref
}

// settle decides a stored payment's outcome (failure code, or "" for
// success) as of at, and stores it with its callbacks, due at that time.
func (p *Provider) settle(ctx context.Context, tx bun.Tx, pay *payment, code string, at time.Time) error {
	pay.conclude(code, at)
	if _, err := tx.NewUpdate().Model(pay).Column("outcome", "failure_code", "settles_at", "payment_ref", "token_id").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("sandbox: settle payment: %w", err)
	}
	return schedule(ctx, tx, []*payment{pay})
}

// GetPayment returns what the sandbox knows of the payment with the
// reference's idempotency key (or, failing that, its id).
func (p *Provider) GetPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) (providers.Result, error) {
	pay, err := p.find(ctx, p.cfg.DB, ref, false)
	if err != nil {
		return providers.Result{}, err
	}
	return pay.result(ref.Now), nil
}

func (p *Provider) find(ctx context.Context, db bun.IDB, ref providers.PaymentRef, forUpdate bool) (*payment, error) {
	pay := new(payment)
	q := db.NewSelect().Model(pay).Where("business_id = ?", ref.BusinessID)
	if ref.IdempotencyKey != "" {
		q = q.Where("idempotency_key = ?", ref.IdempotencyKey)
	} else {
		q = q.Where("id = ?", ref.ProviderRef)
	}
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, providers.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: read payment: %w", err)
	}
	return pay, nil
}

// Simulate plays the customer: it completes a linking or payment link that
// waits for the customer, as if they paid amount. The outcome follows the
// test amounts and arrives by callback, due at once.
func (p *Provider) Simulate(ctx context.Context, cfg providers.Config, ref providers.PaymentRef, amount billing.Money) error {
	err := p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		pay, err := p.find(ctx, tx, ref, true)
		if err != nil {
			return err
		}
		if pay.Kind == kindCharge || pay.result(ref.Now).Status != providers.StatusRequiresAction {
			return providers.Invalid(providers.Sandbox, "INVALID_STATUS", "the payment is not waiting for the customer")
		}
		if string(amount.Currency) != pay.Currency {
			return providers.Invalid(providers.Sandbox, "INVALID_VALUE_ERROR", "the amount must be in "+pay.Currency)
		}
		code := amountFailure(amount.Amount)
		if pay.Kind == kindLink && code == "" {
			tok := &token{ID: billing.NewID("sbxpt-"), BusinessID: pay.BusinessID, ChannelCode: pay.ChannelCode,
				Currency: pay.Currency, Behavior: pay.Behavior, Created: ref.Now}
			if _, err := tx.NewInsert().Model(tok).Exec(ctx); err != nil {
				return fmt.Errorf("sandbox: insert token: %w", err)
			}
			pay.TokenID = &tok.ID
		}
		return p.settle(ctx, tx, pay, code, ref.Now)
	})
	if err != nil {
		return err
	}
	p.notify(ctx, ref.BusinessID)
	return nil
}

// CancelPayment cancels a linking or payment link that waits for the
// customer. Cancelling one already cancelled is a no-op.
func (p *Provider) CancelPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) error {
	return p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		pay, err := p.find(ctx, tx, ref, true)
		if err != nil {
			return err
		}
		switch pay.result(ref.Now).Status {
		case providers.StatusCanceled:
			return nil
		case providers.StatusRequiresAction:
			_, err = tx.NewUpdate().Model(pay).Set("canceled = true").WherePK().Exec(ctx)
			return err
		}
		return providers.Invalid(providers.Sandbox, "INVALID_STATUS", "only a payment waiting for the customer can be cancelled")
	})
}

// CancelToken makes a token unusable: later charges are declined
// INVALID_TOKEN.
func (p *Provider) CancelToken(ctx context.Context, cfg providers.Config, tokenRef string) error {
	res, err := p.cfg.DB.NewUpdate().Model((*token)(nil)).Set("canceled = true").
		Where("business_id = ?", cfg.BusinessID).Where("id = ?", tokenRef).Exec(ctx)
	if err != nil {
		return fmt.Errorf("sandbox: cancel token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return providers.Invalid(providers.Sandbox, "DATA_NOT_FOUND", "the payment token is unknown")
	}
	return nil
}

func (p *Provider) notify(ctx context.Context, businessID string) {
	if p.cfg.DueFunc != nil {
		p.cfg.DueFunc(context.WithoutCancel(ctx), businessID)
	}
}

// amountJSON is decimal as a JSON number, for callback bodies.
func amountJSON(d decimal.Decimal) json.RawMessage { return json.RawMessage(d.String()) }
