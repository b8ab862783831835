package payments_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/uptrace/bun"
)

// settledLog records SettledFunc's calls, and can make the next one fail.
type settledLog struct {
	mu       sync.Mutex
	calls    []string // "reference_id STATUS"
	failNext bool
}

func (l *settledLog) settled(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := tx.(bun.Tx); !ok {
		return errors.New("SettledFunc was called outside a transaction")
	}
	var status string
	if err := tx.NewRaw("SELECT status FROM payment_requests WHERE id = ?", pr.ID).Scan(ctx, &status); err != nil || status != pr.Status {
		return errors.New("the request's new state is not in the transaction")
	}
	if l.failNext {
		l.failNext = false
		return errors.New("the plan could not activate")
	}
	l.calls = append(l.calls, pr.ReferenceID+" "+pr.Status)
	return nil
}

func (l *settledLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls := l.calls
	l.calls = nil
	return calls
}

// savedToken saves a token of cust in biz with a sandbox behaviour ("" for
// none) and returns its id.
func (w *world) savedToken(biz *business.Business, cust *customers.Customer, behaviour string) string {
	w.t.Helper()
	var metadata any
	if behaviour != "" {
		metadata = map[string]any{"sandbox_behavior": behaviour}
	}
	pr := w.mustCreate(biz, w.saveBody("reference_id", "link-"+behaviour, "customer_id", cust.ID, "metadata", metadata), "")
	w.simulate(biz, pr.ID, 0)
	w.deliver(biz)
	if pr = w.get(biz, pr.ID); pr.PaymentTokenID == nil {
		w.t.Fatalf("linking saved no token: %+v", pr)
	}
	return *pr.PaymentTokenID
}

// sandboxCallback is a row of sandbox_callbacks, as delivered.
type sandboxCallback struct {
	ID   int64
	Body []byte
}

func (c sandboxCallback) header() http.Header {
	h := http.Header{}
	h.Set("Webhook-Id", "sbxcb-"+strconv.FormatInt(c.ID, 10))
	return h
}

// undelivered returns the business's undelivered sandbox callbacks about
// the payment request with reference_id ref.
func (w *world) undelivered(biz *business.Business, ref string) []sandboxCallback {
	w.t.Helper()
	var cbs []sandboxCallback
	err := w.db.Bun.NewRaw(`SELECT c.id, c.body FROM sandbox_callbacks AS c
		JOIN sandbox_payments AS p ON p.id = c.payment_id JOIN payment_requests AS pr ON pr.id = p.reference
		WHERE c.business_id = ? AND pr.reference_id = ? AND c.delivered_at IS NULL ORDER BY c.id`, biz.ID, ref).Scan(w.ctx, &cbs)
	if err != nil || len(cbs) == 0 {
		w.t.Fatalf("no undelivered callback about %s (%v)", ref, err)
	}
	return cbs
}

// receiveNow hands a sandbox callback to the single-callback path.
func (w *world) receiveNow(biz *business.Business, cb sandboxCallback) payments.CallbackOutcome {
	w.t.Helper()
	outcome, err := w.svc.ReceiveSandboxCallbackForTest(w.ctx, biz.ID, cb.header(), cb.Body)
	if err != nil && outcome != payments.OutcomeUnparseable {
		w.t.Fatal(err)
	}
	return outcome
}

// callbackScenario readies, in biz, sandbox callbacks of every kind a
// delivery meets, all due a minute later: captures settling PENDING
// charges (p1, p2), callbacks of charges already final (f1 SUCCEEDED, f2
// FAILED), callbacks received before (of p3 and f1), one about no payment
// request and one that cannot be read.
func (w *world) callbackScenario(biz *business.Business, cust *customers.Customer) {
	w.t.Helper()
	plain, pending := w.savedToken(biz, cust, ""), w.savedToken(biz, cust, "pending_then_succeed")
	for _, ref := range []string{"p1", "p2", "p3"} {
		wantStatus(w.t, w.mustCreate(biz, w.payBody(pending, "reference_id", ref), ""), "PENDING", "")
	}
	wantStatus(w.t, w.mustCreate(biz, w.payBody(plain, "reference_id", "f1"), ""), "SUCCEEDED", "")
	wantStatus(w.t, w.mustCreate(biz, w.payBody(plain, "reference_id", "f2", "request_amount", 21110), ""), "FAILED", "INSUFFICIENT_BALANCE")
	for _, ref := range []string{"p3", "f1"} {
		if got := w.receiveNow(biz, w.undelivered(biz, ref)[0]); got != payments.OutcomeProcessed {
			w.t.Fatalf("%s received early: %s", ref, got)
		}
	}
	f2 := w.undelivered(biz, "f2")[0]
	unmatched := strings.ReplaceAll(string(f2.Body), w.requestID(biz, "f2"), billing.NewID(billing.PrefixPaymentRequest))
	for _, body := range []string{unmatched, `{"event":`} {
		if _, err := w.db.Bun.NewRaw(`INSERT INTO sandbox_callbacks (business_id, payment_id, event, due_at, body, created)
			SELECT business_id, payment_id, event, due_at, ?, created FROM sandbox_callbacks WHERE id = ?`, []byte(body), f2.ID).Exec(w.ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	w.advance(biz, time.Minute)
}

// storedCallbacks are the business's provider_callbacks rows, oldest
// first, as "event_type OUTCOME reference_id times_received".
func (w *world) storedCallbacks(biz *business.Business) []string {
	w.t.Helper()
	var rows []string
	err := w.db.Bun.NewRaw(`SELECT concat_ws(' ', coalesce(c.event_type, '-'), c.outcome, coalesce(pr.reference_id, '-'), c.times_received)
		FROM provider_callbacks AS c LEFT JOIN payment_requests AS pr ON pr.id = c.payment_request_id
		WHERE c.business_id = ? ORDER BY c.id`, biz.ID).Scan(w.ctx, &rows)
	if err != nil {
		w.t.Fatal(err)
	}
	return rows
}

// requestStates are the business's payment requests as "reference_id
// STATUS failure_code", by reference.
func (w *world) requestStates(biz *business.Business) []string {
	w.t.Helper()
	var rows []string
	err := w.db.Bun.NewRaw(`SELECT concat_ws(' ', reference_id, status, failure_code) FROM payment_requests WHERE business_id = ?
		ORDER BY reference_id, created`, biz.ID).Scan(w.ctx, &rows)
	if err != nil {
		w.t.Fatal(err)
	}
	return rows
}

// TestCallbackBatchAsSingle: a batch of sandbox callbacks stores and does
// what the same callbacks do one at a time through the single path:
// duplicates are counted, PENDING requests settle (SettledFunc once each,
// in the batch's transaction, whose failure rolls the whole batch back),
// callbacks of final requests change nothing, and the unmatched and the
// unreadable are stored as such.
func TestCallbackBatchAsSingle(t *testing.T) {
	var log settledLog
	w := setup(t, func(w *world) {
		w.config = func(cfg *payments.Config) { cfg.SettledFunc = log.settled }
	})
	batch, single := w.biz, w.newBusiness(business.ModeSandbox)
	w.callbackScenario(batch, w.cust)
	w.callbackScenario(single, w.newCustomer(single, "meter-002"))
	log.take()
	before := w.storedCallbacks(batch)

	// The batch's SettledFunc fails: nothing of the batch is kept.
	log.failNext = true
	if _, err := w.svc.DeliverSandboxCallbacks(w.ctx, batch.ID, w.now(batch)); err == nil {
		t.Fatal("the SettledFunc error was not returned")
	}
	if got := w.storedCallbacks(batch); !reflect.DeepEqual(got, before) {
		t.Fatalf("a failed batch stored callbacks: %v", got[len(before):])
	}
	if n := w.count("SELECT count(*) FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", batch.ID); n != 7 {
		t.Fatalf("%d sandbox callbacks undelivered, want all 7", n)
	}
	wantStatus(t, w.get(batch, w.requestID(batch, "p1")), "PENDING", "")

	if n, err := w.svc.DeliverSandboxCallbacks(w.ctx, batch.ID, w.now(batch)); err != nil || n != 7 {
		t.Fatalf("delivered %d (%v), want 7", n, err)
	}
	batchCalls := log.take()
	// The single path: one callback a transaction, in the same order.
	if n, err := w.deliverOneByOne(single); err != nil || n != 7 {
		t.Fatalf("delivered %d one by one (%v), want 7", n, err)
	}
	if want := []string{"p1 SUCCEEDED", "p2 SUCCEEDED"}; !reflect.DeepEqual(batchCalls, want) || !reflect.DeepEqual(log.take(), want) {
		t.Fatalf("SettledFunc calls %v, want %v on each path", batchCalls, want)
	}
	got, want := w.storedCallbacks(batch), w.storedCallbacks(single)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored callbacks differ:\nbatch  %v\nsingle %v", got, want)
	}
	delivered := []string{
		"payment.capture PROCESSED p3 2", "payment.capture PROCESSED f1 2", // received before
		"payment.failure PROCESSED f2 1", "payment.failure UNMATCHED - 1", "- UNPARSEABLE - 1",
		"payment.capture PROCESSED p1 1", "payment.capture PROCESSED p2 1",
	}
	if tail := got[len(got)-len(delivered):]; !reflect.DeepEqual(tail, delivered) {
		t.Fatalf("stored callbacks %v, want %v", tail, delivered)
	}
	if got, want := w.requestStates(batch), w.requestStates(single); !reflect.DeepEqual(got, want) {
		t.Fatalf("payment requests differ:\nbatch  %v\nsingle %v", got, want)
	}
	if got, want := w.events(batch), w.events(single); !reflect.DeepEqual(got, want) {
		t.Fatalf("events differ:\nbatch  %v\nsingle %v", got, want)
	}
}

// deliverOneByOne delivers the business's due sandbox callbacks through
// the single-callback path, one a transaction, in order.
func (w *world) deliverOneByOne(biz *business.Business) (int, error) {
	src := sandbox.New(sandbox.Config{DB: w.db.Bun})
	return src.DeliverDue(w.ctx, biz.ID, w.now(biz), 1, func(ctx context.Context, ins []providers.CallbackInput) error {
		w.receiveNow(biz, sandboxCallback{ID: mustID(w.t, ins[0].Header), Body: ins[0].Body})
		return nil
	})
}

func mustID(t *testing.T, h http.Header) int64 {
	t.Helper()
	id, err := strconv.ParseInt(strings.TrimPrefix(h.Get("Webhook-Id"), "sbxcb-"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (w *world) requestID(biz *business.Business, ref string) string {
	w.t.Helper()
	var id string
	if err := w.db.Bun.NewRaw("SELECT id FROM payment_requests WHERE business_id = ? AND reference_id = ?", biz.ID, ref).Scan(w.ctx, &id); err != nil {
		w.t.Fatal(err)
	}
	return id
}

// statements records the statements bun runs while on.
type statements struct {
	mu  sync.Mutex
	on  bool
	ran []string
}

func (s *statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (s *statements) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		s.ran = append(s.ran, e.Query)
	}
}

// TestFinalCallbacksWriteNothing: a batch of callbacks that only repeat
// what their requests already are locks the requests in one statement (a
// prepared one, counted by its postgres.Statement: bun does not see it)
// and applies them without another; besides reads (the keys stored
// before, the business, its settings) its only writes are the callbacks'
// rows, in statements bun does not see either (arrays bound as
// parameters).
func TestFinalCallbacksWriteNothing(t *testing.T) {
	var seen statements
	w := setup(t, func(w *world) {
		w.db, _ = pgtest.Fresh(t)
		w.db.Bun.AddQueryHook(&seen)
	})
	tok := w.savedToken(w.biz, w.cust, "")
	for _, ref := range []string{"c1", "c2", "c3"} {
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok, "reference_id", ref), ""), "SUCCEEDED", "")
	}
	seen.mu.Lock()
	seen.on = true
	seen.mu.Unlock()
	locks := payments.CallbackRequestLocksForTest()
	if n, err := w.svc.DeliverSandboxCallbacks(w.ctx, w.biz.ID, w.now(w.biz)); err != nil || n != 3 {
		t.Fatalf("delivered %d (%v)", n, err)
	}
	seen.mu.Lock()
	ran := seen.ran
	seen.on = false
	seen.mu.Unlock()
	var requests int
	for _, q := range ran {
		switch {
		case q == "BEGIN" || q == "COMMIT":
		case strings.HasPrefix(q, "SELECT") && strings.Contains(q, `FROM "payment_requests"`):
			requests++
		case strings.HasPrefix(q, "SELECT") && (strings.Contains(q, `FROM "businesses"`) || strings.Contains(q, `FROM "provider_settings"`) ||
			strings.Contains(q, `FROM "sandbox_callbacks"`) || strings.Contains(q, `FROM "provider_callbacks"`) ||
			strings.Contains(q, `FROM provider_callbacks AS p`)):
		default:
			t.Errorf("statement %s", q)
		}
	}
	if locks = payments.CallbackRequestLocksForTest() - locks; requests+int(locks) != 1 {
		t.Errorf("%d selects of payment requests (%d of them the lock), want 1", requests+int(locks), locks)
	}
	if got := w.count("SELECT count(*) FROM provider_callbacks WHERE business_id = ? AND outcome = 'PROCESSED' AND payment_request_id IS NOT NULL", w.biz.ID); got != 5 {
		t.Errorf("%d callbacks stored PROCESSED with their request, want 5 (the linking's 2 and the 3 charges')", got)
	}
}

// repeating is the sandbox, delivering every batch with its first
// callback again at its end, as a provider that repeats itself may.
type repeating struct{ *sandbox.Provider }

func (r repeating) DeliverDue(ctx context.Context, businessID string, upTo time.Time, size int, receive func(context.Context, []providers.CallbackInput) error) (int, error) {
	return r.Provider.DeliverDue(ctx, businessID, upTo, size, func(ctx context.Context, ins []providers.CallbackInput) error {
		return receive(ctx, append(ins, ins[0]))
	})
}

// TestRepeatWithinBatch: a callback repeated within a batch is a
// DUPLICATE of its first delivery, as it is when it comes again later.
func TestRepeatWithinBatch(t *testing.T) {
	var log settledLog
	w := setup(t, func(w *world) {
		w.extra = []providers.Provider{repeating{sandbox.New(sandbox.Config{DB: w.db.Bun})}}
		w.config = func(cfg *payments.Config) { cfg.SettledFunc = log.settled }
	})
	tok := w.savedToken(w.biz, w.cust, "pending_then_succeed")
	for _, ref := range []string{"p1", "p2"} {
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok, "reference_id", ref), ""), "PENDING", "")
	}
	w.advance(w.biz, time.Minute)
	log.take()
	if n := w.deliver(w.biz); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	if calls := log.take(); !reflect.DeepEqual(calls, []string{"p1 SUCCEEDED", "p2 SUCCEEDED"}) {
		t.Fatalf("SettledFunc calls %v", calls)
	}
	got := w.storedCallbacks(w.biz)
	want := []string{"payment.capture PROCESSED link-pending_then_succeed 2", "payment_token.activation PROCESSED link-pending_then_succeed 1",
		"payment.capture PROCESSED p1 2", "payment.capture PROCESSED p2 1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored callbacks %v, want %v", got, want)
	}
}

// TestSameCallbackAtOnce: one callback delivered eight times at once (a
// provider retrying while the first delivery is still being processed),
// about a failed payment it captures late: the payment is captured once,
// one payment.capture is emitted, one delivery is PROCESSED and the others
// DUPLICATE, and every receipt is counted on the one stored row.
func TestSameCallbackAtOnce(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, nil, "l")
	failed := w.mustCreate(w.biz, w.payBody(tok, "request_amount", 21110), "")
	w.deliver(w.biz)
	wantStatus(t, w.get(w.biz, failed.ID), "FAILED", "INSUFFICIENT_BALANCE")
	captures := len(w.eventData(w.biz, "payment.capture"))
	w.sandboxCallback(failed.ID, "payment.capture", "SUCCEEDED", "")
	var body []byte
	if err := w.db.Bun.NewRaw("SELECT body FROM sandbox_callbacks WHERE business_id = ? ORDER BY id DESC LIMIT 1", w.biz.ID).Scan(w.ctx, &body); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Webhook-Id", "burst-1")
	const n = 8
	outcomes := make([]payments.CallbackOutcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i], errs[i] = w.svc.ReceiveSandboxCallbackForTest(w.ctx, w.biz.ID, h, body)
		}()
	}
	wg.Wait()
	count := map[payments.CallbackOutcome]int{}
	for i := range outcomes {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		count[outcomes[i]]++
	}
	if count[payments.OutcomeProcessed] != 1 || count[payments.OutcomeDuplicate] != n-1 {
		t.Fatalf("outcomes %v, want one PROCESSED and %d DUPLICATE", count, n-1)
	}
	wantStatus(t, w.get(w.biz, failed.ID), "SUCCEEDED", "")
	if got := w.count("SELECT count(*) FROM payments WHERE payment_request_id = ? AND status = 'SUCCEEDED'", failed.ID); got != 1 {
		t.Fatalf("%d captured payments, want 1", got)
	}
	if got := len(w.eventData(w.biz, "payment.capture")); got != captures+1 {
		t.Fatalf("%d payment.capture events, want %d", got, captures+1)
	}
	if got := w.count("SELECT times_received FROM provider_callbacks WHERE business_id = ? AND dedupe_key = 'burst-1' AND outcome = 'PROCESSED'", w.biz.ID); got != n {
		t.Fatalf("times_received %d on the PROCESSED row, want %d", got, n)
	}
}

// TestCallbacksSettleSendingChargesTogether: callbacks that bring charges
// still SENDING (their answers lost) to a final state are settled
// together, through SettledBatchFunc once, as the answers of a batch of
// charges are (settleCharges, which TestChargeBatch* hold to what apply
// does one by one); what they leave is what the same callbacks leave
// delivered one a transaction.
func TestCallbacksSettleSendingChargesTogether(t *testing.T) {
	var log settledLog
	var batches [][]string
	w := setup(t, func(w *world) {
		w.config = func(cfg *payments.Config) {
			cfg.SettledFunc = log.settled
			cfg.SettledBatchFunc = func(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
				var calls []string
				for _, pr := range prs {
					calls = append(calls, pr.ReferenceID+" "+pr.Status)
				}
				batches = append(batches, calls)
				return nil
			}
		}
	})
	lost := func(biz *business.Business, cust *customers.Customer) {
		refs := []string{"s1", "s2", "s3"}
		toks := make([]string, len(refs)) // all saved first: saving one delivers the callbacks due
		for i := range refs {
			toks[i] = w.savedToken(biz, cust, "timeout_once")
		}
		for i, ref := range refs {
			if pr := w.mustCreate(biz, w.payBody(toks[i], "reference_id", ref), ""); pr.Status != "SENDING" {
				t.Fatalf("%s: %s, want SENDING (its answer lost)", ref, pr.Status)
			}
		}
		if n := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ? AND status = 'SENDING'", biz.ID); n != 3 {
			t.Fatalf("%d requests SENDING, want 3", n)
		}
	}
	batch, single := w.biz, w.newBusiness(business.ModeSandbox)
	lost(batch, w.cust)
	lost(single, w.newCustomer(single, "meter-002"))
	batches, _ = nil, log.take()

	if n, err := w.svc.DeliverSandboxCallbacks(w.ctx, batch.ID, w.now(batch)); err != nil || n != 3 {
		t.Fatalf("delivered %d (%v), want 3", n, err)
	}
	if want := [][]string{{"s1 SUCCEEDED", "s2 SUCCEEDED", "s3 SUCCEEDED"}}; !reflect.DeepEqual(batches, want) {
		t.Fatalf("SettledBatchFunc calls %v, want %v", batches, want)
	}
	if calls := log.take(); len(calls) != 0 {
		t.Fatalf("SettledFunc called %v, want no call", calls)
	}
	if n, err := w.deliverOneByOne(single); err != nil || n != 3 {
		t.Fatalf("delivered %d one by one (%v), want 3", n, err)
	}
	if want := [][]string{{"s1 SUCCEEDED", "s2 SUCCEEDED", "s3 SUCCEEDED"}, {"s1 SUCCEEDED"}, {"s2 SUCCEEDED"}, {"s3 SUCCEEDED"}}; !reflect.DeepEqual(batches, want) {
		t.Fatalf("with the callbacks one a transaction, SettledBatchFunc calls %v, want %v", batches, want)
	}
	if calls := log.take(); len(calls) != 0 {
		t.Fatalf("SettledFunc called %v, want no call", calls)
	}
	// The tokens' linkings came first, in both businesses.
	if got, want := w.storedCallbacks(batch), w.storedCallbacks(single); !reflect.DeepEqual(got, want) ||
		!reflect.DeepEqual(got[len(got)-3:], []string{"payment.capture PROCESSED s1 1", "payment.capture PROCESSED s2 1", "payment.capture PROCESSED s3 1"}) {
		t.Fatalf("stored callbacks:\nbatch  %v\nsingle %v", got, want)
	}
	if got, want := w.requestStates(batch), w.requestStates(single); !reflect.DeepEqual(got, want) ||
		!reflect.DeepEqual(got[len(got)-3:], []string{"s1 SUCCEEDED", "s2 SUCCEEDED", "s3 SUCCEEDED"}) {
		t.Fatalf("payment requests:\nbatch  %v\nsingle %v", got, want)
	}
	if got, want := w.events(batch), w.events(single); !reflect.DeepEqual(got, want) {
		t.Fatalf("events differ:\nbatch  %v\nsingle %v", got, want)
	}
	if n := w.count(`SELECT count(*) FROM payments p JOIN payment_requests pr ON pr.id = p.payment_request_id
		WHERE p.business_id = ? AND p.status = 'SUCCEEDED' AND pr.reference_id LIKE 's_'`, batch.ID); n != 3 {
		t.Fatalf("%d payments of s1–s3, want 3", n)
	}
}
