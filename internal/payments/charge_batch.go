package payments

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// chargeConcurrency is how many provider calls ChargeBatch makes at once
// to a provider that charges one request per call.
const chargeConcurrency = 16

// ChargeBatch is Charge for many charges of one business at once, with
// the same guarantees for each: the requests are committed with their
// provider keys before the provider is called, a key seen before resumes
// its request and never charges twice, and each answer is recorded. It
// does with a few statements per batch what Charge does with a few per
// charge: one transaction stores the new requests, the provider is asked
// once (providers.BatchCharger) or concurrently, and one transaction
// records every answer, settling the requests that reached a final state
// together (Config.SettledBatchFunc). The answer for ps[i] is prs[i] or
// errs[i], as Charge would return them; a key repeated within ps is an
// idempotency error for all but its first charge.
func (s *Service) ChargeBatch(ctx context.Context, biz *business.Business, now time.Time, ps []ChargeParams) (prs []*PaymentRequest, errs []error) {
	prs, errs = make([]*PaymentRequest, len(ps)), make([]error, len(ps))
	now = truncate(now)
	todo := screen(ps, errs)
	if len(todo) == 0 {
		return prs, errs
	}
	toks, send, err := s.openCharges(ctx, biz.ID, now, ps, todo, prs, errs)
	if isUniqueViolation(err) {
		// Another caller stored one of the keys between our look-up and
		// our insert: a second pass finds its request and resumes it, as
		// Charge would.
		toks, send, err = s.openCharges(ctx, biz.ID, now, ps, todo, prs, errs)
	}
	if err != nil {
		for _, i := range todo {
			prs[i], errs[i] = nil, err
		}
		return prs, errs
	}
	s.sendCharges(ctx, biz, now, prs, errs, send, toks)
	return prs, errs
}

// openCharges stores, in one transaction, a SENDING request for each
// charge ps[todo...] whose key is new, and finds the request of each key
// seen before (a resumed charge). It fills prs and errs, and returns the
// tokens charged, by id, and the indexes of the requests to send: the new
// ones and those cut short before their answer was recorded.
func (s *Service) openCharges(ctx context.Context, businessID string, now time.Time, ps []ChargeParams, todo []int,
	prs []*PaymentRequest, errs []error) (map[string]*PaymentToken, []int, error) {
	var toks map[string]*PaymentToken
	var send []int
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		send = nil
		keys, tokenIDs := make([]string, len(todo)), make([]string, len(todo))
		for n, i := range todo {
			prs[i], errs[i] = nil, nil
			keys[n], tokenIDs[n] = ps[i].IdempotencyKey, ps[i].PaymentTokenID
		}
		var found []*PaymentRequest
		if err := tx.NewSelect().Model(&found).Where("business_id = ?", businessID).Where("provider_key IN (?)", bun.In(keys)).
			Order("id").For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("find payment requests by provider key: %w", err)
		}
		byKey := make(map[string]*PaymentRequest, len(found))
		for _, pr := range found {
			byKey[pr.ProviderKey] = pr
		}
		var err error
		if toks, err = tokensByID(ctx, tx, businessID, tokenIDs); err != nil {
			return err
		}
		var fresh []*PaymentRequest
		for _, i := range todo {
			p := &ps[i]
			if pr := byKey[p.IdempotencyKey]; pr != nil {
				if !p.sameAs(pr) {
					errs[i] = errKeyReused
					continue
				}
				prs[i] = pr
				if pr.Status == StatusSending {
					send = append(send, i)
				}
				continue
			}
			pr, err := p.newCharge(businessID, toks, now)
			if err != nil {
				errs[i] = err
				continue
			}
			prs[i] = pr
			fresh = append(fresh, pr)
			send = append(send, i)
		}
		if err := insertCharges(ctx, tx, fresh); err != nil {
			return fmt.Errorf("insert %d payment requests: %w", len(fresh), err)
		}
		return nil
	})
	return toks, send, err
}

// OpenCharges is the first half of ChargeBatch for charges whose keys the
// caller has just made in tx, its own transaction, and never used before
// (a new attempt's key): it stores a SENDING request for each charge of
// ps in tx, without looking for requests under the same keys, since the
// unique (business_id, provider_key) index refuses a repeat and fails tx.
// toks are the tokens charged, by id, as the caller read them in tx. The
// answer for ps[i] is prs[i] or errs[i]; a charge that cannot be made
// (its token is not ACTIVE, or of another currency) gets its error, as
// ChargeBatch would give it. After tx commits, SendCharges sends prs.
// Writing the requests in the caller's transaction saves a transaction,
// a look-up by key and a read of the tokens per batch (docs/engine.md).
func (s *Service) OpenCharges(ctx context.Context, tx bun.IDB, businessID string, now time.Time, ps []ChargeParams,
	toks map[string]*PaymentToken) (prs []*PaymentRequest, errs []error, err error) {
	prs, errs = make([]*PaymentRequest, len(ps)), make([]error, len(ps))
	now = truncate(now)
	var fresh []*PaymentRequest
	for _, i := range screen(ps, errs) {
		pr, err := ps[i].newCharge(businessID, toks, now)
		if err != nil {
			errs[i] = err
			continue
		}
		prs[i], fresh = pr, append(fresh, pr)
	}
	if err := insertCharges(ctx, tx, fresh); err != nil {
		return nil, nil, fmt.Errorf("insert %d payment requests: %w", len(fresh), err)
	}
	return prs, errs, nil
}

// SendCharges is the second half of ChargeBatch for the requests that
// OpenCharges stored and its caller committed: it asks the provider for
// each non-nil prs[i] (toks are their tokens, by id) and records the
// answers, and returns each request as it then is, or its error, as
// ChargeBatch would.
func (s *Service) SendCharges(ctx context.Context, biz *business.Business, now time.Time, prs []*PaymentRequest,
	toks map[string]*PaymentToken) ([]*PaymentRequest, []error) {
	out, errs := make([]*PaymentRequest, len(prs)), make([]error, len(prs))
	var send []int
	for i, pr := range prs {
		if pr != nil {
			out[i], send = pr, append(send, i)
		}
	}
	s.sendCharges(ctx, biz, truncate(now), out, errs, send, toks)
	return out, errs
}

// screen sets errs[i] for each charge ps[i] that is invalid or repeats a
// key of an earlier one in ps, and returns the indexes of the others.
func screen(ps []ChargeParams, errs []error) []int {
	var todo []int
	seen := make(map[string]bool, len(ps))
	for i := range ps {
		switch err := ps[i].validate(); {
		case err != nil:
			errs[i] = err
		case seen[ps[i].IdempotencyKey]:
			errs[i] = errKeyReused
		default:
			seen[ps[i].IdempotencyKey] = true
			todo = append(todo, i)
		}
	}
	return todo
}

// newCharge is the SENDING request of charge p of the business, for its
// token among toks (the business's tokens, by id), not yet stored; a
// token that is not there, or not the business's, is DATA_NOT_FOUND.
func (p *ChargeParams) newCharge(businessID string, toks map[string]*PaymentToken, now time.Time) (*PaymentRequest, error) {
	tok := toks[p.PaymentTokenID]
	if tok == nil || tok.BusinessID != businessID || !billing.ValidID(billing.PrefixPaymentToken, p.PaymentTokenID) {
		return nil, billing.NotFound("payment token")
	}
	pr, err := p.request(businessID, tok)
	if err != nil {
		return nil, err
	}
	pr.sending(now)
	return pr, nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// tokensSQL reads the payment tokens $2 of business $1.
var tokensSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*PaymentToken)(nil)).Where("business_id = $1").Where("id = ANY($2::text[])").String()
})

// tokensByID reads the business's tokens ids, by id (another business's
// are not found).
func tokensByID(ctx context.Context, db bun.IDB, businessID string, ids []string) (map[string]*PaymentToken, error) {
	var rows []*PaymentToken
	if err := tokensSQL.Scan(ctx, db, &rows, businessID, ids); err != nil {
		return nil, fmt.Errorf("read payment tokens: %w", err)
	}
	out := make(map[string]*PaymentToken, len(rows))
	for _, t := range rows {
		out[t.ID] = t
	}
	return out, nil
}

// sendCharges asks the provider for the requests prs[send...] (SENDING,
// committed) and records its answers, as send does for one request.
func (s *Service) sendCharges(ctx context.Context, biz *business.Business, now time.Time, prs []*PaymentRequest, errs []error,
	send []int, toks map[string]*PaymentToken) {
	if len(send) == 0 {
		return
	}
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		for _, i := range send {
			prs[i], errs[i] = nil, err
		}
		return
	}
	results, callErrs := s.callCharges(ctx, cfg, now, prs, send, toks)
	var record []int
	for n, i := range send {
		pr := prs[i]
		if s.cfg.AfterProviderCallFunc != nil {
			if herr := s.cfg.AfterProviderCallFunc(ctx, pr.ID); herr != nil {
				prs[i], errs[i] = nil, herr
				continue
			}
		}
		res, ok := s.answer(pr, results[n], callErrs[n])
		if !ok {
			continue // SENDING, for the reconciler
		}
		results[n] = res
		record = append(record, n)
	}
	if len(record) == 0 {
		return
	}
	ids := make([]string, len(record))
	answers := make(map[string]providers.Result, len(record))
	for k, n := range record {
		ids[k] = prs[send[n]].ID
		answers[ids[k]] = results[n]
	}
	recorded, err := s.recordCharges(ctx, biz.ID, ids, answers, now)
	for _, n := range record {
		i := send[n]
		if err != nil {
			prs[i], errs[i] = nil, err
			continue
		}
		prs[i] = recorded[prs[i].ID]
	}
}

// callCharges makes the provider calls for prs[send...]: one call for the
// lot to a provider that charges in batches, else one call per request,
// chargeConcurrency at a time. A request whose token or provider cannot be
// found gets an error instead of a call.
func (s *Service) callCharges(ctx context.Context, cfg providers.Config, now time.Time, prs []*PaymentRequest, send []int,
	toks map[string]*PaymentToken) ([]providers.Result, []error) {
	results, errs := make([]providers.Result, len(send)), make([]error, len(send))
	byProvider := map[string][]int{}
	reqs := make([]providers.ChargeRequest, len(send))
	for n, i := range send {
		pr := prs[i]
		tok := toks[*pr.PaymentTokenID]
		if tok == nil {
			errs[n] = fmt.Errorf("payment request %s: its token %s is gone", pr.ID, *pr.PaymentTokenID)
			continue
		}
		reqs[n] = chargeRequest(pr, tok, now)
		byProvider[pr.Provider] = append(byProvider[pr.Provider], n)
	}
	names := make([]string, 0, len(byProvider))
	for name := range byProvider {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ns := byProvider[name]
		prov, err := s.provider(name)
		if err != nil {
			for _, n := range ns {
				errs[n] = err
			}
			continue
		}
		if bc, ok := prov.(providers.BatchCharger); ok {
			batch := make([]providers.ChargeRequest, len(ns))
			for k, n := range ns {
				batch[k] = reqs[n]
			}
			res, es := bc.ChargeBatch(ctx, cfg, batch)
			for k, n := range ns {
				results[n], errs[n] = res[k], es[k]
			}
			continue
		}
		sem := make(chan struct{}, chargeConcurrency)
		var wg sync.WaitGroup
		for _, n := range ns {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				results[n], errs[n] = prov.Charge(ctx, cfg, reqs[n])
			}()
		}
		wg.Wait()
	}
	return results, errs
}

// answer turns what the provider answered for pr into the result to
// record: a decline or a refusal is a failed payment; a call that got no
// answer, or failed before reaching the provider (ok false), leaves pr as
// it is (SENDING) for the reconciler.
func (s *Service) answer(pr *PaymentRequest, res providers.Result, err error) (providers.Result, bool) {
	switch providers.KindOf(err) {
	case "":
		if err != nil {
			s.log.Warn("payment provider call failed; the request stays pending for the reconciler",
				"payment_request_id", pr.ID, "provider", pr.Provider, "error", err.Error())
			return res, false
		}
		return res, true
	case providers.KindDeclined:
		e, _ := providers.AsError(err)
		return providers.Result{Status: providers.StatusFailed, FailureCode: e.Code}, true
	case providers.KindInvalid:
		e, _ := providers.AsError(err)
		s.log.Warn("payment provider refused a request", "payment_request_id", pr.ID, "provider", pr.Provider, "error", err.Error())
		code := e.Code
		if code == "" {
			code = "PROVIDER_REJECTED"
		}
		return providers.Result{Status: providers.StatusFailed, FailureCode: code}, true
	}
	s.log.Warn("payment provider did not answer; the request stays pending for the reconciler",
		"payment_request_id", pr.ID, "provider", pr.Provider, "error", err.Error())
	return res, false
}

// lockRequestsSQL reads and locks the payment requests $2 of business $1,
// in id order.
var lockRequestsSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*PaymentRequest)(nil)).Where("business_id = $1").Where("id = ANY($2::text[])").
		Order("id").For("UPDATE").String()
})

// recordCharges applies the provider's answers to the requests ids in one
// transaction and returns the requests as they then are, by id. A request
// still SENDING that its answer settles is recorded with the others of
// the batch, a few statements for all (settleCharges); any other goes
// through apply, as one answer would.
func (s *Service) recordCharges(ctx context.Context, businessID string, ids []string, answers map[string]providers.Result,
	now time.Time) (map[string]*PaymentRequest, error) {
	out := make(map[string]*PaymentRequest, len(ids))
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var locked []*PaymentRequest
		if err := lockRequestsSQL.Scan(ctx, tx, &locked, businessID, ids); err != nil {
			return fmt.Errorf("lock %d payment requests: %w", len(ids), err)
		}
		var settling []*PaymentRequest
		var results []providers.Result
		for _, pr := range locked {
			out[pr.ID] = pr
			res := answers[pr.ID]
			if settlesCharge(pr, res) {
				settling, results = append(settling, pr), append(results, res)
				continue
			}
			if _, err := s.apply(ctx, tx, pr, res, now); err != nil {
				return err
			}
		}
		return s.settleCharges(ctx, tx, settling, results, now)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// settlesCharge reports whether answer res brings pr, a charge of a saved
// token not yet answered, to its final state: the case settleCharges
// records in sets.
func settlesCharge(pr *PaymentRequest, res providers.Result) bool {
	return pr.Type == TypePay && !pr.PaymentLink && pr.PaymentTokenID != nil && pr.Status == StatusSending &&
		(res.Status == providers.StatusSucceeded || res.Status == providers.StatusFailed)
}

// settleCharges records the answers results of the requests prs (locked,
// each settled by its answer, see settlesCharge) as apply would one by
// one, with one statement for their payments, one for the requests and
// one for their events; then settles them with Config.SettledBatchFunc.
func (s *Service) settleCharges(ctx context.Context, tx bun.IDB, prs []*PaymentRequest, results []providers.Result, now time.Time) error {
	if len(prs) == 0 {
		return nil
	}
	pys := make([]*Payment, len(prs))
	events := make([]*outbox.Event, len(prs))
	for i, pr := range prs {
		res := results[i]
		s.noteAnswer(pr, res)
		py := newPayment(pr, res, now)
		kind := outbox.PaymentCapture
		if res.Status == providers.StatusSucceeded {
			captured(pr, py, now)
		} else {
			declined(pr, py, res)
			kind = outbox.PaymentFailure
		}
		pr.moveTo(string(res.Status), now)
		e, err := outbox.New(pr.BusinessID, kind, now, newPaymentEvent(pr, py))
		if err != nil {
			return err
		}
		pys[i], events[i] = py, e
	}
	if err := insertPayments(ctx, tx, pys); err != nil {
		return fmt.Errorf("insert %d payments: %w", len(pys), err)
	}
	if err := saveSettled(ctx, tx, prs); err != nil {
		return fmt.Errorf("update %d payment requests: %w", len(prs), err)
	}
	if err := outbox.EmitAll(ctx, tx, events); err != nil {
		return err
	}
	if s.cfg.SettledBatchFunc != nil {
		if err := s.cfg.SettledBatchFunc(ctx, tx, prs, now); err != nil {
			return fmt.Errorf("%d payment requests settled: %w", len(prs), err)
		}
		return nil
	}
	if s.cfg.SettledFunc == nil {
		return nil
	}
	for _, pr := range prs {
		if err := s.cfg.SettledFunc(ctx, tx, pr, nil, now); err != nil {
			return fmt.Errorf("payment request %s settled: %w", pr.ID, err)
		}
	}
	return nil
}

// The rows of a batch are written from arrays bound as parameters
// (unnest), one statement per table, as the engine writes its batches.

const insertChargesSQL = `INSERT INTO payment_requests (id, business_id, customer_id, type, reference_id, country, currency,
		request_amount, capture_method, channel_code, description, payment_token_id, status, provider, provider_key, next_check_at,
		created, updated)
	SELECT id, business_id, customer_id, type, reference_id, country, currency, request_amount::numeric, capture_method, channel_code,
		description, payment_token_id, status, provider, provider_key, next_check_at, created, updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
		$10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[],
		$18::timestamptz[])
		AS r(id, business_id, customer_id, type, reference_id, country, currency, request_amount, capture_method, channel_code,
			description, payment_token_id, status, provider, provider_key, next_check_at, created, updated)`

// insertCharges writes new charges of saved tokens (PAY, SENDING, no
// metadata or channel properties) as insert would, each.
func insertCharges(ctx context.Context, tx bun.IDB, prs []*PaymentRequest) error {
	if len(prs) == 0 {
		return nil
	}
	n := len(prs)
	ids, businesses, customers, types, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	countries, currencies, amounts, methods, channels := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	descriptions, tokens, statuses, provs, keys := make([]*string, n), make([]*string, n), make([]string, n), make([]string, n), make([]string, n)
	checks, created, updated := make([]*time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, pr := range prs {
		if pr.Metadata != nil || pr.ChannelProperties != nil || pr.PaymentLink || pr.IdempotencyKey != nil {
			return fmt.Errorf("payment request %s is not a plain charge of a saved token", pr.ID)
		}
		ids[i], businesses[i], customers[i], types[i], refs[i] = pr.ID, pr.BusinessID, pr.CustomerID, pr.Type, pr.ReferenceID
		countries[i], currencies[i], amounts[i], methods[i], channels[i] = pr.Country, pr.Currency, pr.RequestAmount.String(),
			pr.CaptureMethod, pr.ChannelCode
		descriptions[i], tokens[i], statuses[i], provs[i], keys[i] = pr.Description, pr.PaymentTokenID, pr.Status, pr.Provider, pr.ProviderKey
		checks[i], created[i], updated[i] = pr.NextCheckAt, pr.Created, pr.Updated
	}
	_, err := postgres.Exec(ctx, tx, insertChargesSQL, ids, businesses, customers, types, refs, countries, currencies, amounts, methods,
		channels, descriptions, tokens, statuses, provs, keys, checks, created, updated)
	return err
}

const insertPaymentsSQL = `INSERT INTO payments (id, business_id, payment_request_id, customer_id, payment_token_id, status,
		failure_code, currency, amount, channel_code, provider_payment_ref, capture_id, captured_at, created, updated)
	SELECT id, business_id, payment_request_id, customer_id, payment_token_id, status, failure_code, currency, amount::numeric,
		channel_code, provider_payment_ref, capture_id, captured_at, created, updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
		$10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
		AS p(id, business_id, payment_request_id, customer_id, payment_token_id, status, failure_code, currency, amount,
			channel_code, provider_payment_ref, capture_id, captured_at, created, updated)`

// insertPayments writes the first payments of requests.
func insertPayments(ctx context.Context, tx bun.IDB, pys []*Payment) error {
	n := len(pys)
	ids, businesses, requests, customers, tokens := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	statuses, failures, currencies, amounts, channels := make([]string, n), make([]*string, n), make([]string, n), make([]string, n), make([]string, n)
	refs, captures, capturedAt, created, updated := make([]*string, n), make([]*string, n), make([]*time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, py := range pys {
		ids[i], businesses[i], requests[i], customers[i], tokens[i] = py.ID, py.BusinessID, py.PaymentRequestID, py.CustomerID, py.PaymentTokenID
		statuses[i], failures[i], currencies[i], amounts[i], channels[i] = py.Status, py.FailureCode, py.Currency, py.Amount.String(), py.ChannelCode
		refs[i], captures[i], capturedAt[i], created[i], updated[i] = py.ProviderPaymentRef, py.CaptureID, py.CapturedAt, py.Created, py.Updated
	}
	_, err := postgres.Exec(ctx, tx, insertPaymentsSQL, ids, businesses, requests, customers, tokens, statuses, failures, currencies,
		amounts, channels, refs, captures, capturedAt, created, updated)
	return err
}

const saveSettledSQL = `UPDATE payment_requests AS r
	SET status = s.status, failure_code = s.failure_code, actions = '[]', latest_payment_id = s.latest_payment_id,
		provider_ref = s.provider_ref, expires_at = s.expires_at, next_check_at = NULL, updated = s.updated
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
		AS s(id, status, failure_code, latest_payment_id, provider_ref, expires_at, updated)
	WHERE r.id = s.id`

// saveSettled writes what settleCharges changed on the requests.
func saveSettled(ctx context.Context, tx bun.IDB, prs []*PaymentRequest) error {
	n := len(prs)
	ids, statuses, failures, payments, refs := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	expires, updated := make([]*time.Time, n), make([]time.Time, n)
	for i, pr := range prs {
		if !pr.Final() || pr.NextCheckAt != nil || len(pr.Actions) != 0 {
			return fmt.Errorf("payment request %s is not settled", pr.ID)
		}
		ids[i], statuses[i], failures[i], payments[i], refs[i] = pr.ID, pr.Status, pr.FailureCode, pr.LatestPaymentID, pr.ProviderRef
		expires[i], updated[i] = pr.ExpiresAt, pr.Updated
	}
	_, err := postgres.Exec(ctx, tx, saveSettledSQL, ids, statuses, failures, payments, refs, expires, updated)
	return err
}
