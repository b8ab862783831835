package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// The sandbox charges tokens in batches and delivers its own callbacks.
var (
	_ providers.BatchCharger   = (*Provider)(nil)
	_ providers.CallbackSource = (*Provider)(nil)
)

// Charge charges a saved token. The outcome is decided once, when the key
// is first seen (see chargeOutcome), and stored: repeating the call
// returns it. With pending_then_succeed the charge answers PENDING and
// settles PendingDelay later; with timeout_once the token's first charge
// is made but answered with a timeout, as if the response were lost. It is
// ChargeBatch of one request.
func (p *Provider) Charge(ctx context.Context, cfg providers.Config, req providers.ChargeRequest) (providers.Result, error) {
	results, errs := p.ChargeBatch(ctx, cfg, []providers.ChargeRequest{req})
	return results[0], errs[0]
}

// ChargeBatch charges many saved tokens in one transaction, answering each
// request as Charge would have, had it been called for each in turn: a key
// repeated within the batch answers as a repeat of the first. The
// transaction locks the batch's tokens (in id order), reads the payments
// already stored under its keys, stores the new payments with their
// outcomes and their callbacks, and spends the timeout_once of the tokens
// whose first charge it is: four or five statements, whatever the batch's
// size. A charge made by another transaction under one of the batch's keys
// after this one read them starts the batch again, so that it answers as a
// repeat of that charge. An error of the database fails every request:
// nothing was charged.
func (p *Provider) ChargeBatch(ctx context.Context, cfg providers.Config, reqs []providers.ChargeRequest) ([]providers.Result, []error) {
	results, errs := make([]providers.Result, len(reqs)), make([]error, len(reqs))
	answers, err := p.chargeAll(ctx, reqs)
	for i, req := range reqs {
		switch {
		case err != nil:
			errs[i] = err
		case answers[i].err != nil:
			errs[i] = answers[i].err
		case answers[i].timedOut:
			errs[i] = providers.Transient(providers.Sandbox, errors.New("sandbox: timeout_once: the charge was made but its answer is lost"))
		default:
			results[i] = answers[i].pay.result(req.Now)
		}
	}
	return results, errs
}

// chargeKey names a payment by its business and idempotency key.
type chargeKey struct{ businessID, key string }

// chargeAnswer is the sandbox's answer to a charge request: the payment
// that answers it, new or stored, or why there is none. timedOut marks a
// charge made whose answer is lost (timeout_once).
type chargeAnswer struct {
	pay      *payment
	err      error
	timedOut bool
}

// chargePlan is what a batch of charges does: the answer to each request,
// the new payments (with their outcomes) and the tokens whose timeout_once
// their first charge spends.
type chargePlan struct {
	answers  []chargeAnswer
	fresh    []*payment
	timedOut []string
}

// errRaced starts a batch again: another transaction stored a payment
// under one of its keys after the batch read them.
var errRaced = errors.New("sandbox: a concurrent charge stored one of the batch's keys")

// chargeAll charges reqs in one transaction, started again on errRaced
// (each time one more key is found stored, so at most once a request),
// and then notifies the businesses that have callbacks due at once.
func (p *Provider) chargeAll(ctx context.Context, reqs []providers.ChargeRequest) ([]chargeAnswer, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		var plan *chargePlan
		err := p.cfg.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			plan, err = p.chargeTx(ctx, tx, reqs)
			return err
		})
		if errors.Is(err, errRaced) && attempt < len(reqs) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var due []string
		for _, pay := range plan.fresh {
			if !pay.SettlesAt.After(pay.Created) && !slices.Contains(due, pay.BusinessID) {
				due = append(due, pay.BusinessID)
			}
		}
		for _, id := range due {
			p.notify(ctx, id)
		}
		return plan.answers, nil
	}
}

// chargeTx decides and stores a batch of charges in tx.
func (p *Provider) chargeTx(ctx context.Context, tx bun.Tx, reqs []providers.ChargeRequest) (*chargePlan, error) {
	toks, err := p.lockTokens(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	stored, err := p.storedPayments(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	plan := p.plan(reqs, toks, stored)
	if len(plan.fresh) == 0 {
		return plan, nil
	}
	if err := insertPayments(ctx, tx, plan.fresh); err != nil {
		return nil, err
	}
	if err := schedule(ctx, tx, plan.fresh); err != nil {
		return nil, err
	}
	if len(plan.timedOut) > 0 {
		if _, err := postgres.Exec(ctx, tx, `UPDATE sandbox_tokens SET timeout_used = true WHERE id = ANY($1::text[])`, plan.timedOut); err != nil {
			return nil, fmt.Errorf("sandbox: spend timeout_once: %w", err)
		}
	}
	return plan, nil
}

// plan answers reqs in order as Charge would one after another, given
// their tokens by id and the payments stored under their keys. It changes
// both as it goes, as storing each new payment would: the new payment is
// stored for the requests after it, and a token's timeout_once is spent.
func (p *Provider) plan(reqs []providers.ChargeRequest, toks map[string]*token, stored map[chargeKey]*payment) *chargePlan {
	plan := &chargePlan{answers: make([]chargeAnswer, len(reqs))}
	for i, req := range reqs {
		tok := toks[req.TokenRef]
		if tok == nil || tok.BusinessID != req.BusinessID {
			plan.answers[i].err = providers.Declined(providers.Sandbox, "INVALID_TOKEN", "the payment token is unknown")
			continue
		}
		pay := newCharge(req, tok)
		k := chargeKey{req.BusinessID, req.IdempotencyKey}
		if prev := stored[k]; prev != nil {
			plan.answers[i] = repeatOf(prev, pay)
			continue
		}
		if err := chargeRefusal(req, tok); err != nil {
			plan.answers[i].err = err
			continue
		}
		settles := req.Now
		if tok.Behavior == behaviorPendingThenSucceed {
			settles = req.Now.Add(p.cfg.PendingDelay)
		}
		pay.conclude(chargeOutcome(tok.Behavior, req.Amount.Amount, req.Now), settles)
		plan.answers[i].pay = pay
		if tok.Behavior == behaviorTimeoutOnce && !tok.TimeoutUsed {
			tok.TimeoutUsed, plan.answers[i].timedOut = true, true
			plan.timedOut = append(plan.timedOut, tok.ID)
		}
		stored[k] = pay
		plan.fresh = append(plan.fresh, pay)
	}
	return plan
}

// newCharge is the payment req makes of tok, its outcome not yet decided.
func newCharge(req providers.ChargeRequest, tok *token) *payment {
	return &payment{
		ID: billing.NewID("sbxpr-"), BusinessID: req.BusinessID, IdempotencyKey: req.IdempotencyKey, Kind: kindCharge,
		Reference:   req.Reference,
		RequestHash: requestHash(kindCharge, req.Reference, req.Amount.Amount.String(), string(req.Amount.Currency), req.TokenRef),
		Currency:    string(req.Amount.Currency), Amount: req.Amount.Amount, ChannelCode: tok.ChannelCode, Behavior: tok.Behavior,
		TokenID: &tok.ID, Created: req.Now,
	}
}

// repeatOf answers a request for pay whose key names prev: prev again, or
// errKeyReused when the request is another.
func repeatOf(prev, pay *payment) chargeAnswer {
	if !prev.sameRequest(pay) {
		return chargeAnswer{err: errKeyReused}
	}
	return chargeAnswer{pay: prev}
}

// chargeRefusal says why tok cannot make req's new charge (a cancelled
// token, another currency), or nil.
func chargeRefusal(req providers.ChargeRequest, tok *token) error {
	if tok.Canceled {
		return providers.Declined(providers.Sandbox, "INVALID_TOKEN", "the payment token was cancelled")
	}
	if tok.Currency != string(req.Amount.Currency) {
		return providers.Invalid(providers.Sandbox, "INVALID_VALUE_ERROR", "the payment token charges "+tok.Currency)
	}
	return nil
}

// lockTokens locks the tokens reqs name, in id order, and returns them by
// id. A token of another business than the request's is there too: plan
// treats it as unknown.
func (p *Provider) lockTokens(ctx context.Context, tx bun.Tx, reqs []providers.ChargeRequest) (map[string]*token, error) {
	ids := make([]string, 0, len(reqs))
	for _, req := range reqs {
		ids = append(ids, req.TokenRef)
	}
	var toks []*token
	if err := p.query(ctx, tx, &toks, `SELECT * FROM sandbox_tokens WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, ids); err != nil {
		return nil, fmt.Errorf("sandbox: read tokens: %w", err)
	}
	byID := make(map[string]*token, len(toks))
	for _, t := range toks {
		byID[t.ID] = t
	}
	return byID, nil
}

// storedPayments locks the payments stored under reqs' keys, in id order,
// and returns them by key.
func (p *Provider) storedPayments(ctx context.Context, tx bun.Tx, reqs []providers.ChargeRequest) (map[chargeKey]*payment, error) {
	businesses, keys := make([]string, len(reqs)), make([]string, len(reqs))
	for i, req := range reqs {
		businesses[i], keys[i] = req.BusinessID, req.IdempotencyKey
	}
	// The keys are looked up one unique-index probe each (LATERAL … LIMIT
	// 1), whatever the statistics say: as a semi-join, the planner, with
	// no statistics of a table that was empty when last analyzed, read the
	// whole table for every batch. The payments found, usually none, are
	// then locked by id, in id order.
	var ids []string
	if err := p.query(ctx, tx, &ids, `SELECT s.id FROM unnest($1::text[], $2::text[]) AS k(business_id, key),
		LATERAL (SELECT id FROM sandbox_payments WHERE business_id = k.business_id AND idempotency_key = k.key LIMIT 1) AS s`,
		businesses, keys); err != nil {
		return nil, fmt.Errorf("sandbox: find payments: %w", err)
	}
	var pays []*payment
	if len(ids) > 0 {
		if err := p.query(ctx, tx, &pays, `SELECT * FROM sandbox_payments WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, ids); err != nil {
			return nil, fmt.Errorf("sandbox: read payments: %w", err)
		}
	}
	byKey := make(map[chargeKey]*payment, len(pays))
	for _, pay := range pays {
		byKey[chargeKey{pay.BusinessID, pay.IdempotencyKey}] = pay
	}
	return byKey, nil
}

// query runs query in tx with args bound as parameters ($1, …) and scans
// its rows into dest, a pointer to a slice of models.
func (p *Provider) query(ctx context.Context, tx bun.Tx, dest any, query string, args ...any) error {
	rows, err := tx.Tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return p.cfg.DB.ScanRows(ctx, rows, dest)
}

// insertPaymentsSQL stores settled charges from arrays bound as
// parameters. A key stored meanwhile by another transaction is skipped
// (the statement then stores fewer rows than it was given).
const insertPaymentsSQL = `INSERT INTO sandbox_payments (id, business_id, idempotency_key, kind, reference, request_hash, currency, amount,
		channel_code, behavior, token_id, payment_ref, outcome, failure_code, settles_at, created)
	SELECT id, business_id, idempotency_key, kind, reference, request_hash, currency, amount::numeric, channel_code, behavior, token_id,
		payment_ref, outcome, failure_code, settles_at, created
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[])
		AS p(id, business_id, idempotency_key, kind, reference, request_hash, currency, amount, channel_code, behavior, token_id,
			payment_ref, outcome, failure_code, settles_at, created)
	ON CONFLICT (business_id, idempotency_key) DO NOTHING`

// insertPayments stores new settled payments, or returns errRaced when
// one of their keys is taken.
func insertPayments(ctx context.Context, tx bun.Tx, pays []*payment) error {
	n := len(pays)
	ids, businesses, keys, kinds, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hashes, currencies, amounts, channels, behaviors := make([][]byte, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	tokens, payRefs, outcomes, failures := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	settles, created := make([]*time.Time, n), make([]time.Time, n)
	for i, pay := range pays {
		ids[i], businesses[i], keys[i], kinds[i], refs[i] = pay.ID, pay.BusinessID, pay.IdempotencyKey, pay.Kind, pay.Reference
		hashes[i], currencies[i], amounts[i], channels[i], behaviors[i] = pay.RequestHash, pay.Currency, pay.Amount.String(), pay.ChannelCode, pay.Behavior
		tokens[i], payRefs[i], outcomes[i], failures[i] = pay.TokenID, pay.PaymentRef, pay.Outcome, pay.FailureCode
		settles[i], created[i] = pay.SettlesAt, pay.Created
	}
	res, err := postgres.Exec(ctx, tx, insertPaymentsSQL, ids, businesses, keys, kinds, refs, hashes, currencies, amounts, channels, behaviors,
		tokens, payRefs, outcomes, failures, settles, created)
	if err != nil {
		return fmt.Errorf("sandbox: insert payments: %w", err)
	}
	stored, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sandbox: insert payments: %w", err)
	}
	if stored != int64(n) {
		return errRaced
	}
	return nil
}
