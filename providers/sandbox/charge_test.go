package sandbox_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

// chargeWorld is a sandbox business with one token of each kind the
// charge tests need.
type chargeWorld struct {
	t    *testing.T
	ctx  context.Context
	db   *postgres.DB
	p    *sandbox.Provider
	cfg  providers.Config
	toks map[string]string // label → token id
	due  *[]string         // businesses DueFunc was called for, in order
}

var chargeNow = opened

// newChargeWorld makes a business and its tokens: plain, cancelled,
// always_fail, fail_until an hour after chargeNow, pending_then_succeed and
// timeout_once.
func newChargeWorld(t *testing.T, db *postgres.DB, p *sandbox.Provider, due *[]string) *chargeWorld {
	t.Helper()
	w := &chargeWorld{t: t, ctx: context.Background(), db: db, p: p, cfg: newBusiness(t, db), toks: map[string]string{}, due: due}
	behaviours := map[string]string{"plain": "", "cancelled": "", "always_fail": "always_fail",
		"fail_until": "fail_until:" + chargeNow.Add(time.Hour).Format(time.RFC3339), "pending": "pending_then_succeed", "timeout": "timeout_once"}
	for _, label := range []string{"plain", "cancelled", "always_fail", "fail_until", "pending", "timeout"} {
		w.toks[label] = link(t, p, w.cfg, "link-"+label, behaviours[label], chargeNow)
	}
	if err := p.CancelToken(w.ctx, w.cfg, w.toks["cancelled"]); err != nil {
		t.Fatal(err)
	}
	return w
}

// charge is one request of the test batch, by token label.
type charge struct {
	key, token string
	amount     billing.Money
	at         time.Duration // after chargeNow
	want       string        // status and failure code, or error kind and code
}

func (w *chargeWorld) request(c charge) providers.ChargeRequest {
	tok, ok := w.toks[c.token]
	if !ok {
		tok = "sbxpt-" + c.token
	}
	return providers.ChargeRequest{BusinessID: w.cfg.BusinessID, IdempotencyKey: c.key, Reference: "pr-" + c.key, TokenRef: tok, Country: "ID",
		Amount: c.amount, ChannelCode: "OVO", Description: "charge " + c.key, Now: chargeNow.Add(c.at)}
}

// batchCharges cover every way Charge answers, with repeats inside the
// batch and of charges made before it ("before", "before-pending").
var batchCharges = []charge{
	{"new", "plain", idr(5000), 0, "SUCCEEDED"},
	{"before", "plain", idr(5000), 0, "SUCCEEDED"},
	{"before-pending", "pending", idr(5000), 0, "SUCCEEDED"}, // settled since
	{"twice", "plain", idr(7000), 0, "SUCCEEDED"},
	{"twice", "plain", idr(7000), time.Second, "SUCCEEDED"},
	{"before", "plain", idr(6000), 0, "invalid IDEMPOTENCY_ERROR"},
	{"twice", "plain", idr(7001), 0, "invalid IDEMPOTENCY_ERROR"},
	{"unknown", "nope", idr(5000), 0, "declined INVALID_TOKEN"},
	{"cancelled", "cancelled", idr(5000), 0, "declined INVALID_TOKEN"},
	{"currency", "plain", billing.Money{Amount: decimal.NewFromInt(5000), Currency: "PHP"}, 0, "invalid INVALID_VALUE_ERROR"},
	{"always-fail", "always_fail", idr(5000), 0, "FAILED INSUFFICIENT_BALANCE"},
	{"fail-until-before", "fail_until", idr(5000), time.Hour - time.Second, "FAILED INSUFFICIENT_BALANCE"},
	{"fail-until-after", "fail_until", idr(5000), time.Hour, "SUCCEEDED"},
	{"test-amount", "plain", idr(21110), 0, "FAILED INSUFFICIENT_BALANCE"},
	{"test-amount-after", "fail_until", idr(21107), 2 * time.Hour, "FAILED MAXIMUM_LIMIT_REACHED"},
	{"pending", "pending", idr(5000), 0, "PENDING"},
	{"pending", "pending", idr(5000), time.Minute, "SUCCEEDED"},
	{"timeout", "timeout", idr(5000), 0, "transient "},
	{"timeout-2", "timeout", idr(5000), 0, "SUCCEEDED"},
	{"timeout", "timeout", idr(5000), 0, "SUCCEEDED"},
	// A refused request stores nothing: its key is free for the next.
	{"refused-then", "cancelled", idr(5000), 0, "declined INVALID_TOKEN"},
	{"refused-then", "plain", idr(5000), 0, "SUCCEEDED"},
}

// TestChargeBatchAsCharges: ChargeBatch answers every request as Charge
// answers the same requests one by one (in another business), stores the
// same payments and callbacks, and notifies once for the batch.
func TestChargeBatchAsCharges(t *testing.T) {
	db := pgtest.New(t)
	var due []string
	p := sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: func(ctx context.Context, id string) { due = append(due, id) }})
	batch, single := newChargeWorld(t, db, p, &due), newChargeWorld(t, db, p, &due)
	for _, w := range []*chargeWorld{batch, single} {
		for _, c := range []charge{{"before", "plain", idr(5000), -time.Hour, ""}, {"before-pending", "pending", idr(5000), -time.Hour, ""}} {
			if _, err := p.Charge(w.ctx, w.cfg, w.request(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	due = nil
	reqs := make([]providers.ChargeRequest, len(batchCharges))
	for i, c := range batchCharges {
		reqs[i] = batch.request(c)
	}
	results, errs := p.ChargeBatch(batch.ctx, batch.cfg, reqs)
	if len(due) != 1 || due[0] != batch.cfg.BusinessID {
		t.Errorf("the batch notified %v, want its business once", due)
	}
	batchRefs, singleRefs := refLabels{}, refLabels{}
	for i, c := range batchCharges {
		one, err := p.Charge(single.ctx, single.cfg, single.request(c))
		got, want := answer(results[i], errs[i], batchRefs), answer(one, err, singleRefs)
		if got != want {
			t.Errorf("%d %s: batch answered %s, Charge %s", i, c.key, got, want)
		}
		if summary := summarize(results[i], errs[i]); summary != c.want {
			t.Errorf("%d %s: answered %q, want %q", i, c.key, summary, c.want)
		}
	}
	if got, want := batch.books(), single.books(); !reflect.DeepEqual(got, want) {
		t.Errorf("stored rows differ:\nbatch  %v\nsingle %v", got, want)
	}
	for _, w := range []*chargeWorld{batch, single} {
		if n := w.count("SELECT count(*) FROM sandbox_tokens WHERE business_id = ? AND timeout_used"); n != 1 {
			t.Errorf("%d tokens with timeout_once spent, want 1", n)
		}
	}
	// Repeating the whole batch charges nothing more.
	again, againErrs := p.ChargeBatch(batch.ctx, batch.cfg, reqs)
	for i := range reqs {
		if errs[i] == nil && (againErrs[i] != nil || again[i].ProviderRef != results[i].ProviderRef) {
			t.Errorf("%d: repeated batch answered %+v %v, first %+v", i, again[i], againErrs[i], results[i])
		}
	}
	if n := batch.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'"); n != 13 {
		t.Errorf("%d charges stored, want 13 (2 before the batch, 11 by it)", n)
	}
}

// summarize is an answer as "STATUS FAILURE_CODE" or "kind CODE".
func summarize(res providers.Result, err error) string {
	if err != nil {
		e, _ := providers.AsError(err)
		return fmt.Sprintf("%s %s", e.Kind, e.Code)
	}
	if res.FailureCode == "" {
		return string(res.Status)
	}
	return string(res.Status) + " " + res.FailureCode
}

// refLabels names provider ids by the order they were first seen.
type refLabels map[string]string

func (l refLabels) label(id string) string {
	if id == "" {
		return ""
	}
	if _, ok := l[id]; !ok {
		l[id] = fmt.Sprintf("#%d", len(l))
	}
	return l[id]
}

// answer is everything an answer says, its ids labelled.
func answer(res providers.Result, err error, refs refLabels) string {
	if err != nil {
		e, ok := providers.AsError(err)
		if !ok {
			return "error " + err.Error()
		}
		return fmt.Sprintf("error %s %s %s %q %v", e.Kind, e.Code, e.Field, e.Message, e.Err)
	}
	res.ProviderRef, res.PaymentRef = refs.label(res.ProviderRef), refs.label(res.PaymentRef)
	return fmt.Sprintf("%+v", res)
}

// books are the business's charges and their callbacks, as text with the
// generated ids replaced by what they name.
func (w *chargeWorld) books() []string {
	w.t.Helper()
	var rows []struct {
		ID, Key, PaymentRef, Body, Row string
	}
	err := w.db.Bun.NewRaw(`SELECT p.id, p.idempotency_key AS key, coalesce(p.payment_ref, '') AS payment_ref, coalesce(c.body, '') AS body,
			concat_ws(' ', p.kind, p.reference, p.currency, p.amount, p.channel_code, p.behavior, p.token_id, p.outcome, p.failure_code,
				p.canceled, p.settles_at, p.expires_at, p.created, c.event, c.due_at, c.delivered_at, c.created) AS row
		FROM sandbox_payments AS p LEFT JOIN sandbox_callbacks AS c ON c.payment_id = p.id
		WHERE p.business_id = ? AND p.kind = 'CHARGE' ORDER BY c.id, p.idempotency_key`, w.cfg.BusinessID).Scan(w.ctx, &rows)
	if err != nil {
		w.t.Fatal(err)
	}
	names := map[string]string{w.cfg.BusinessID: "<business>"}
	for label, id := range w.toks {
		names[id] = "<token " + label + ">"
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		names[r.ID], names[r.PaymentRef] = "<payment "+r.Key+">", "<paid "+r.Key+">"
		out[i] = r.Key + ": " + r.Row + " " + r.Body
		for id, name := range names {
			if id != "" {
				out[i] = strings.ReplaceAll(out[i], id, name)
			}
		}
	}
	return out
}

func (w *chargeWorld) count(query string) int {
	w.t.Helper()
	var n int
	if err := w.db.Bun.NewRaw(query, w.cfg.BusinessID).Scan(w.ctx, &n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// TestChargeBatchRace: a key that another transaction stores while the
// batch runs is answered from that payment, as Charge answers a repeat:
// the same request gets that payment, another gets IDEMPOTENCY_ERROR; the
// rest of the batch is charged once.
func TestChargeBatchRace(t *testing.T) {
	db := pgtest.New(t)
	p := sandbox.New(sandbox.Config{DB: db.Bun})
	w := newChargeWorld(t, db, p, new([]string))
	model := charge{"model", "plain", idr(5000), 0, ""}
	if _, err := p.Charge(w.ctx, w.cfg, w.request(model)); err != nil {
		t.Fatal(err)
	}
	// Another transaction stores "same" (model's request, so the same
	// request hash) and "other" (another request) without committing yet.
	// Without a token, the rows lock none.
	tx, err := db.Bun.BeginTx(w.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, key := range []string{"same", "other"} {
		if _, err := tx.NewRaw(`INSERT INTO sandbox_payments (id, business_id, idempotency_key, kind, reference, request_hash, currency, amount,
				channel_code, payment_ref, outcome, settles_at, created)
			SELECT 'sbxpr-raced-' || ?, business_id, ?, kind, reference, CASE WHEN ? = 'same' THEN request_hash ELSE '\x00' END, currency,
				amount, channel_code, 'sbxpy-raced-' || ?, outcome, settles_at, created
			FROM sandbox_payments WHERE business_id = ? AND idempotency_key = 'model'`, key, key, key, key, w.cfg.BusinessID).Exec(w.ctx); err != nil {
			t.Fatal(err)
		}
	}
	same := model
	same.key = "same"
	reqs := []providers.ChargeRequest{w.request(charge{"first", "plain", idr(5000), 0, ""}), w.request(charge{"other", "plain", idr(5000), 0, ""}),
		w.request(same), w.request(charge{"last", "pending", idr(5000), 0, ""})}
	reqs[2].Reference = "pr-model"
	type answered struct {
		results []providers.Result
		errs    []error
	}
	done := make(chan answered)
	go func() {
		r, e := p.ChargeBatch(w.ctx, w.cfg, reqs)
		done <- answered{r, e}
	}()
	// Commit once the batch waits on the uncommitted keys.
	for waiting := 0; waiting == 0; time.Sleep(10 * time.Millisecond) {
		if err := db.Bun.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).
			Scan(w.ctx, &waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	want := []string{"SUCCEEDED", "invalid IDEMPOTENCY_ERROR", "SUCCEEDED", "PENDING"}
	for i := range reqs {
		if s := summarize(got.results[i], got.errs[i]); s != want[i] {
			t.Errorf("%s answered %q, want %q", reqs[i].IdempotencyKey, s, want[i])
		}
	}
	if got.results[2].ProviderRef != "sbxpr-raced-same" {
		t.Errorf("the repeat answered %s, not the stored payment", got.results[2].ProviderRef)
	}
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND idempotency_key IN ('first', 'last')"); n != 2 {
		t.Errorf("%d payments for first and last, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM sandbox_callbacks AS c JOIN sandbox_payments AS p ON p.id = c.payment_id
		WHERE c.business_id = ? AND p.idempotency_key IN ('first', 'last')`); n != 2 {
		t.Errorf("%d callbacks for first and last, want 2", n)
	}
}
