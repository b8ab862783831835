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
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
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
// stores and processes it: receiveBatch of one. An UNPARSEABLE callback is
// stored, and answered with an error saying why.
func (s *Service) receive(ctx context.Context, name providers.Name, businessID string, in providers.CallbackInput) (CallbackOutcome, error) {
	got, err := s.receiveBatch(ctx, name, businessID, []providers.CallbackInput{in})
	if err != nil {
		return "", err
	}
	if got[0].outcome == OutcomeUnparseable {
		return OutcomeUnparseable, billing.Invalid("body", "could not be read: "+got[0].parseErr.Error())
	}
	return got[0].outcome, nil
}

// inbound is a callback of a batch on its way in.
type inbound struct {
	n    providers.Notification
	body []byte
	// parseErr says why the body could not be read (ErrMalformed); such
	// a callback is stored UNPARSEABLE.
	parseErr error
	// outcome is what it did.
	outcome          CallbackOutcome
	paymentRequestID *string
}

// receiveBatch verifies callbacks for businessID with its configuration,
// then stores and processes them, in order, in one transaction: each is
// dealt with as receive deals with one, so that when receiveBatch returns
// nil every outcome is committed, and when it returns an error (one
// callback that cannot be verified, a failure of the database or of
// SettledFunc) none is. A callback already received, before or earlier in
// the batch, is a DUPLICATE and only counted. The transaction's statements
// are one select of the keys stored before, one select locking the payment
// requests the new callbacks name (in id order), then apply's for each
// request a callback changes (none for a request already in the state the
// callback reports) — except that a run of callbacks settling charges
// still SENDING is settled with settleCharges' few statements for the lot
// (settling) — and a select for each token notification, and last one
// insert of the new callbacks with their outcomes and one update counting
// the duplicates.
func (s *Service) receiveBatch(ctx context.Context, name providers.Name, businessID string, ins []providers.CallbackInput) ([]*inbound, error) {
	biz, now, err := s.businessNow(ctx, s.db, businessID)
	if err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, s.db, biz)
	if err != nil {
		return nil, err
	}
	prov, err := s.provider(string(name))
	if err != nil {
		return nil, err
	}
	at := s.clock.Now()
	cbs := make([]*inbound, len(ins))
	for i, in := range ins {
		if cbs[i], err = parseCallback(prov, cfg, in, at); err != nil {
			return nil, err
		}
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		fresh, err := newCallbacks(ctx, tx, biz.ID, name, cbs)
		if err != nil {
			return err
		}
		reqs, err := lockCallbackRequests(ctx, tx, biz.ID, name, fresh)
		if err != nil {
			return err
		}
		var group settling
		for _, cb := range fresh {
			if cb.parseErr != nil {
				continue
			}
			if pr := settlingCharge(cb.n, reqs); pr != nil && !group.has(pr) {
				group.add(cb, pr)
				continue
			}
			if err := s.settleGroup(ctx, tx, &group, reqs, now); err != nil {
				return err
			}
			if cb.outcome, cb.paymentRequestID, err = s.process(ctx, tx, biz, name, cb.n, now, reqs); err != nil {
				return err
			}
		}
		if err := s.settleGroup(ctx, tx, &group, reqs, now); err != nil {
			return err
		}
		return storeCallbacks(ctx, tx, biz.ID, name, cbs, fresh, truncate(at))
	})
	if err != nil {
		return nil, err
	}
	return cbs, nil
}

// settling is a run of consecutive callbacks of a batch, each bringing a
// different charge still SENDING to its final state: a charge whose answer
// was lost, or a callback that reached the request before the answer was
// recorded (the sandbox's callback of a charge is due as soon as it is
// made). They are settled together, as the answers of a batch of charges
// are (settleCharges), instead of one by one through apply.
type settling struct {
	cbs     []*inbound
	prs     []*PaymentRequest
	results []providers.Result
	ids     map[string]bool
}

// settlingCharge returns the locked request of reqs that payment
// notification n settles from SENDING (see settlesCharge), or nil.
func settlingCharge(n providers.Notification, reqs *callbackRequests) *PaymentRequest {
	if n.Kind != providers.NotifyPayment {
		return nil
	}
	if pr := reqs.find(n); pr != nil && settlesCharge(pr, n.Result) {
		return pr
	}
	return nil
}

func (g *settling) has(pr *PaymentRequest) bool { return g.ids[pr.ID] }

func (g *settling) add(cb *inbound, pr *PaymentRequest) {
	if g.ids == nil {
		g.ids = map[string]bool{}
	}
	g.cbs, g.prs, g.results, g.ids[pr.ID] = append(g.cbs, cb), append(g.prs, pr), append(g.results, cb.n.Result), true
}

// settleGroup settles the callbacks of g, if any, in tx at now, marks them
// PROCESSED, and empties g. The callbacks after them in the batch are
// processed after, so each request sees them in the order they came.
func (s *Service) settleGroup(ctx context.Context, tx bun.IDB, g *settling, reqs *callbackRequests, now time.Time) error {
	if len(g.prs) == 0 {
		return nil
	}
	if err := s.settleCharges(ctx, tx, g.prs, g.results, truncate(now)); err != nil {
		return err
	}
	for i, cb := range g.cbs {
		cb.outcome, cb.paymentRequestID = OutcomeProcessed, &g.prs[i].ID
		reqs.add(g.prs[i]) // the provider_ref recorded finds it for the callbacks after
	}
	*g = settling{}
	return nil
}

// parseCallback verifies and reads a callback with the business's
// configuration (at is the system clock, for signature tolerances). One
// that cannot be verified is an error (ErrInvalidCallbackToken or
// ErrInvalidSignature); one whose body cannot be read comes back with
// parseErr set. A callback without an id of the provider's is keyed by its
// body's hash.
func parseCallback(prov providers.Provider, cfg providers.Config, in providers.CallbackInput, at time.Time) (*inbound, error) {
	n, err := prov.ParseCallback(cfg, in, at)
	switch {
	case errors.Is(err, providers.ErrUnverified):
		return nil, unverified(prov.Name())
	case err != nil && !errors.Is(err, providers.ErrMalformed):
		return nil, err
	}
	if n.DedupeKey == "" {
		sum := sha256.Sum256(in.Body)
		n.DedupeKey = "sha256:" + hex.EncodeToString(sum[:])
	}
	cb := &inbound{n: n, body: in.Body, parseErr: err, outcome: OutcomeIgnored}
	if err != nil {
		cb.outcome = OutcomeUnparseable
	}
	return cb, nil
}

// newCallbacks returns the callbacks of cbs to process: the first of each
// key not stored before. The others are DUPLICATEs, only counted by
// storeCallbacks.
func newCallbacks(ctx context.Context, tx bun.Tx, businessID string, name providers.Name, cbs []*inbound) ([]*inbound, error) {
	keys := make([]string, len(cbs))
	for i, cb := range cbs {
		keys[i] = cb.n.DedupeKey
	}
	// One probe of the unique (business_id, provider, dedupe_key) index
	// per key, whatever the statistics say: written as a plain
	// "dedupe_key = ANY(…)", the planner, with no statistics of a table
	// that was empty when last analyzed, read every callback of the
	// business and filtered them (76 ms a batch at 100,000 callbacks).
	var stored []string
	if err := tx.NewRaw(`SELECT k.key FROM unnest(?::text[]) AS k(key),
		LATERAL (SELECT 1 FROM provider_callbacks AS p
			WHERE p.business_id = ? AND p.provider = ? AND p.dedupe_key = k.key LIMIT 1) AS found`,
		pgdialect.Array(keys), businessID, string(name)).Scan(ctx, &stored); err != nil {
		return nil, fmt.Errorf("look up %d callbacks: %w", len(cbs), err)
	}
	seen := make(map[string]bool, len(cbs))
	for _, k := range stored {
		seen[k] = true
	}
	var fresh []*inbound
	for _, cb := range cbs {
		if seen[cb.n.DedupeKey] {
			cb.outcome = OutcomeDuplicate
			continue
		}
		seen[cb.n.DedupeKey] = true
		fresh = append(fresh, cb)
	}
	return fresh, nil
}

// insertCallbacksSQL stores the callbacks of a batch with their outcomes,
// from arrays bound as parameters, in the arrays' order; it returns the
// keys it stored (a key another transaction stored meanwhile is not).
const insertCallbacksSQL = `INSERT INTO provider_callbacks (business_id, provider, dedupe_key, event_type, body, outcome, payment_request_id,
		received_at, last_received_at, times_received)
	SELECT $1, $2, dedupe_key, event_type, body, outcome, payment_request_id, $3, $3, 1
	FROM unnest($4::text[], $5::text[], $6::bytea[], $7::text[], $8::text[]) WITH ORDINALITY
		AS c(dedupe_key, event_type, body, outcome, payment_request_id, n)
	ORDER BY n
	ON CONFLICT (business_id, provider, dedupe_key) DO NOTHING
	RETURNING dedupe_key`

// countRepeatsSQL counts the repeats of callbacks received before: one
// more receipt per key given.
const countRepeatsSQL = `UPDATE provider_callbacks AS c
	SET times_received = c.times_received + r.n, last_received_at = $3
	FROM (SELECT dedupe_key, count(*) AS n FROM unnest($4::text[]) AS dedupe_key GROUP BY dedupe_key) AS r
	WHERE c.business_id = $1 AND c.provider = $2 AND c.dedupe_key = r.dedupe_key`

// storeCallbacks stores, once processed, the callbacks fresh of cbs (see
// newCallbacks), received at received, each written once with its
// outcome, and counts the others as one more receipt of their key. A
// fresh one that another transaction stored since newCallbacks looked
// (the same callback delivered twice at once) becomes a DUPLICATE too:
// its processing changed nothing the other's did not, as both were
// applied under the lock of the payment request or token they name.
func storeCallbacks(ctx context.Context, tx bun.Tx, businessID string, name providers.Name, cbs, fresh []*inbound, received time.Time) error {
	inserted, err := insertCallbacks(ctx, tx, businessID, name, fresh, received)
	if err != nil {
		return err
	}
	for _, cb := range fresh {
		if !inserted[cb.n.DedupeKey] {
			cb.outcome, cb.paymentRequestID = OutcomeDuplicate, nil
		}
	}
	var repeats []string
	for _, cb := range cbs {
		if cb.outcome == OutcomeDuplicate {
			repeats = append(repeats, cb.n.DedupeKey)
		}
	}
	if len(repeats) > 0 {
		if _, err := postgres.Exec(ctx, tx, countRepeatsSQL, businessID, string(name), received, repeats); err != nil {
			return fmt.Errorf("count %d repeated callbacks: %w", len(repeats), err)
		}
	}
	return nil
}

// insertCallbacks writes cbs (of distinct keys) with their outcomes and
// returns the keys it stored.
func insertCallbacks(ctx context.Context, tx bun.Tx, businessID string, name providers.Name, cbs []*inbound, received time.Time) (map[string]bool, error) {
	n := len(cbs)
	inserted := make(map[string]bool, n)
	if n == 0 {
		return inserted, nil
	}
	keys, events, bodies, outcomes, requests := make([]string, n), make([]*string, n), make([][]byte, n), make([]string, n), make([]*string, n)
	for i, cb := range cbs {
		keys[i], bodies[i], outcomes[i], requests[i] = cb.n.DedupeKey, cb.body, string(cb.outcome), cb.paymentRequestID
		if cb.n.EventType != "" {
			events[i] = &cb.n.EventType
		}
	}
	rows, err := tx.Tx.QueryContext(ctx, insertCallbacksSQL, businessID, string(name), received, keys, events, bodies, outcomes, requests)
	if err != nil {
		return nil, fmt.Errorf("store %d callbacks: %w", n, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, fmt.Errorf("store %d callbacks: %w", n, err)
		}
		inserted[key] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store %d callbacks: %w", n, err)
	}
	return inserted, nil
}

// callbackRequests are the payment requests a batch of callbacks names,
// locked by the batch's transaction, by id and by provider_ref.
type callbackRequests struct {
	byID, byRef map[string]*PaymentRequest
}

// The look-ups of lockCallbackRequests: the payment requests of business
// $1 and provider $2 with the ids $3, or else the provider's ids (the
// last), locked in id order. Each condition only when it has values: an OR
// with an empty side kept PostgreSQL from using the primary key, and the
// batch read the whole table.
var (
	callbackRequestsByIDSQL  = callbackRequestsStatement("id = ANY($3::text[])")
	callbackRequestsByRefSQL = callbackRequestsStatement("provider_ref = ANY($3::text[])")
	callbackRequestsSQL      = callbackRequestsStatement("(id = ANY($3::text[]) OR provider_ref = ANY($4::text[]))")
)

func callbackRequestsStatement(cond string) *postgres.Statement {
	return postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*PaymentRequest)(nil)).Where("business_id = $1").Where("provider = $2").Where(cond).
			OrderExpr("id").For("UPDATE").String()
	})
}

// lockCallbackRequests locks the payment requests of the business and
// provider that the payment notifications of cbs name, in id order: by the
// engine's id echoed back, or else by the provider's id of the request.
func lockCallbackRequests(ctx context.Context, tx bun.Tx, businessID string, name providers.Name, cbs []*inbound) (*callbackRequests, error) {
	reqs := &callbackRequests{byID: map[string]*PaymentRequest{}, byRef: map[string]*PaymentRequest{}}
	var ids, refs []string
	for _, cb := range cbs {
		switch {
		case cb.parseErr != nil || cb.n.Kind != providers.NotifyPayment:
		case billing.ValidID(billing.PrefixPaymentRequest, cb.n.Reference):
			ids = append(ids, cb.n.Reference)
		case cb.n.Result.ProviderRef != "":
			refs = append(refs, cb.n.Result.ProviderRef)
		}
	}
	if len(ids)+len(refs) == 0 {
		return reqs, nil
	}
	var prs []*PaymentRequest
	var err error
	switch {
	case len(refs) == 0:
		err = callbackRequestsByIDSQL.Scan(ctx, tx, &prs, businessID, string(name), ids)
	case len(ids) == 0:
		err = callbackRequestsByRefSQL.Scan(ctx, tx, &prs, businessID, string(name), refs)
	default:
		err = callbackRequestsSQL.Scan(ctx, tx, &prs, businessID, string(name), ids, refs)
	}
	if err != nil {
		return nil, fmt.Errorf("find the payment requests of %d callbacks: %w", len(cbs), err)
	}
	for _, pr := range prs {
		reqs.add(pr)
	}
	return reqs, nil
}

// add makes pr findable by its id and its provider_ref (the first request
// locked with a provider_ref keeps it).
func (r *callbackRequests) add(pr *PaymentRequest) {
	r.byID[pr.ID] = pr
	if pr.ProviderRef != nil && r.byRef[*pr.ProviderRef] == nil {
		r.byRef[*pr.ProviderRef] = pr
	}
}

// find returns the locked payment request a payment notification is
// about, or nil.
func (r *callbackRequests) find(n providers.Notification) *PaymentRequest {
	switch {
	case billing.ValidID(billing.PrefixPaymentRequest, n.Reference):
		return r.byID[n.Reference]
	case n.Result.ProviderRef != "":
		return r.byRef[n.Result.ProviderRef]
	}
	return nil
}

// process applies a verified notification in tx at now (the business
// clock) and returns its outcome and the payment request it was about. A
// payment notification's request is one of reqs, which tx has locked;
// applying an answer the request already has issues no statement.
func (s *Service) process(ctx context.Context, tx bun.IDB, biz *business.Business, name providers.Name, n providers.Notification, now time.Time, reqs *callbackRequests) (CallbackOutcome, *string, error) {
	switch n.Kind {
	case providers.NotifyPayment:
		pr := reqs.find(n)
		if pr == nil {
			return OutcomeUnmatched, nil, nil
		}
		if _, err := s.apply(ctx, tx, pr, n.Result, now); err != nil {
			return "", nil, err
		}
		reqs.add(pr) // the provider_ref apply may have recorded finds it for the callbacks after
		return OutcomeProcessed, &pr.ID, nil
	case providers.NotifyTokenActivated, providers.NotifyTokenExpired:
		return s.processToken(ctx, tx, biz, name, n, now)
	}
	return OutcomeIgnored, nil, nil
}

// processToken applies a token notification in tx at now.
func (s *Service) processToken(ctx context.Context, tx bun.IDB, biz *business.Business, name providers.Name, n providers.Notification, now time.Time) (CallbackOutcome, *string, error) {
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

// sandboxBatch is how many sandbox callbacks are delivered and received
// per transaction.
const sandboxBatch = 500

// DeliverSandboxCallbacks delivers the sandbox callbacks of a business due
// at or before upTo (its clock), in time order and in batches of
// sandboxBatch, each received in one transaction through the same
// processing as callbacks that arrive over HTTP, and returns how many it
// delivered. An UNPARSEABLE callback is logged, not an error. A later
// clock advance can call it with each instant it passes.
func (s *Service) DeliverSandboxCallbacks(ctx context.Context, businessID string, upTo time.Time) (int, error) {
	src, err := s.sandboxSource()
	if err != nil {
		return 0, err
	}
	return src.DeliverDue(ctx, businessID, upTo, sandboxBatch, func(ctx context.Context, ins []providers.CallbackInput) error {
		cbs, err := s.receiveBatch(ctx, providers.Sandbox, businessID, ins)
		if err != nil {
			return err
		}
		for _, cb := range cbs {
			if cb.outcome == OutcomeUnparseable {
				s.log.Error("sandbox callback could not be read; stored", "business_id", businessID, "error", cb.parseErr)
			}
		}
		return nil
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
