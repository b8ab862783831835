package payments_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
)

var errDied = errors.New("the process died after the provider answered")

// dieOnce makes the first provider answer for a payment request other than
// the linking go unrecorded, as if the process died between the provider's
// answer and the commit.
func dieOnce(w *world, skip string) *atomic.Int32 {
	var died atomic.Int32
	w.seam = func(ctx context.Context, id string) error {
		if id != skip && died.CompareAndSwap(0, 1) {
			return errDied
		}
		return nil
	}
	return &died
}

// TestExactlyOnceAfterInterruption: the provider accepted the charge and
// the process died before recording it. Retrying the API request with its
// idempotency key resumes it with the same provider key: the sandbox
// returns the payment it already made, and there is exactly one payment
// and one payment.capture.
func TestExactlyOnceAfterInterruption(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, nil, "l")
	linkingCaptures := len(w.eventData(w.biz, "payment.capture"))
	died := dieOnce(w, "")
	body := w.payBody(tok, "reference_id", "bill-2026-03")
	if _, err := w.create(w.biz, body, "charge-march"); !errors.Is(err, errDied) {
		t.Fatalf("first run: %v", err)
	}
	if died.Load() != 1 {
		t.Fatal("the seam did not run")
	}
	var pr payments.PaymentRequest
	if err := w.db.Bun.NewSelect().Model(&pr).Where("business_id = ?", w.biz.ID).Where("idempotency_key = ?", "charge-march").Scan(w.ctx); err != nil {
		t.Fatal(err)
	}
	if pr.Status != payments.StatusSending || pr.ProviderRef != nil {
		t.Fatalf("after the crash the request is %s, provider ref %v", pr.Status, pr.ProviderRef)
	}
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 1 {
		t.Fatalf("the provider made %d charges", n)
	}
	// The retry with the same key and body.
	again := w.mustCreate(w.biz, body, "charge-march")
	if again.ID != pr.ID {
		t.Fatalf("the retry made another payment request %s (first %s)", again.ID, pr.ID)
	}
	wantStatus(t, again, "SUCCEEDED", "")
	w.deliver(w.biz) // the provider's callback of the one charge changes nothing
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 1 {
		t.Fatalf("the provider made %d charges, want exactly 1", n)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE payment_request_id = ?", pr.ID); n != 1 {
		t.Fatalf("%d payments recorded", n)
	}
	if n := len(w.eventData(w.biz, "payment.capture")) - linkingCaptures; n != 1 {
		t.Fatalf("%d payment.capture events for the charge, want 1", n)
	}
	// The same key with another body is a conflict, and charges nothing.
	_, err := w.create(w.biz, w.payBody(tok, "request_amount", 1), "charge-march")
	wantError(t, err, "IDEMPOTENCY_ERROR", "")
}

// TestReconcilerRecoversInterruption: nobody retries; the reconciler finds
// the request 15 minutes (business clock) after it was sent and resumes it
// with the same provider key.
func TestReconcilerRecoversInterruption(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, nil, "l")
	dieOnce(w, "")
	if _, err := w.create(w.biz, w.payBody(tok), ""); !errors.Is(err, errDied) {
		t.Fatalf("first run: %v", err)
	}
	// Its callback is lost too.
	if _, err := w.db.Bun.NewRaw("DELETE FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", w.biz.ID).Exec(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.advance(w.biz, 14*time.Minute)
	if n, _ := w.svc.ReconcileDue(w.ctx, 10); n != 0 {
		t.Fatalf("reconciled %d after 14 minutes", n)
	}
	w.advance(w.biz, time.Minute)
	if n, err := w.svc.ReconcileDue(w.ctx, 10); n != 1 || err != nil {
		t.Fatalf("reconciled %d (%v)", n, err)
	}
	var status string
	if err := w.db.Bun.NewRaw("SELECT status FROM payment_requests WHERE business_id = ? AND type = 'PAY'", w.biz.ID).Scan(w.ctx, &status); err != nil || status != "SUCCEEDED" {
		t.Fatalf("status %s (%v)", status, err)
	}
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 1 {
		t.Fatalf("%d sandbox charges", n)
	}
	if n := w.count("SELECT count(*) FROM events WHERE business_id = ? AND type = 'payment.capture'", w.biz.ID); n != 2 {
		t.Fatalf("%d payment.capture events, want 2 (linking and charge)", n)
	}
}

// TestEngineChargeByKey: the engine charges with its own provider key
// ("<cycle id>/<attempt>/<action>"); a repeat returns the same request.
func TestEngineChargeByKey(t *testing.T) {
	w := setup(t)
	tokID := w.linkToken(w.biz, nil, "l")
	amount := billing.Money{Amount: mustDecimal("175000"), Currency: "IDR"}
	p := payments.ChargeParams{PaymentTokenID: tokID, Amount: amount, ReferenceID: "recy-1", IdempotencyKey: "recy-0194f1c2/1/1"}
	dieOnce(w, "")
	if _, err := w.svc.Charge(w.ctx, w.biz, w.now(w.biz), p); !errors.Is(err, errDied) {
		t.Fatalf("first attempt: %v", err)
	}
	first, err := w.svc.Charge(w.ctx, w.biz, w.now(w.biz), p)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, first, "SUCCEEDED", "")
	if first.ProviderKey != "recy-0194f1c2/1/1" || first.IdempotencyKey != nil {
		t.Fatalf("provider key %q, idempotency key %v", first.ProviderKey, first.IdempotencyKey)
	}
	second, err := w.svc.Charge(w.ctx, w.biz, w.now(w.biz), p)
	if err != nil || second.ID != first.ID {
		t.Fatalf("repeat: %v %v", second, err)
	}
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 1 {
		t.Fatalf("%d sandbox charges", n)
	}
	// The key with another amount is refused.
	p.Amount.Amount = mustDecimal("1")
	_, err = w.svc.Charge(w.ctx, w.biz, w.now(w.biz), p)
	wantError(t, err, "IDEMPOTENCY_ERROR", "")
	// Too many decimals for the currency.
	p.IdempotencyKey, p.Amount.Amount = "recy-0194f1c2/2/1", mustDecimal("100.5")
	_, err = w.svc.Charge(w.ctx, w.biz, w.now(w.biz), p)
	wantError(t, err, "API_VALIDATION_ERROR", "amount")
}

// TestIdempotencyKeyExpires: after 24 hours of real time a key finds no
// request and may create another.
func TestIdempotencyKeyExpires(t *testing.T) {
	w := setup(t)
	first := w.mustCreate(w.biz, w.saveBody(), "k")
	if again := w.mustCreate(w.biz, w.saveBody(), "k"); again.ID != first.ID {
		t.Fatal("a repeat within 24 hours made a new request")
	}
	w.clock.Advance(24 * time.Hour)
	other := w.mustCreate(w.biz, w.saveBody("reference_id", "another"), "k")
	if other.ID == first.ID {
		t.Fatal("an expired key still found the old request")
	}
}

// TestNoBackwards: a late failure callback after a success changes
// nothing; a capture reported after a failure is recorded, since money was
// taken; the same callback twice is a duplicate.
func TestNoBackwards(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, nil, "l")
	ok := w.mustCreate(w.biz, w.payBody(tok), "")
	w.deliver(w.biz)
	captures := len(w.eventData(w.biz, "payment.capture"))
	w.sandboxCallback(ok.ID, "payment.failure", "FAILED", "INSUFFICIENT_BALANCE")
	if n := w.deliver(w.biz); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	wantStatus(t, w.get(w.biz, ok.ID), "SUCCEEDED", "")
	if len(w.eventData(w.biz, "payment.failure")) != 0 {
		t.Fatal("a late failure emitted payment.failure")
	}
	failed := w.mustCreate(w.biz, w.payBody(tok, "request_amount", 21110), "")
	w.deliver(w.biz)
	w.sandboxCallback(failed.ID, "payment.capture", "SUCCEEDED", "")
	w.deliver(w.biz)
	late := w.get(w.biz, failed.ID)
	wantStatus(t, late, "SUCCEEDED", "")
	if n := len(w.eventData(w.biz, "payment.capture")); n != captures+1 {
		t.Fatalf("%d captures, want %d", n, captures+1)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE payment_request_id = ? AND status = 'SUCCEEDED'", failed.ID); n != 1 {
		t.Fatalf("%d payments", n)
	}
	// Repeats: the same callback body with the same id is a duplicate.
	var body []byte
	if err := w.db.Bun.NewRaw("SELECT body FROM sandbox_callbacks WHERE business_id = ? ORDER BY id DESC LIMIT 1", w.biz.ID).Scan(w.ctx, &body); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Webhook-Id", "repeat-1")
	for i, want := range []payments.CallbackOutcome{payments.OutcomeProcessed, payments.OutcomeDuplicate, payments.OutcomeDuplicate} {
		got, err := w.svc.ReceiveSandboxCallbackForTest(w.ctx, w.biz.ID, h, body)
		if err != nil || got != want {
			t.Fatalf("delivery %d: %s (%v), want %s", i, got, err, want)
		}
	}
	if n := w.count("SELECT times_received FROM provider_callbacks WHERE business_id = ? AND dedupe_key = 'repeat-1'", w.biz.ID); n != 3 {
		t.Fatalf("times_received %d", n)
	}
	if n := len(w.eventData(w.biz, "payment.capture")); n != captures+1 {
		t.Fatalf("a repeated callback emitted an event")
	}
}

// TestUnknownPaymentCallback: a verified callback about no known payment
// request is stored as UNMATCHED, not dropped.
func TestUnknownPaymentCallback(t *testing.T) {
	w := setup(t)
	h := http.Header{}
	body := []byte(`{"event":"payment.capture","business_id":"` + w.biz.ID + `","created":"2026-03-01T08:00:00.000Z","data":{"payment_request_id":"sbxpr-x","reference_id":"pr-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a","payment_token_id":null,"currency":"IDR","request_amount":5,"channel_code":"DANA","status":"SUCCEEDED","failure_code":null}}`)
	got, err := w.svc.ReceiveSandboxCallbackForTest(w.ctx, w.biz.ID, h, body)
	if err != nil || got != payments.OutcomeUnmatched {
		t.Fatalf("%s %v", got, err)
	}
	if n := w.count("SELECT count(*) FROM provider_callbacks WHERE business_id = ? AND outcome = 'UNMATCHED' AND body = ?", w.biz.ID, body); n != 1 {
		t.Fatalf("%d unmatched callbacks stored", n)
	}
	// A body that cannot be read is stored too, and reported as a 400.
	got, err = w.svc.ReceiveSandboxCallbackForTest(w.ctx, w.biz.ID, h, []byte(`{"event":`))
	if got != payments.OutcomeUnparseable {
		t.Fatalf("%s %v", got, err)
	}
	wantError(t, err, "API_VALIDATION_ERROR", "body")
	// A callback for another business does not verify and changes nothing.
	other := w.newBusiness(business.ModeSandbox)
	_, err = w.svc.ReceiveSandboxCallbackForTest(w.ctx, other.ID, h, body)
	if !errors.Is(err, payments.ErrInvalidCallbackToken) {
		t.Fatalf("another business's callback: %v", err)
	}
	if n := w.count("SELECT count(*) FROM provider_callbacks WHERE business_id = ?", other.ID); n != 0 {
		t.Fatalf("stored %d", n)
	}
}

// sandboxCallback schedules a sandbox callback about payment request prID,
// due now, as a provider sending a late or out-of-order callback would.
func (w *world) sandboxCallback(prID, event, status, failure string) {
	w.t.Helper()
	var spID, ref string
	if err := w.db.Bun.NewRaw("SELECT id, reference FROM sandbox_payments WHERE business_id = ? AND reference = ?", w.biz.ID, prID).Scan(w.ctx, &spID, &ref); err != nil {
		w.t.Fatal(err)
	}
	fc := "null"
	if failure != "" {
		fc = `"` + failure + `"`
	}
	body := `{"event":"` + event + `","business_id":"` + w.biz.ID + `","created":"x","data":{"payment_request_id":"` + spID +
		`","reference_id":"` + ref + `","payment_token_id":null,"currency":"IDR","request_amount":1,"channel_code":"DANA","status":"` +
		status + `","failure_code":` + fc + `}}`
	if _, err := w.db.Bun.NewRaw(`INSERT INTO sandbox_callbacks (business_id, payment_id, event, due_at, body, created) VALUES (?, ?, ?, ?, ?, ?)`,
		w.biz.ID, spID, event, w.now(w.biz), []byte(body), w.now(w.biz)).Exec(w.ctx); err != nil {
		w.t.Fatal(err)
	}
}

func mustDecimal(s string) decimal.Decimal {
	n, err := billing.ParseDecimalString(s)
	if err != nil {
		panic(s)
	}
	return n
}

// TestReconcilerBacksOff: a provider that cannot say what became of a
// request (here, the sandbox lost it) leaves it as it is, asked about again
// later, without holding up the other requests.
func TestReconcilerBacksOff(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "pending_then_succeed"}, "l")
	pr := w.mustCreate(w.biz, w.payBody(tok), "")
	if _, err := w.db.Bun.NewRaw("DELETE FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", w.biz.ID).Exec(w.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Bun.NewRaw("DELETE FROM sandbox_payments WHERE reference = ?", pr.ID).Exec(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.advance(w.biz, 15*time.Minute)
	if n, err := w.svc.ReconcileDue(w.ctx, 10); n != 1 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	got := w.get(w.biz, pr.ID)
	wantStatus(t, got, "PENDING", "")
	if got.Checks != 1 || !got.NextCheckAt.Equal(w.now(w.biz).Add(30*time.Minute)) {
		t.Fatalf("checks %d, next %v", got.Checks, got.NextCheckAt)
	}
	if n, _ := w.svc.ReconcileDue(w.ctx, 10); n != 0 {
		t.Fatal("asked again at once")
	}
	for i, wait := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 6 * time.Hour} {
		w.advance(w.biz, wait)
		if n, _ := w.svc.ReconcileDue(w.ctx, 10); n != 1 {
			t.Fatalf("check %d after %v: not due", i+2, wait)
		}
	}
}
