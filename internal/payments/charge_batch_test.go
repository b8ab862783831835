package payments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// batchTokens are the saved tokens a ChargeBatch test charges, one per
// sandbox behaviour, all of one customer.
type batchTokens struct {
	plain, alwaysFail, pending, timeout, canceled string
}

// linkChargeToken saves a token of cust in biz (a Pay and Save paid through
// simulate) with sandbox behaviour behavior ("" for none), and returns its
// id.
func (w *world) linkChargeToken(biz *business.Business, cust *customers.Customer, behavior, ref string) string {
	w.t.Helper()
	changes := []any{"customer_id", cust.ID, "reference_id", ref}
	if behavior != "" {
		changes = append(changes, "metadata", map[string]any{"sandbox_behavior": behavior})
	}
	pr := w.mustCreate(biz, w.saveBody(changes...), "")
	w.simulate(biz, pr.ID, 0)
	w.deliver(biz)
	pr = w.get(biz, pr.ID)
	if pr.Status != payments.StatusSucceeded || pr.PaymentTokenID == nil {
		w.t.Fatalf("linking did not save a token: %+v", pr)
	}
	return *pr.PaymentTokenID
}

// batchTokensFor saves the tokens of batchTokens for cust in biz; the
// canceled one is cancelled.
func (w *world) batchTokensFor(biz *business.Business, cust *customers.Customer) batchTokens {
	w.t.Helper()
	toks := batchTokens{
		plain:      w.linkChargeToken(biz, cust, "", "plain"),
		alwaysFail: w.linkChargeToken(biz, cust, "always_fail", "always-fail"),
		pending:    w.linkChargeToken(biz, cust, "pending_then_succeed", "pending"),
		timeout:    w.linkChargeToken(biz, cust, "timeout_once", "timeout"),
		canceled:   w.linkChargeToken(biz, cust, "", "canceled"),
	}
	if _, err := w.svc.CancelToken(w.ctx, w.db.Bun, biz, w.now(biz), toks.canceled); err != nil {
		w.t.Fatal(err)
	}
	return toks
}

func rupiah(n int64) billing.Money {
	return billing.Money{Amount: decimal.NewFromInt(n), Currency: "IDR"}
}

// charge is ChargeParams of token tok for amount, under key.
func chargeOf(tok string, amount billing.Money, key string) payments.ChargeParams {
	return payments.ChargeParams{PaymentTokenID: tok, Amount: amount, ReferenceID: "cycle-" + key, IdempotencyKey: key}
}

// chargeBatch runs ChargeBatch for biz at its clock and checks that it
// answered each charge with a request or an error, never both or neither.
func (w *world) chargeBatch(biz *business.Business, ps []payments.ChargeParams) ([]*payments.PaymentRequest, []error) {
	w.t.Helper()
	prs, errs := w.svc.ChargeBatch(w.ctx, biz, w.now(biz), ps)
	if len(prs) != len(ps) || len(errs) != len(ps) {
		w.t.Fatalf("%d charges answered with %d requests and %d errors", len(ps), len(prs), len(errs))
	}
	for i := range ps {
		if (prs[i] == nil) == (errs[i] == nil) {
			w.t.Fatalf("charge %d (%q): request %v, error %v", i, ps[i].IdempotencyKey, prs[i], errs[i])
		}
	}
	return prs, errs
}

// cutShort charges p with Charge and makes the process "die" after the
// provider answered, leaving the request SENDING with the provider's
// charge made.
func (w *world) cutShort(biz *business.Business, p payments.ChargeParams) {
	w.t.Helper()
	w.seam = func(context.Context, string) error { return errDied }
	defer func() { w.seam = nil }()
	if _, err := w.svc.Charge(w.ctx, biz, w.now(biz), p); !errors.Is(err, errDied) {
		w.t.Fatalf("cut short charge %s: %v", p.IdempotencyKey, err)
	}
	var status string
	if err := w.db.Bun.NewRaw("SELECT status FROM payment_requests WHERE business_id = ? AND provider_key = ?", biz.ID, p.IdempotencyKey).
		Scan(w.ctx, &status); err != nil || status != payments.StatusSending {
		w.t.Fatalf("cut short charge %s is %s (%v)", p.IdempotencyKey, status, err)
	}
}

// answerView is what a caller of Charge or ChargeBatch sees of one answer,
// with the ids that differ between two businesses replaced by names.
type answerView struct {
	Status, APIStatus, Failure, Key, Reference, Token, Amount, Description string
	Customer                                                               string
	HasPayment, HasProviderRef                                             bool
	Created, Updated, NextCheck                                            string
	Checks                                                                 int
	Err                                                                    *billing.Error
}

// answerOf describes the answer pr or err; names renames the business's
// customer and tokens.
func answerOf(t *testing.T, pr *payments.PaymentRequest, err error, names map[string]string) answerView {
	t.Helper()
	if err != nil {
		e, ok := billing.AsError(err)
		if !ok {
			t.Fatalf("an error that is not a *billing.Error: %v", err)
		}
		return answerView{Err: e}
	}
	v := answerView{Status: pr.Status, APIStatus: pr.APIStatus(), Key: pr.ProviderKey, Reference: pr.ReferenceID,
		Amount: pr.Amount().Amount.String() + " " + pr.Currency, Customer: names[pr.CustomerID],
		HasPayment: pr.LatestPaymentID != nil, HasProviderRef: pr.ProviderRef != nil, Checks: pr.Checks,
		Created: pr.Created.UTC().Format(time.RFC3339Nano), Updated: pr.Updated.UTC().Format(time.RFC3339Nano)}
	if pr.FailureCode != nil {
		v.Failure = *pr.FailureCode
	}
	if pr.PaymentTokenID != nil {
		v.Token = names[*pr.PaymentTokenID]
	}
	if pr.Description != nil {
		v.Description = *pr.Description
	}
	if pr.NextCheckAt != nil {
		v.NextCheck = pr.NextCheckAt.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// TestChargeBatchLikeCharge: ChargeBatch answers each charge of a batch as
// Charge answers it alone, and stores the same requests, payments and
// events. Business a charges a batch; business b, set up the same way,
// makes the same charges one by one with Charge.
func TestChargeBatchLikeCharge(t *testing.T) {
	w := setup(t)
	a, b := w.biz, w.newBusiness(business.ModeSandbox)
	custA, custB := w.cust, w.newCustomer(b, "meter-001")
	ta, tb := w.batchTokensFor(a, custA), w.batchTokensFor(b, custB)

	// The charges, as functions of a business's tokens (and the other
	// business's plain token, which must not be found).
	desc := "March 2026"
	build := func(tk batchTokens, foreign string) []payments.ChargeParams {
		withDesc := chargeOf(tk.plain, rupiah(99000), "k-fresh-2")
		withDesc.Description = &desc
		return []payments.ChargeParams{
			chargeOf(tk.plain, rupiah(150000), "k-fresh-1"),
			withDesc,
			chargeOf(tk.plain, rupiah(150000), "k-charged"),      // charged before: SUCCEEDED
			chargeOf(tk.plain, rupiah(175000), "k-cut"),          // cut short before: resumed
			chargeOf(tk.plain, rupiah(5000), "k-dup"),            // first of a key twice in the batch
			chargeOf(tk.plain, rupiah(5000), "k-dup"),            // second of it: see below
			chargeOf(tk.plain, rupiah(1), "k-charged"),           // a stored key, another amount
			chargeOf(tk.alwaysFail, rupiah(150000), "k-charged"), // a stored key, another token
			chargeOf(tk.plain, rupiah(2), "k-fresh-1"),           // a key of this batch, another amount
			chargeOf("pt-00000000-0000-7000-8000-000000000000", rupiah(100), "k-unknown"),
			chargeOf("not-a-token", rupiah(100), "k-malformed"),
			chargeOf(foreign, rupiah(100), "k-foreign"),
			chargeOf(tk.canceled, rupiah(100), "k-canceled"),
			chargeOf(tk.plain, rupiah(0), "k-zero"),
			chargeOf(tk.plain, rupiah(100), ""),
			chargeOf(tk.plain, billing.Money{Amount: decimal.NewFromInt(100), Currency: "PHP"}, "k-currency"),
			chargeOf(tk.alwaysFail, rupiah(150000), "k-always-fail"),
			chargeOf(tk.plain, rupiah(21110), "k-21110"),
			chargeOf(tk.pending, rupiah(150000), "k-pending"),
			chargeOf(tk.timeout, rupiah(150000), "k-timeout"),
		}
	}
	const dupFirst, dupSecond = 4, 5
	psA, psB := build(ta, tb.plain), build(tb, ta.plain)

	// The same history in both: one key charged, one cut short.
	for _, side := range []struct {
		biz *business.Business
		ps  []payments.ChargeParams
	}{{a, psA}, {b, psB}} {
		if pr, err := w.svc.Charge(w.ctx, side.biz, w.now(side.biz), side.ps[2]); err != nil || pr.Status != payments.StatusSucceeded {
			t.Fatalf("charge before the batch: %v %v", pr, err)
		}
		w.cutShort(side.biz, side.ps[3])
	}

	prsA, errsA := w.chargeBatch(a, psA)
	prsB, errsB := make([]*payments.PaymentRequest, len(psB)), make([]error, len(psB))
	for i, p := range psB {
		prsB[i], errsB[i] = w.svc.Charge(w.ctx, b, w.now(b), p)
	}

	namesA := map[string]string{custA.ID: "customer", ta.plain: "plain", ta.alwaysFail: "always_fail", ta.pending: "pending",
		ta.timeout: "timeout", ta.canceled: "canceled"}
	namesB := map[string]string{custB.ID: "customer", tb.plain: "plain", tb.alwaysFail: "always_fail", tb.pending: "pending",
		tb.timeout: "timeout", tb.canceled: "canceled"}
	for i := range psA {
		got, want := answerOf(t, prsA[i], errsA[i], namesA), answerOf(t, prsB[i], errsB[i], namesB)
		if i == dupSecond {
			// ChargeBatch refuses a key repeated within a batch; Charge
			// called again returns the request of the first call.
			if got.Err == nil || got.Err.Code != billing.ECONFLICT || got.Err.Reason != billing.ReasonIdempotency {
				t.Errorf("the key repeated in the batch: %+v, want an idempotency error", got)
			}
			if prsB[i] == nil || prsB[dupFirst] == nil || prsB[i].ID != prsB[dupFirst].ID {
				t.Errorf("Charge called again with a key: %v %v, want the first request", prsB[i], errsB[i])
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("charge %d (%q):\nChargeBatch %+v\nCharge      %+v", i, psA[i].IdempotencyKey, got, want)
		}
		// What ChargeBatch returns is what it stored.
		if prsA[i] != nil {
			if stored := answerOf(t, w.get(a, prsA[i].ID), nil, namesA); !reflect.DeepEqual(got, stored) {
				t.Errorf("charge %d (%q) answered %+v, stored %+v", i, psA[i].IdempotencyKey, got, stored)
			}
		}
	}

	// The answers a user relies on, stated outright as well.
	wantBatch := map[string]struct{ status, failure, reason, field string }{
		"k-fresh-1": {status: "SUCCEEDED"}, "k-fresh-2": {status: "SUCCEEDED"}, "k-charged": {status: "SUCCEEDED"},
		"k-cut": {status: "SUCCEEDED"}, "k-dup": {status: "SUCCEEDED"}, "k-always-fail": {status: "FAILED", failure: "INSUFFICIENT_BALANCE"},
		"k-21110": {status: "FAILED", failure: "INSUFFICIENT_BALANCE"}, "k-pending": {status: "PENDING"},
		"k-timeout": {status: "SENDING"},
		"k-unknown": {reason: "DATA_NOT_FOUND"}, "k-malformed": {reason: "DATA_NOT_FOUND"}, "k-foreign": {reason: "DATA_NOT_FOUND"},
		"k-canceled": {reason: "API_VALIDATION_ERROR", field: "payment_token_id"},
		"k-zero":     {reason: "API_VALIDATION_ERROR", field: "amount"}, "": {reason: "API_VALIDATION_ERROR", field: "idempotency_key"},
		"k-currency": {reason: "API_VALIDATION_ERROR", field: "currency"},
	}
	for i, p := range psA {
		want, ok := wantBatch[p.IdempotencyKey]
		switch {
		case i == 6 || i == 7 || i == 8 || i == dupSecond:
			wantError(t, errsA[i], "IDEMPOTENCY_ERROR", "")
			if e, _ := billing.AsError(errsA[i]); e.Code != billing.ECONFLICT {
				t.Errorf("charge %d: code %s, want %s", i, e.Code, billing.ECONFLICT)
			}
		case !ok:
			t.Fatalf("no answer expected for %q", p.IdempotencyKey)
		case want.reason != "":
			wantError(t, errsA[i], want.reason, want.field)
		case prsA[i].Status != want.status || answerOf(t, prsA[i], nil, namesA).Failure != want.failure:
			t.Errorf("%q: %s %v, want %s %s", p.IdempotencyKey, prsA[i].Status, prsA[i].FailureCode, want.status, want.failure)
		}
	}
	if !prsA[dupFirst].Final() {
		t.Errorf("the first charge of the repeated key is %s", prsA[dupFirst].Status)
	}

	// The rows stored, with generated ids replaced by what they name.
	for _, table := range []string{"payment_requests", "payments", "events", "sandbox_payments"} {
		got, want := w.chargeRows(a, table, namesA), w.chargeRows(b, table, namesB)
		if !slices.Equal(got, want) {
			t.Errorf("%s differ:\nChargeBatch\n%s\nCharge\n%s", table, indented(got), indented(want))
		}
		if len(got) == 0 {
			t.Errorf("no %s compared", table)
		}
	}
}

func indented(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

// generatedID matches the ids the engine and the sandbox make (prefix and
// version 7 UUID).
var generatedID = regexp.MustCompile(`\b([a-z]+-)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)

// chargeRows returns the rows of table (payment_requests, payments, events
// of payment.capture and payment.failure, sandbox_payments) that belong to
// biz's charges (PAY requests), as JSON, sorted, with every id the rows
// share replaced by the provider key it stands for ("pr:k-cut" for the
// request of key k-cut, its payment "py:k-cut", the sandbox's payment and
// its payment ref "sbxpr:k-cut" and "sbxpy:k-cut"), the business, customer
// and tokens by names (names), and any other generated id (an event's,
// a capture's) by its prefix.
func (w *world) chargeRows(biz *business.Business, table string, names map[string]string) []string {
	w.t.Helper()
	rename := map[string]string{biz.ID: "business"}
	for id, name := range names {
		rename[id] = name
	}
	var pairs []struct {
		ID  string `bun:"id"`
		Key string `bun:"key"`
	}
	if err := w.db.Bun.NewRaw(`SELECT 'pr:' || provider_key AS key, id FROM payment_requests WHERE business_id = ? AND type = 'PAY'
		UNION ALL SELECT 'py:' || r.provider_key, p.id FROM payments p JOIN payment_requests r ON r.id = p.payment_request_id
			WHERE r.business_id = ? AND r.type = 'PAY'
		UNION ALL SELECT 'sbxpr:' || idempotency_key, id FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'
		UNION ALL SELECT 'sbxpy:' || idempotency_key, payment_ref FROM sandbox_payments
			WHERE business_id = ? AND kind = 'CHARGE' AND payment_ref IS NOT NULL
		UNION ALL SELECT 'ref:' || id, provider_token_ref FROM payment_tokens WHERE business_id = ?`,
		biz.ID, biz.ID, biz.ID, biz.ID, biz.ID).Scan(w.ctx, &pairs); err != nil {
		w.t.Fatal(err)
	}
	for _, p := range pairs {
		if tok, ok := strings.CutPrefix(p.Key, "ref:"); ok {
			// A token's id at the provider, named after the token.
			rename[p.ID] = "sandbox " + names[tok]
			continue
		}
		rename[p.ID] = p.Key
	}
	query := map[string]string{
		"payment_requests": `SELECT to_jsonb(r)::text FROM payment_requests r WHERE business_id = ? AND type = 'PAY'`,
		"payments": `SELECT to_jsonb(p)::text FROM payments p JOIN payment_requests r ON r.id = p.payment_request_id
			WHERE p.business_id = ? AND r.type = 'PAY'`,
		"events": `SELECT to_jsonb(e)::text FROM events e JOIN payment_requests r ON r.id = e.data->>'payment_request_id'
			WHERE e.business_id = ? AND e.type IN ('payment.capture', 'payment.failure') AND r.type = 'PAY'`,
		"sandbox_payments": `SELECT (to_jsonb(s) - 'request_hash')::text FROM sandbox_payments s WHERE business_id = ? AND kind = 'CHARGE'`,
	}[table]
	var raws []string
	if err := w.db.Bun.NewRaw(query, biz.ID).Scan(w.ctx, &raws); err != nil {
		w.t.Fatal(err)
	}
	out := make([]string, len(raws))
	for i, raw := range raws {
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			w.t.Fatal(err)
		}
		b, err := json.Marshal(renameIDs(v, rename))
		if err != nil {
			w.t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// renamed is v, a decoded JSON value, with its strings renamed: a string
// in rename becomes its name, and any generated id in another string
// becomes its prefix followed by "*".
func renameIDs(v any, rename map[string]string) any {
	switch v := v.(type) {
	case string:
		if name, ok := rename[v]; ok {
			return name
		}
		return generatedID.ReplaceAllString(v, "$1*")
	case []any:
		for i := range v {
			v[i] = renameIDs(v[i], rename)
		}
	case map[string]any:
		for k := range v {
			v[k] = renameIDs(v[k], rename)
		}
	}
	return v
}

// batchCall is one call of SettledBatchFunc: the requests' provider
// keys and statuses, and what its transaction held of them.
type batchCall struct {
	keys     []string // "key STATUS", sorted
	payments int      // payments of the requests visible in the transaction
	events   int      // their payment.capture and payment.failure events
	stored   int      // the requests stored with the status they carry
}

var errSettle = errors.New("the cycles could not be settled")

// TestChargeBatchSettledBatchFunc: ChargeBatch settles the requests an
// answer brings from SENDING to SUCCEEDED or FAILED with one call of
// SettledBatchFunc, in the transaction that records them (whose error
// rolls the batch back), and not with SettledFunc.
func TestChargeBatchSettledBatchFunc(t *testing.T) {
	var mu sync.Mutex
	var batches []batchCall
	var singles []string
	var failBatch bool
	w := setup(t, func(w *world) {
		w.config = func(cfg *payments.Config) {
			cfg.SettledFunc = func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
				mu.Lock()
				defer mu.Unlock()
				singles = append(singles, pr.ProviderKey+" "+pr.Status)
				return nil
			}
			cfg.SettledBatchFunc = func(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
				mu.Lock()
				defer mu.Unlock()
				c := batchCall{}
				ids, statuses := make([]string, len(prs)), make([]string, len(prs))
				for i, pr := range prs {
					c.keys = append(c.keys, pr.ProviderKey+" "+pr.Status)
					ids[i], statuses[i] = pr.ID, pr.Status
				}
				slices.Sort(c.keys)
				for _, q := range []struct {
					dest  *int
					query string
				}{
					{&c.payments, "SELECT count(*) FROM payments WHERE payment_request_id IN (?)"},
					{&c.events, "SELECT count(*) FROM events WHERE type IN ('payment.capture', 'payment.failure') AND data->>'payment_request_id' IN (?)"},
				} {
					if err := tx.NewRaw(q.query, bun.In(ids)).Scan(ctx, q.dest); err != nil {
						return err
					}
				}
				for i := range ids {
					var status string
					if err := tx.NewRaw("SELECT status FROM payment_requests WHERE id = ?", ids[i]).Scan(ctx, &status); err != nil {
						return err
					}
					if status == statuses[i] {
						c.stored++
					}
				}
				batches = append(batches, c)
				if failBatch {
					return errSettle
				}
				return nil
			}
		}
	})
	tk := w.batchTokensFor(w.biz, w.cust)
	charged := chargeOf(tk.plain, rupiah(150000), "k-charged")
	if _, err := w.svc.Charge(w.ctx, w.biz, w.now(w.biz), charged); err != nil {
		t.Fatal(err)
	}
	w.cutShort(w.biz, chargeOf(tk.plain, rupiah(175000), "k-cut"))
	ps := []payments.ChargeParams{
		chargeOf(tk.plain, rupiah(150000), "k-1"),
		chargeOf(tk.plain, rupiah(21110), "k-2"),
		chargeOf(tk.plain, rupiah(175000), "k-cut"),
		charged,
		chargeOf(tk.pending, rupiah(150000), "k-pending"),
		chargeOf(tk.timeout, rupiah(150000), "k-timeout"),
		chargeOf(tk.alwaysFail, rupiah(150000), "k-fail"),
	}
	settling := []string{"k-1 SUCCEEDED", "k-2 FAILED", "k-cut SUCCEEDED", "k-fail FAILED"}
	mu.Lock()
	batches, singles = nil, nil
	mu.Unlock()

	// SettledBatchFunc fails: every answer recorded with it is rolled back.
	failBatch = true
	prs, errs := w.chargeBatch(w.biz, ps)
	if len(batches) != 1 || !slices.Equal(batches[0].keys, settling) {
		t.Fatalf("SettledBatchFunc calls %+v, want one with %v", batches, settling)
	}
	if c := batches[0]; c.payments != len(settling) || c.events != len(settling) || c.stored != len(settling) {
		t.Fatalf("SettledBatchFunc's transaction held %d payments, %d events, %d settled requests; want %d each",
			c.payments, c.events, c.stored, len(settling))
	}
	for i, p := range ps {
		switch p.IdempotencyKey {
		case "k-charged":
			if errs[i] != nil || prs[i].Status != payments.StatusSucceeded {
				t.Errorf("the key charged before: %v %v", prs[i], errs[i])
			}
		case "k-timeout":
			// Not answered: nothing to record, so nothing rolled back.
			if errs[i] != nil || prs[i].Status != payments.StatusSending {
				t.Errorf("the timed out charge: %v %v", prs[i], errs[i])
			}
		default:
			if !errors.Is(errs[i], errSettle) {
				t.Errorf("%s: %v %v, want the rollback's error", p.IdempotencyKey, prs[i], errs[i])
			}
		}
	}
	for _, key := range []string{"k-1", "k-2", "k-cut", "k-pending", "k-fail"} {
		var pr payments.PaymentRequest
		if err := w.db.Bun.NewSelect().Model(&pr).Where("business_id = ?", w.biz.ID).Where("provider_key = ?", key).Scan(w.ctx); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if pr.Status != payments.StatusSending || pr.LatestPaymentID != nil || pr.ProviderRef != nil {
			t.Errorf("%s after the rollback: %s, payment %v, provider ref %v", key, pr.Status, pr.LatestPaymentID, pr.ProviderRef)
		}
		if n := w.count("SELECT count(*) FROM payments WHERE payment_request_id = ?", pr.ID); n != 0 {
			t.Errorf("%s after the rollback: %d payments", key, n)
		}
		if n := w.count("SELECT count(*) FROM events WHERE data->>'payment_request_id' = ?", pr.ID); n != 0 {
			t.Errorf("%s after the rollback: %d events", key, n)
		}
	}
	if len(singles) != 0 {
		t.Fatalf("SettledFunc called for %v", singles)
	}

	// Again: the provider's answers (the same, by key) are recorded, and
	// the timed out charge, resumed, is answered too.
	failBatch = false
	batches = nil
	settling = []string{"k-1 SUCCEEDED", "k-2 FAILED", "k-cut SUCCEEDED", "k-fail FAILED", "k-timeout SUCCEEDED"}
	prs, errs = w.chargeBatch(w.biz, ps)
	if len(batches) != 1 || !slices.Equal(batches[0].keys, settling) {
		t.Fatalf("SettledBatchFunc calls %+v, want one with %v", batches, settling)
	}
	if c := batches[0]; c.payments != len(settling) || c.events != len(settling) || c.stored != len(settling) {
		t.Fatalf("SettledBatchFunc's transaction held %d payments, %d events, %d settled requests; want %d each",
			c.payments, c.events, c.stored, len(settling))
	}
	want := map[string]string{"k-1": "SUCCEEDED", "k-2": "FAILED", "k-cut": "SUCCEEDED", "k-charged": "SUCCEEDED",
		"k-pending": "PENDING", "k-timeout": "SUCCEEDED", "k-fail": "FAILED"}
	for i, p := range ps {
		if errs[i] != nil || prs[i].Status != want[p.IdempotencyKey] {
			t.Errorf("%s: %v %v, want %s", p.IdempotencyKey, prs[i], errs[i], want[p.IdempotencyKey])
		}
	}
	if len(singles) != 0 {
		t.Fatalf("SettledFunc called for %v", singles)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE business_id = ? AND payment_request_id IN (SELECT id FROM payment_requests WHERE type = 'PAY')", w.biz.ID); n != 6 {
		t.Errorf("%d payments of charges, want 6 (all but the pending one)", n)
	}
	// And again: nothing settles, nothing is called.
	batches = nil
	again, errs := w.chargeBatch(w.biz, ps)
	for i := range ps {
		if errs[i] != nil || again[i].ID != prs[i].ID || again[i].Status != prs[i].Status {
			t.Errorf("%s repeated: %v %v, want %v", ps[i].IdempotencyKey, again[i], errs[i], prs[i])
		}
	}
	if len(batches) != 0 || len(singles) != 0 {
		t.Fatalf("a repeat settled %+v %v", batches, singles)
	}
}

// TestChargeBatchSettledFunc: without SettledBatchFunc, ChargeBatch calls
// SettledFunc once for each request it settles, without a token, in the
// transaction that records it.
func TestChargeBatchSettledFunc(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	w := setup(t, func(w *world) {
		w.config = func(cfg *payments.Config) {
			cfg.SettledFunc = func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
				mu.Lock()
				defer mu.Unlock()
				var status string
				var pays int
				if err := tx.NewRaw("SELECT status, (SELECT count(*) FROM payments WHERE payment_request_id = r.id) FROM payment_requests r WHERE id = ?", pr.ID).
					Scan(ctx, &status, &pays); err != nil {
					return err
				}
				calls = append(calls, fmt.Sprintf("%s %s token=%v stored=%s payments=%d", pr.ProviderKey, pr.Status, tok != nil, status, pays))
				return nil
			}
		}
	})
	tk := w.batchTokensFor(w.biz, w.cust)
	w.cutShort(w.biz, chargeOf(tk.plain, rupiah(175000), "k-cut"))
	mu.Lock()
	calls = nil
	mu.Unlock()
	ps := []payments.ChargeParams{
		chargeOf(tk.plain, rupiah(150000), "k-1"),
		chargeOf(tk.alwaysFail, rupiah(150000), "k-fail"),
		chargeOf(tk.pending, rupiah(150000), "k-pending"),
		chargeOf(tk.plain, rupiah(175000), "k-cut"),
		chargeOf(tk.timeout, rupiah(150000), "k-timeout"),
	}
	w.chargeBatch(w.biz, ps)
	slices.Sort(calls)
	want := []string{
		"k-1 SUCCEEDED token=false stored=SUCCEEDED payments=1",
		"k-cut SUCCEEDED token=false stored=SUCCEEDED payments=1",
		"k-fail FAILED token=false stored=FAILED payments=1",
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("SettledFunc calls\n%s\nwant\n%s", indented(calls), indented(want))
	}
}

// TestChargeBatchRepeat: the same ChargeBatch again, in turn or at once,
// returns the same requests and never charges a key twice.
func TestChargeBatchRepeat(t *testing.T) {
	w := setup(t)
	tk := w.batchTokensFor(w.biz, w.cust)
	ps := []payments.ChargeParams{
		chargeOf(tk.plain, rupiah(150000), "k-1"),
		chargeOf(tk.plain, rupiah(21110), "k-2"),
		chargeOf(tk.alwaysFail, rupiah(150000), "k-fail"),
		chargeOf(tk.pending, rupiah(150000), "k-pending"),
		chargeOf(tk.timeout, rupiah(150000), "k-timeout"),
		chargeOf(tk.canceled, rupiah(150000), "k-canceled"),
	}
	first, firstErrs := w.chargeBatch(w.biz, ps)
	if firstErrs[4] != nil {
		t.Fatalf("the timed out charge: %v", firstErrs[4])
	}
	wantStatus(t, first[4], "PENDING", "") // timeout_once: the answer was lost
	second, secondErrs := w.chargeBatch(w.biz, ps)
	for i, p := range ps {
		switch {
		case p.IdempotencyKey == "k-canceled":
			wantError(t, firstErrs[i], "API_VALIDATION_ERROR", "payment_token_id")
			wantError(t, secondErrs[i], "API_VALIDATION_ERROR", "payment_token_id")
		case secondErrs[i] != nil || second[i].ID != first[i].ID:
			t.Errorf("%s again: %v %v, want request %s", p.IdempotencyKey, second[i], secondErrs[i], first[i].ID)
		case p.IdempotencyKey == "k-timeout":
			wantStatus(t, second[i], "SUCCEEDED", "") // resumed: the sandbox's stored answer
		case second[i].Status != first[i].Status || !reflect.DeepEqual(second[i].FailureCode, first[i].FailureCode):
			t.Errorf("%s again: %s %v, first %s %v", p.IdempotencyKey, second[i].Status, second[i].FailureCode, first[i].Status, first[i].FailureCode)
		}
	}

	// The same batch twice at once, with new keys: each key is charged
	// once. The call that loses the race to store a key may answer with an
	// error, never with a second request; a third call answers every
	// charge with the winner's request.
	for i := range ps {
		ps[i].IdempotencyKey += "-at-once"
	}
	var wg sync.WaitGroup
	answers := make([][]*payments.PaymentRequest, 2)
	for n := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[n], _ = w.svc.ChargeBatch(w.ctx, w.biz, w.now(w.biz), ps)
		}()
	}
	wg.Wait()
	for i := range ps {
		if a, b := answers[0][i], answers[1][i]; a != nil && b != nil && a.ID != b.ID {
			t.Errorf("%s: two requests %s and %s", ps[i].IdempotencyKey, a.ID, b.ID)
		}
	}
	third, thirdErrs := w.chargeBatch(w.biz, ps)
	for i, p := range ps {
		if p.IdempotencyKey != "k-canceled-at-once" && thirdErrs[i] != nil {
			t.Errorf("%s a third time: %v", p.IdempotencyKey, thirdErrs[i])
		}
		for _, ans := range answers {
			if ans[i] != nil && third[i] != nil && ans[i].ID != third[i].ID {
				t.Errorf("%s: requests %s and %s", p.IdempotencyKey, ans[i].ID, third[i].ID)
			}
		}
	}

	var perKey []struct {
		Key string `bun:"idempotency_key"`
		N   int    `bun:"n"`
	}
	if err := w.db.Bun.NewRaw(`SELECT idempotency_key, count(*) AS n FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'
		GROUP BY idempotency_key ORDER BY idempotency_key`, w.biz.ID).Scan(w.ctx, &perKey); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range perKey {
		if k.N != 1 {
			t.Errorf("key %s charged %d times", k.Key, k.N)
		}
		keys = append(keys, k.Key)
	}
	wantKeys := []string{"k-1", "k-1-at-once", "k-2", "k-2-at-once", "k-fail", "k-fail-at-once", "k-pending", "k-pending-at-once",
		"k-timeout", "k-timeout-at-once"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("sandbox charges of keys %v, want %v", keys, wantKeys)
	}
	if n := w.count(`SELECT count(*) FROM payment_requests WHERE business_id = ? AND type = 'PAY'`, w.biz.ID); n != len(wantKeys) {
		t.Errorf("%d payment requests, want %d", n, len(wantKeys))
	}
	if n := w.count(`SELECT count(*) FROM payments p JOIN payment_requests r ON r.id = p.payment_request_id
		WHERE r.business_id = ? AND r.type = 'PAY'`, w.biz.ID); n != 8 {
		t.Errorf("%d payments of charges, want 8 (all but the pending ones)", n)
	}
	if n := w.count(`SELECT count(*) FROM events e JOIN payment_requests r ON r.id = e.data->>'payment_request_id'
		WHERE e.business_id = ? AND r.type = 'PAY' AND e.type IN ('payment.capture', 'payment.failure')`, w.biz.ID); n != 8 {
		t.Errorf("%d payment events of charges, want 8", n)
	}
}

// TestOpenChargesThenSendCharges checks ChargeBatch's two halves as the
// engine uses them: OpenCharges stores SENDING requests in the caller's
// transaction, answering each charge it cannot make with ChargeBatch's
// error; SendCharges, after the commit, charges them; and a key used
// before fails the caller's transaction instead of charging again.
func TestOpenChargesThenSendCharges(t *testing.T) {
	w := setup(t)
	biz, tk := w.biz, w.batchTokensFor(w.biz, w.cust)
	toks, err := w.svc.Tokens(w.ctx, w.db.Bun, biz.ID, []string{tk.plain, tk.alwaysFail, tk.canceled})
	if err != nil {
		t.Fatal(err)
	}
	ps := []payments.ChargeParams{
		chargeOf(tk.plain, rupiah(150000), "o-1"),
		chargeOf(tk.alwaysFail, rupiah(150000), "o-2"),
		chargeOf(tk.plain, rupiah(150000), "o-1"), // the key again
		chargeOf(tk.canceled, rupiah(100), "o-canceled"),
		chargeOf(tk.plain, rupiah(0), "o-zero"),
		chargeOf(tk.plain, billing.Money{Amount: decimal.NewFromInt(100), Currency: "PHP"}, "o-currency"),
		chargeOf("pt-00000000-0000-7000-8000-000000000000", rupiah(100), "o-unknown"),
	}
	var prs []*payments.PaymentRequest
	var errs []error
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		prs, errs, err = w.svc.OpenCharges(ctx, tx, biz.ID, w.now(biz), ps, toks)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []billing.ErrorCode{"", "", billing.ECONFLICT, billing.EINVALID, billing.EINVALID, billing.EINVALID, billing.ENOTFOUND}
	for i, want := range wantCodes {
		if got := billing.CodeOf(errs[i]); got != want || (want == "") != (prs[i] != nil) {
			t.Errorf("charge %d (%s): request %v, error %v; want code %q", i, ps[i].IdempotencyKey, prs[i], errs[i], want)
		}
	}
	for _, i := range []int{0, 1} {
		if got := w.get(biz, prs[i].ID); got.Status != payments.StatusSending || got.ProviderKey != ps[i].IdempotencyKey {
			t.Fatalf("request %s before sending: %s, key %s", got.ID, got.Status, got.ProviderKey)
		}
	}

	answers, sendErrs := w.svc.SendCharges(w.ctx, biz, w.now(biz), prs, toks)
	if sendErrs[0] != nil || answers[0].Status != payments.StatusSucceeded || sendErrs[1] != nil || answers[1].Status != payments.StatusFailed {
		t.Fatalf("sent: %v %v, %v %v", answers[0], sendErrs[0], answers[1], sendErrs[1])
	}
	for i := 2; i < len(ps); i++ {
		if answers[i] != nil || sendErrs[i] != nil {
			t.Errorf("charge %d was not opened but got %v, %v", i, answers[i], sendErrs[i])
		}
	}
	if n := w.count("SELECT count(*) FROM payments WHERE payment_request_id IN (?, ?)", prs[0].ID, prs[1].ID); n != 2 {
		t.Fatalf("%d payments recorded, want 2", n)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE payment_request_id = ? AND status = 'SUCCEEDED' AND amount = 150000 AND currency = 'IDR'",
		prs[0].ID); n != 1 || answers[0].LatestPaymentID == nil {
		t.Fatalf("the charge took no payment of IDR 150,000 (%d), latest payment %v", n, answers[0].LatestPaymentID)
	}

	// A key stored before fails the transaction: nothing is stored twice.
	before := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", biz.ID)
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, _, err := w.svc.OpenCharges(ctx, tx, biz.ID, w.now(biz), []payments.ChargeParams{chargeOf(tk.plain, rupiah(7), "o-new"), ps[0]}, toks)
		return err
	})
	if err == nil {
		t.Fatal("a stored key was opened again")
	}
	if n := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", biz.ID); n != before {
		t.Fatalf("%d payment requests after the refused transaction, want %d", n, before)
	}
}
