package payments

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// CallbackOutcome says what a received callback did.
type CallbackOutcome string

// Callback outcomes.
const (
	// OutcomeProcessed: the callback is about a payment request or token of
	// the business and was applied (possibly changing nothing, when the
	// request already had that state).
	OutcomeProcessed CallbackOutcome = "PROCESSED"
	// OutcomeDuplicate: the same callback was received before; nothing
	// changed.
	OutcomeDuplicate CallbackOutcome = "DUPLICATE"
	// OutcomeUnmatched: verified, but about no payment request or token the
	// engine knows. It is stored for an operator to look at.
	OutcomeUnmatched CallbackOutcome = "UNMATCHED"
	// OutcomeIgnored: an event the engine does not act on.
	OutcomeIgnored CallbackOutcome = "IGNORED"
	// OutcomeUnparseable: verified, but its body could not be read. Stored.
	OutcomeUnparseable CallbackOutcome = "UNPARSEABLE"
)

// Errors for callbacks that cannot be verified (401). They change nothing
// and are not stored.
var (
	ErrInvalidCallbackToken = &billing.Error{Code: billing.EUNAUTHORIZED, Reason: "INVALID_CALLBACK_TOKEN",
		Message: "the x-callback-token header does not match the callback token of any business"}
	ErrInvalidSignature = &billing.Error{Code: billing.EUNAUTHORIZED, Reason: "INVALID_SIGNATURE",
		Message: "the Wooshpay-Signature header is missing, does not match the body, or is older than five minutes"}
)

// callbackRow is a row of provider_callbacks.
type callbackRow struct {
	bun.BaseModel `bun:"table:provider_callbacks"`

	ID               int64     `bun:"id,pk,autoincrement"`
	BusinessID       string    `bun:"business_id"`
	Provider         string    `bun:"provider"`
	DedupeKey        string    `bun:"dedupe_key"`
	EventType        *string   `bun:"event_type"`
	Body             []byte    `bun:"body"`
	Outcome          string    `bun:"outcome"`
	PaymentRequestID *string   `bun:"payment_request_id"`
	ReceivedAt       time.Time `bun:"received_at"`
	LastReceivedAt   time.Time `bun:"last_received_at"`
	TimesReceived    int       `bun:"times_received"`
}

// ReceiveCallback verifies, stores and processes a callback that arrived
// over HTTP from provider name (xendit or wooshpay), and returns what it
// did. The business is found from the callback itself: a Xendit callback by
// its x-callback-token (each business has its own), a WooshPay one by the
// business_id of the URL the engine registered, whose webhook secret must
// then verify the signature. A callback that cannot be verified returns
// ErrInvalidCallbackToken or ErrInvalidSignature and changes nothing. A
// verified one is stored raw and processed in one transaction, so when
// ReceiveCallback returns nil everything is committed; the same callback
// again is a DUPLICATE and changes nothing.
func (s *Service) ReceiveCallback(ctx context.Context, name providers.Name, in providers.CallbackInput) (CallbackOutcome, error) {
	businessID, err := s.callbackBusiness(ctx, name, in)
	if err != nil {
		return "", err
	}
	return s.receive(ctx, name, businessID, in)
}

func unverified(name providers.Name) error {
	if name == providers.WooshPay {
		return ErrInvalidSignature
	}
	return ErrInvalidCallbackToken
}

// callbackBusiness finds the business an HTTP callback claims to be for.
func (s *Service) callbackBusiness(ctx context.Context, name providers.Name, in providers.CallbackInput) (string, error) {
	row := new(settingsRow)
	var err error
	switch name {
	case providers.Xendit:
		token := in.Header.Get("x-callback-token")
		if token == "" {
			return "", ErrInvalidCallbackToken
		}
		sum := sha256.Sum256([]byte(token))
		err = s.db.NewSelect().Model(row).Where("xendit_callback_token_hash = ?", sum[:]).Scan(ctx)
		if err == nil && (row.XenditCallbackToken == nil || subtle.ConstantTimeCompare([]byte(*row.XenditCallbackToken), []byte(token)) != 1) {
			return "", ErrInvalidCallbackToken
		}
	case providers.WooshPay:
		id := in.Query.Get("business_id")
		if !billing.ValidID(billing.PrefixBusiness, id) {
			return "", ErrInvalidSignature
		}
		err = s.db.NewSelect().Model(row).Where("business_id = ?", id).Where("wooshpay_webhook_secret IS NOT NULL").Scan(ctx)
	default:
		return "", fmt.Errorf("payments: no callback endpoint for provider %q", name)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", unverified(name)
	}
	if err != nil {
		return "", fmt.Errorf("find the business of a %s callback: %w", name, err)
	}
	return row.BusinessID, nil
}

// receive verifies a callback for businessID with its configuration, then
// stores and processes it.
func (s *Service) receive(ctx context.Context, name providers.Name, businessID string, in providers.CallbackInput) (CallbackOutcome, error) {
	biz, now, err := s.businessNow(ctx, s.db, businessID)
	if err != nil {
		return "", err
	}
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return "", err
	}
	prov, err := s.provider(string(name))
	if err != nil {
		return "", err
	}
	n, perr := prov.ParseCallback(cfg, in, s.clock.Now())
	switch {
	case errors.Is(perr, providers.ErrUnverified):
		return "", unverified(name)
	case perr != nil && !errors.Is(perr, providers.ErrMalformed):
		return "", perr
	}
	if n.DedupeKey == "" {
		sum := sha256.Sum256(in.Body)
		n.DedupeKey = "sha256:" + hex.EncodeToString(sum[:])
	}
	received := truncate(s.clock.Now())
	rec := &callbackRow{BusinessID: biz.ID, Provider: string(name), DedupeKey: n.DedupeKey, Body: in.Body,
		Outcome: string(OutcomeIgnored), ReceivedAt: received, LastReceivedAt: received, TimesReceived: 1}
	if n.EventType != "" {
		rec.EventType = &n.EventType
	}
	outcome := OutcomeUnparseable
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewInsert().Model(rec).On("CONFLICT (business_id, provider, dedupe_key) DO NOTHING").Exec(ctx)
		if err != nil {
			return fmt.Errorf("store callback: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			outcome = OutcomeDuplicate
			_, err := tx.NewUpdate().Model((*callbackRow)(nil)).
				Set("times_received = times_received + 1, last_received_at = ?", received).
				Where("business_id = ?", rec.BusinessID).Where("provider = ?", rec.Provider).Where("dedupe_key = ?", rec.DedupeKey).Exec(ctx)
			return err
		}
		if perr == nil {
			if outcome, rec.PaymentRequestID, err = s.process(ctx, tx, biz, name, n, now); err != nil {
				return err
			}
		}
		_, err = tx.NewUpdate().Model(rec).Set("outcome = ?", string(outcome)).Set("payment_request_id = ?", rec.PaymentRequestID).WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return "", err
	}
	if perr != nil && outcome == OutcomeUnparseable {
		return outcome, billing.Invalid("body", "could not be read: "+perr.Error())
	}
	return outcome, nil
}

// process applies a verified notification in tx at now (the business
// clock) and returns its outcome and the payment request it was about.
func (s *Service) process(ctx context.Context, tx bun.IDB, biz *business.Business, name providers.Name, n providers.Notification, now time.Time) (CallbackOutcome, *string, error) {
	switch n.Kind {
	case providers.NotifyPayment:
		pr := new(PaymentRequest)
		q := tx.NewSelect().Model(pr).Where("business_id = ?", biz.ID).Where("provider = ?", string(name)).For("UPDATE")
		switch {
		case billing.ValidID(billing.PrefixPaymentRequest, n.Reference):
			q = q.Where("id = ?", n.Reference)
		case n.Result.ProviderRef != "":
			q = q.Where("provider_ref = ?", n.Result.ProviderRef)
		default:
			return OutcomeUnmatched, nil, nil
		}
		err := q.Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return OutcomeUnmatched, nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("find the payment request of a callback: %w", err)
		}
		if _, err := s.apply(ctx, tx, pr, n.Result, now); err != nil {
			return "", nil, err
		}
		return OutcomeProcessed, &pr.ID, nil
	case providers.NotifyTokenActivated, providers.NotifyTokenExpired:
		tok := new(PaymentToken)
		err := tx.NewSelect().Model(tok).Where("business_id = ?", biz.ID).Where("provider = ?", string(name)).
			Where("provider_token_ref = ?", n.TokenRef).For("UPDATE").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			if n.Kind == providers.NotifyTokenActivated {
				// The payment's capture saves the token; an activation that
				// arrives first has nothing to add.
				return OutcomeIgnored, nil, nil
			}
			return OutcomeUnmatched, nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("find the token of a callback: %w", err)
		}
		if n.Kind == providers.NotifyTokenExpired && tok.Status == TokenActive {
			tok.Status, tok.Updated = TokenExpired, truncate(now)
			if _, err := tx.NewUpdate().Model(tok).Column("status", "updated").WherePK().Exec(ctx); err != nil {
				return "", nil, fmt.Errorf("expire token: %w", err)
			}
			if _, err := outbox.Emit(ctx, tx, biz.ID, outbox.PaymentTokenExpiry, now, tok); err != nil {
				return "", nil, err
			}
		}
		return OutcomeProcessed, &tok.ConsentPaymentRequestID, nil
	}
	return OutcomeIgnored, nil, nil
}

// DeliverSandboxCallbacks delivers the sandbox callbacks of a business due
// at or before upTo (its clock), in time order, through the same
// processing as callbacks that arrive over HTTP, and returns how many it
// delivered. A later clock advance can call it with each instant it passes.
func (s *Service) DeliverSandboxCallbacks(ctx context.Context, businessID string, upTo time.Time) (int, error) {
	src, err := s.sandboxSource()
	if err != nil {
		return 0, err
	}
	return src.DeliverDue(ctx, businessID, upTo, func(ctx context.Context, in providers.CallbackInput) error {
		outcome, err := s.receive(ctx, providers.Sandbox, businessID, in)
		if outcome == OutcomeUnparseable {
			s.log.Error("sandbox callback could not be read; stored", "business_id", businessID, "error", err)
			return nil
		}
		return err
	})
}

// DeliverDueSandboxCallbacks delivers every sandbox callback of the
// business due by its clock now; with businessID empty, of every business.
func (s *Service) DeliverDueSandboxCallbacks(ctx context.Context, businessID string) (int, error) {
	ids := []string{businessID}
	if businessID == "" {
		src, err := s.sandboxSource()
		if err != nil {
			return 0, err
		}
		if ids, err = src.DueBusinesses(ctx); err != nil {
			return 0, err
		}
	}
	total := 0
	for _, id := range ids {
		_, now, err := s.businessNow(ctx, s.db, id)
		if err != nil {
			return total, err
		}
		n, err := s.DeliverSandboxCallbacks(ctx, id, now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Service) sandboxSource() (providers.CallbackSource, error) {
	p, err := s.provider(string(providers.Sandbox))
	if err != nil {
		return nil, err
	}
	src, ok := p.(providers.CallbackSource)
	if !ok {
		return nil, fmt.Errorf("payments: the sandbox provider does not deliver callbacks")
	}
	return src, nil
}
