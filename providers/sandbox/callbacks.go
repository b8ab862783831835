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
	"github.com/tagihan/billing/internal/postgres"
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

// schedule stores the callbacks of settled payments, in one statement,
// each payment's due when it settles (its SettlesAt).
func schedule(ctx context.Context, tx bun.Tx, pays []*payment) error {
	var cbs []*callback
	for _, pay := range pays {
		more, err := callbacksOf(pay)
		if err != nil {
			return err
		}
		cbs = append(cbs, more...)
	}
	if err := insertCallbacks(ctx, tx, cbs); err != nil {
		return fmt.Errorf("sandbox: schedule %d callbacks: %w", len(cbs), err)
	}
	return nil
}

// callbacksOf returns the callbacks of a settled payment, due and dated
// when it settles: the payment's outcome, and for a linking that saved a
// token the token's activation.
func callbacksOf(pay *payment) ([]*callback, error) {
	at := *pay.SettlesAt
	data := webhookData{
		PaymentID: pay.PaymentRef, PaymentRequestID: pay.ID, ReferenceID: pay.Reference, Currency: pay.Currency,
		RequestAmount: amountJSON(pay.Amount), ChannelCode: pay.ChannelCode, Status: *pay.Outcome, FailureCode: pay.FailureCode,
		PaymentTokenID: pay.TokenID,
	}
	events := []webhook{{Event: eventCapture, Data: data}}
	if *pay.Outcome != string(providers.StatusSucceeded) {
		events[0].Event = eventFailure
	} else if pay.Kind == kindLink {
		tok := data
		tok.PaymentID, tok.Status, tok.FailureCode = nil, "ACTIVE", nil
		events = append(events, webhook{Event: eventActivation, Data: tok})
	}
	cbs := make([]*callback, len(events))
	for i, ev := range events {
		ev.BusinessID = pay.BusinessID
		ev.Created = billing.FormatTime(at)
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("sandbox: callback of payment %s: %w", pay.ID, err)
		}
		cbs[i] = &callback{BusinessID: pay.BusinessID, PaymentID: pay.ID, Event: ev.Event, DueAt: at, Body: body, Created: at}
	}
	return cbs, nil
}

// insertCallbacksSQL stores callbacks from arrays bound as parameters, in
// the arrays' order, so that their ids follow it.
const insertCallbacksSQL = `INSERT INTO sandbox_callbacks (business_id, payment_id, event, due_at, body, created)
	SELECT business_id, payment_id, event, due_at, body, created
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[], $6::timestamptz[])
		WITH ORDINALITY AS c(business_id, payment_id, event, due_at, body, created, n)
	ORDER BY n`

// insertCallbacks stores cbs in one statement, their ids in cbs' order.
func insertCallbacks(ctx context.Context, tx bun.Tx, cbs []*callback) error {
	n := len(cbs)
	businesses, pays, events, dues, bodies, created := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n),
		make([][]byte, n), make([]time.Time, n)
	for i, cb := range cbs {
		businesses[i], pays[i], events[i], dues[i], bodies[i], created[i] = cb.BusinessID, cb.PaymentID, cb.Event, cb.DueAt, cb.Body, cb.Created
	}
	_, err := postgres.Exec(ctx, tx, insertCallbacksSQL, businesses, pays, events, dues, bodies, created)
	return err
}

// webhookIDHeader carries a sandbox callback's id, its dedupe key.
const webhookIDHeader = "Webhook-Id"

// DeliverDue hands the business's callbacks due at or before upTo (its
// clock) to receive in order of due time, in batches of at most size (one
// when size < 1), each in a transaction of its own that marks the batch
// delivered once receive returns nil. It carries on until nothing is due
// and returns how many it delivered. Delivery is at least once, as with a
// real provider: a callback whose receipt was committed but not marked is
// delivered again, and receive must treat it as a repeat.
//
// One delivery of a business runs at a time: a batch is the business's
// first due callbacks, locked with NOWAIT, so a call that finds any of them
// being delivered by another returns at once, since that one carries on
// until nothing is due (waiting for it instead would hold a connection per
// waiting call, and a charge at volume asks for a delivery per payment).
// Locking the whole batch so, rather than skipping rows another holds,
// keeps every batch in time order.
func (p *Provider) DeliverDue(ctx context.Context, businessID string, upTo time.Time, size int, receive func(context.Context, []providers.CallbackInput) error) (int, error) {
	size = max(size, 1)
	total := 0
	for {
		n, err := p.deliverBatch(ctx, businessID, upTo, size, receive)
		total += n
		if errors.Is(err, errDelivering) {
			return total, nil
		}
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// deliverBatch delivers the business's next size callbacks due by upTo in
// one transaction (see DeliverDue) and returns how many it delivered.
func (p *Provider) deliverBatch(ctx context.Context, businessID string, upTo time.Time, size int, receive func(context.Context, []providers.CallbackInput) error) (int, error) {
	var cbs []*callback
	err := p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewSelect().Model(&cbs).Column("id", "body").Where("business_id = ?", businessID).Where("delivered_at IS NULL").
			Where("due_at <= ?", upTo).OrderExpr("due_at, id").Limit(int64(size)).For("UPDATE NOWAIT").Scan(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return errDelivering
		}
		if err != nil {
			return fmt.Errorf("sandbox: due callbacks: %w", err)
		}
		if len(cbs) == 0 {
			return nil
		}
		ins, ids := make([]providers.CallbackInput, len(cbs)), make([]int64, len(cbs))
		for i, cb := range cbs {
			h := http.Header{}
			h.Set(webhookIDHeader, "sbxcb-"+strconv.FormatInt(cb.ID, 10))
			h.Set("Content-Type", "application/json")
			ins[i], ids[i] = providers.CallbackInput{Header: h, Body: cb.Body}, cb.ID
		}
		if err := receive(ctx, ins); err != nil {
			return fmt.Errorf("sandbox: deliver callbacks %d to %d: %w", ids[0], ids[len(ids)-1], err)
		}
		if _, err := postgres.Exec(ctx, tx, `UPDATE sandbox_callbacks SET delivered_at = $1 WHERE id = ANY($2::bigint[])`, upTo, ids); err != nil {
			return fmt.Errorf("sandbox: mark callbacks delivered: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(cbs), nil
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
