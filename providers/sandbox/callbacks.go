package sandbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// callback is a row of sandbox_callbacks: a callback the sandbox will send,
// due at a time of the business's clock.
type callback struct {
	bun.BaseModel `bun:"table:sandbox_callbacks"`

	ID          int64      `bun:"id,pk,autoincrement"`
	BusinessID  string     `bun:"business_id"`
	PaymentID   string     `bun:"payment_id"`
	Event       string     `bun:"event"`
	DueAt       time.Time  `bun:"due_at"`
	Body        []byte     `bun:"body"`
	DeliveredAt *time.Time `bun:"delivered_at"`
	Created     time.Time  `bun:"created"`
}

// webhook is the body of a sandbox callback, in the shape of Xendit's
// payment and payment token webhooks.
type webhook struct {
	Event      string      `json:"event"`
	BusinessID string      `json:"business_id"`
	Created    string      `json:"created"`
	Data       webhookData `json:"data"`
}

type webhookData struct {
	PaymentID        *string         `json:"payment_id,omitempty"`
	PaymentRequestID string          `json:"payment_request_id"`
	ReferenceID      string          `json:"reference_id"`
	PaymentTokenID   *string         `json:"payment_token_id"`
	Currency         string          `json:"currency"`
	RequestAmount    json.RawMessage `json:"request_amount"`
	ChannelCode      string          `json:"channel_code"`
	Status           string          `json:"status"`
	FailureCode      *string         `json:"failure_code"`
}

// Sandbox event types (Xendit's names).
const (
	eventCapture    = "payment.capture"
	eventFailure    = "payment.failure"
	eventActivation = "payment_token.activation"
)

// schedule stores the callbacks of a settled payment, due at: the payment's
// outcome, and for a linking that saved a token the token's activation.
func (p *Provider) schedule(ctx context.Context, tx bun.Tx, pay *payment, at time.Time) error {
	data := webhookData{
		PaymentID: pay.PaymentRef, PaymentRequestID: pay.ID, ReferenceID: pay.Reference, Currency: pay.Currency,
		RequestAmount: amountJSON(pay.Amount), ChannelCode: pay.ChannelCode, Status: *pay.Outcome, FailureCode: pay.FailureCode,
	}
	if pay.TokenID != nil {
		data.PaymentTokenID = pay.TokenID
	}
	events := []webhook{{Event: eventCapture, Data: data}}
	if *pay.Outcome != string(providers.StatusSucceeded) {
		events[0].Event = eventFailure
	} else if pay.Kind == kindLink {
		tok := data
		tok.PaymentID, tok.Status, tok.FailureCode = nil, "ACTIVE", nil
		events = append(events, webhook{Event: eventActivation, Data: tok})
	}
	for _, ev := range events {
		ev.BusinessID = pay.BusinessID
		ev.Created = billing.FormatTime(at)
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		cb := &callback{BusinessID: pay.BusinessID, PaymentID: pay.ID, Event: ev.Event, DueAt: at, Body: body, Created: at}
		if _, err := tx.NewInsert().Model(cb).Exec(ctx); err != nil {
			return fmt.Errorf("sandbox: schedule callback: %w", err)
		}
	}
	return nil
}

// webhookIDHeader carries a sandbox callback's id, its dedupe key.
const webhookIDHeader = "Webhook-Id"

// DeliverDue hands the business's callbacks due at or before upTo (its
// clock) to receive, one at a time in order of due time, and marks each
// delivered once receive returns nil. Delivery is at least once, as with a
// real provider: a callback whose receipt was committed but not marked is
// delivered again, and receive must treat it as a repeat.
//
// One delivery of a business runs at a time: a call that finds the
// business's next callback being delivered by another returns at once,
// since that one carries on until nothing is due (waiting for it instead
// would hold a connection per waiting call, and a charge at volume asks
// for a delivery per payment).
func (p *Provider) DeliverDue(ctx context.Context, businessID string, upTo time.Time, receive func(context.Context, providers.CallbackInput) error) (int, error) {
	n := 0
	for {
		delivered := false
		err := p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			cb := new(callback)
			err := tx.NewSelect().Model(cb).Where("business_id = ?", businessID).Where("delivered_at IS NULL").
				Where("due_at <= ?", upTo).OrderExpr("due_at, id").Limit(1).For("UPDATE NOWAIT").Scan(ctx)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
				return errDelivering
			}
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("sandbox: next callback: %w", err)
			}
			h := http.Header{}
			h.Set(webhookIDHeader, "sbxcb-"+strconv.FormatInt(cb.ID, 10))
			h.Set("Content-Type", "application/json")
			if err := receive(ctx, providers.CallbackInput{Header: h, Body: cb.Body}); err != nil {
				return fmt.Errorf("sandbox: deliver callback %d: %w", cb.ID, err)
			}
			delivered = true
			_, err = tx.NewUpdate().Model(cb).Set("delivered_at = ?", upTo).WherePK().Exec(ctx)
			return err
		})
		if errors.Is(err, errDelivering) {
			return n, nil
		}
		if err != nil || !delivered {
			return n, err
		}
		n++
	}
}

// errDelivering ends a delivery that found another at work.
var errDelivering = errors.New("sandbox: another delivery of the business is at work")

// NextDue returns when the business's earliest undelivered callback is due.
func (p *Provider) NextDue(ctx context.Context, businessID string) (time.Time, bool, error) {
	var at sql.NullTime
	err := p.cfg.DB.NewRaw(`SELECT min(due_at) FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL`, businessID).Scan(ctx, &at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sandbox: next callback: %w", err)
	}
	return at.Time.UTC(), at.Valid, nil
}

// DueBusinesses lists the sandbox businesses with a callback due by their
// own clock.
func (p *Provider) DueBusinesses(ctx context.Context) ([]string, error) {
	var ids []string
	err := p.cfg.DB.NewRaw(`SELECT DISTINCT c.business_id FROM sandbox_callbacks AS c
		JOIN businesses AS b ON b.id = c.business_id
		WHERE c.delivered_at IS NULL AND c.due_at <= b.sandbox_now`).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("sandbox: due businesses: %w", err)
	}
	return ids, nil
}

// ParseCallback reads a sandbox callback. Sandbox callbacks never travel
// over a network: they are rows the sandbox wrote, handed over by
// DeliverDue, and no HTTP endpoint accepts them; so there is nothing to
// verify beyond the business they belong to.
func (p *Provider) ParseCallback(cfg providers.Config, in providers.CallbackInput, now time.Time) (providers.Notification, error) {
	return parseWebhook(cfg.BusinessID, in)
}

func parseWebhook(businessID string, in providers.CallbackInput) (providers.Notification, error) {
	key := in.Header.Get(webhookIDHeader)
	if key == "" {
		sum := sha256.Sum256(in.Body)
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	n := providers.Notification{DedupeKey: key}
	var w webhook
	if err := json.Unmarshal(in.Body, &w); err != nil {
		return n, fmt.Errorf("%w: %v", providers.ErrMalformed, err)
	}
	if w.BusinessID != businessID {
		return n, fmt.Errorf("%w: the callback is for another business", providers.ErrUnverified)
	}
	n.EventType = w.Event
	d := w.Data
	switch w.Event {
	case eventCapture, eventFailure:
		n.Kind = providers.NotifyPayment
		n.Reference = d.ReferenceID
		n.Result = providers.Result{Status: providers.Status(d.Status), ProviderRef: d.PaymentRequestID, ChannelCode: d.ChannelCode}
		if d.PaymentID != nil {
			n.Result.PaymentRef = *d.PaymentID
		}
		if d.PaymentTokenID != nil {
			n.Result.TokenRef = *d.PaymentTokenID
		}
		if d.FailureCode != nil {
			n.Result.FailureCode = *d.FailureCode
		}
		if n.Result.Status != providers.StatusSucceeded && n.Result.Status != providers.StatusFailed {
			return n, fmt.Errorf("%w: unknown status %q", providers.ErrMalformed, d.Status)
		}
	case eventActivation:
		n.Kind = providers.NotifyTokenActivated
		n.Reference = d.ReferenceID
		if d.PaymentTokenID != nil {
			n.TokenRef = *d.PaymentTokenID
		}
	default:
		n.Kind = providers.NotifyIgnored
	}
	return n, nil
}
