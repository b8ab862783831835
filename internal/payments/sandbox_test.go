package payments_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/payments"
)

// TestPayAndSaveThroughSimulate follows a Pay and Save from the redirect
// to the saved token: the request waits for the customer, the simulated
// customer pays, and the sandbox's callbacks (delivered by the same path
// as real ones) record the payment, the ACTIVE token with the customer's
// consent, and the events.
func TestPayAndSaveThroughSimulate(t *testing.T) {
	w := setup(t)
	pr := w.mustCreate(w.biz, w.saveBody("metadata", map[string]any{"meter": "PLN-1"}), "k1")
	wantStatus(t, pr, "REQUIRES_ACTION", "")
	if len(pr.Actions) != 1 || pr.Actions[0].Type != "REDIRECT_CUSTOMER" || pr.Actions[0].Descriptor != "WEB_URL" || pr.Actions[0].Value == "" {
		t.Fatalf("actions: %+v", pr.Actions)
	}
	if n := w.deliver(w.biz); n != 0 {
		t.Fatalf("%d callbacks before the customer acted", n)
	}
	w.simulate(w.biz, pr.ID, 0)
	if got := w.get(w.biz, pr.ID); got.Status != payments.StatusRequiresAction {
		t.Fatalf("simulate changed the request synchronously: %s", got.Status)
	}
	if n := w.deliver(w.biz); n != 2 {
		t.Fatalf("delivered %d callbacks, want payment.capture and payment_token.activation", n)
	}
	pr = w.get(w.biz, pr.ID)
	wantStatus(t, pr, "SUCCEEDED", "")
	tok, err := w.svc.GetToken(w.ctx, w.db.Bun, w.biz.ID, *pr.PaymentTokenID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Status != payments.TokenActive || tok.CustomerID != w.cust.ID || tok.ChannelCode != "DANA" || tok.Currency != "IDR" ||
		tok.ConsentPaymentRequestID != pr.ID || tok.ConsentChannelCode != "DANA" || !tok.ConsentedAt.Equal(w.now(w.biz)) ||
		string(tok.Metadata["meter"]) != `"PLN-1"` {
		t.Fatalf("token: %+v", tok)
	}
	if got := w.events(w.biz); !slices.Equal(sorted(got), []string{"payment.capture", "payment_token.activation"}) {
		t.Fatalf("events %v", got)
	}
	capture := w.eventData(w.biz, "payment.capture")[0]
	if capture["payment_token_id"] != tok.ID || capture["payment_request_id"] != pr.ID || capture["status"] != "SUCCEEDED" ||
		capture["payment_id"] != *pr.LatestPaymentID || capture["request_amount"] != float64(150000) {
		t.Fatalf("payment.capture data: %v", capture)
	}
	if caps := capture["captures"].([]any); len(caps) != 1 || caps[0].(map[string]any)["capture_amount"] != float64(150000) {
		t.Fatalf("captures: %v", capture["captures"])
	}
	if act := w.eventData(w.biz, "payment_token.activation")[0]; act["payment_token_id"] != tok.ID || act["status"] != "ACTIVE" {
		t.Fatalf("payment_token.activation data: %v", act)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE business_id = ? AND status = 'SUCCEEDED'", w.biz.ID); n != 1 {
		t.Fatalf("%d payments", n)
	}
	// Both callbacks were stored and processed; delivering again finds none.
	if n := w.count("SELECT count(*) FROM provider_callbacks WHERE business_id = ? AND outcome = 'PROCESSED'", w.biz.ID); n != 2 {
		t.Fatalf("%d callbacks stored as processed", n)
	}
	if n := w.deliver(w.biz); n != 0 {
		t.Fatalf("redelivered %d", n)
	}
}

// TestTestAmounts covers Xendit's four failure amounts, on a linking (the
// amount the simulated customer pays) and on a charge of a saved token.
func TestTestAmounts(t *testing.T) {
	w := setup(t)
	tokenID := w.linkToken(w.biz, nil, "link-ok")
	for amount, code := range map[int64]string{21110: "INSUFFICIENT_BALANCE", 21103: "ACCOUNT_ACCESS_BLOCKED", 21106: "INVALID_ACCOUNT_DETAILS", 21107: "MAXIMUM_LIMIT_REACHED"} {
		link := w.mustCreate(w.biz, w.saveBody("reference_id", "link", "request_amount", amount), "")
		w.simulate(w.biz, link.ID, 0)
		w.deliver(w.biz)
		link = w.get(w.biz, link.ID)
		wantStatus(t, link, "FAILED", code)
		if link.PaymentTokenID != nil {
			t.Fatalf("a failed linking saved a token")
		}
		charge := w.mustCreate(w.biz, w.payBody(tokenID, "request_amount", amount), "")
		wantStatus(t, charge, "FAILED", code)
	}
	// 21110.00 is the same amount in a currency with decimals.
	phCust := w.newCustomer(w.biz, "ph-1")
	ph := w.mustCreate(w.biz, w.saveBody("customer_id", phCust.ID, "country", "PH", "currency", "PHP", "channel_code", "MAYA", "request_amount", "21110.00"), "")
	w.simulate(w.biz, ph.ID, 0)
	w.deliver(w.biz)
	wantStatus(t, w.get(w.biz, ph.ID), "FAILED", "INSUFFICIENT_BALANCE")
	// Simulating another amount than the request's decides the outcome.
	other := w.mustCreate(w.biz, w.saveBody(), "")
	w.simulate(w.biz, other.ID, 21103)
	w.deliver(w.biz)
	wantStatus(t, w.get(w.biz, other.ID), "FAILED", "ACCOUNT_ACCESS_BLOCKED")
	if n := len(w.eventData(w.biz, "payment.failure")); n != 10 {
		t.Fatalf("%d payment.failure events, want 10", n)
	}
	for _, ev := range w.eventData(w.biz, "payment.failure") {
		if ev["status"] != "FAILED" || ev["failure_code"] == nil || len(ev["captures"].([]any)) != 0 {
			t.Fatalf("payment.failure data: %v", ev)
		}
	}
}

func TestSandboxBehaviours(t *testing.T) {
	t.Run("always_fail", func(t *testing.T) {
		w := setup(t)
		tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "always_fail"}, "l")
		for i := 0; i < 3; i++ {
			wantStatus(t, w.mustCreate(w.biz, w.payBody(tok), ""), "FAILED", "INSUFFICIENT_BALANCE")
			w.advance(w.biz, 30*24*time.Hour)
		}
	})
	t.Run("fail_until judged by the business clock", func(t *testing.T) {
		w := setup(t)
		until := start.Add(48 * time.Hour)
		tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "fail_until:" + until.Format(time.RFC3339)}, "l")
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok), ""), "FAILED", "INSUFFICIENT_BALANCE")
		w.advance(w.biz, 48*time.Hour-time.Second)
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok), ""), "FAILED", "INSUFFICIENT_BALANCE")
		w.advance(w.biz, time.Second) // exactly at the boundary: the money is there
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok), ""), "SUCCEEDED", "")
		// The test amounts still apply after the date.
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok, "request_amount", 21107), ""), "FAILED", "MAXIMUM_LIMIT_REACHED")
	})
	t.Run("pending_then_succeed", func(t *testing.T) {
		w := setup(t)
		tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "pending_then_succeed"}, "l")
		pr := w.mustCreate(w.biz, w.payBody(tok), "")
		wantStatus(t, pr, "PENDING", "")
		if n := w.deliver(w.biz); n != 0 {
			t.Fatalf("a callback was due before the business clock reached it (%d)", n)
		}
		w.advance(w.biz, time.Minute)
		if n := w.deliver(w.biz); n != 1 {
			t.Fatalf("delivered %d callbacks after a minute", n)
		}
		wantStatus(t, w.get(w.biz, pr.ID), "SUCCEEDED", "")
		if n := len(w.eventData(w.biz, "payment.capture")); n != 2 { // the linking's and the charge's
			t.Fatalf("%d payment.capture events", n)
		}
	})
	t.Run("timeout_once", func(t *testing.T) {
		w := setup(t)
		tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "timeout_once"}, "l")
		pr := w.mustCreate(w.biz, w.payBody(tok), "charge-key")
		wantStatus(t, pr, "PENDING", "") // the answer was lost
		if pr.Status != payments.StatusSending {
			t.Fatalf("status %s", pr.Status)
		}
		// The sandbox did take the money, and its callback says so.
		w.deliver(w.biz)
		wantStatus(t, w.get(w.biz, pr.ID), "SUCCEEDED", "")
		// Only the first charge of the token times out.
		wantStatus(t, w.mustCreate(w.biz, w.payBody(tok), ""), "SUCCEEDED", "")
		if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 2 {
			t.Fatalf("%d sandbox charges, want 2", n)
		}
		if n := len(w.eventData(w.biz, "payment.capture")); n != 3 {
			t.Fatalf("%d payment.capture events, want 3", n)
		}
	})
	t.Run("timeout_once settled by the reconciler", func(t *testing.T) {
		w := setup(t)
		tok := w.linkToken(w.biz, map[string]any{"sandbox_behavior": "timeout_once"}, "l")
		// The callback is lost: nothing delivers it.
		if _, err := w.db.Bun.NewRaw("DELETE FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", w.biz.ID).Exec(w.ctx); err != nil {
			t.Fatal(err)
		}
		pr := w.mustCreate(w.biz, w.payBody(tok), "")
		if _, err := w.db.Bun.NewRaw("DELETE FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", w.biz.ID).Exec(w.ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := w.svc.ReconcileDue(w.ctx, 10); err != nil || n != 0 {
			t.Fatalf("reconciled %d before 15 minutes (%v)", n, err)
		}
		w.advance(w.biz, 15*time.Minute)
		if n, err := w.svc.ReconcileDue(w.ctx, 10); err != nil || n != 1 {
			t.Fatalf("reconciled %d (%v)", n, err)
		}
		wantStatus(t, w.get(w.biz, pr.ID), "SUCCEEDED", "")
		if n := w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", w.biz.ID); n != 1 {
			t.Fatalf("%d sandbox charges, want exactly 1", n)
		}
		if n := len(w.eventData(w.biz, "payment.capture")); n != 2 {
			t.Fatalf("%d payment.capture events, want 2 (linking and charge)", n)
		}
	})
	t.Run("unknown behaviour", func(t *testing.T) {
		w := setup(t)
		_, err := w.create(w.biz, w.saveBody("metadata", map[string]any{"sandbox_behavior": "fail_sometimes"}), "")
		wantError(t, err, "API_VALIDATION_ERROR", "metadata.sandbox_behavior")
		if n := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", w.biz.ID); n != 0 {
			t.Fatalf("a refused request left %d rows", n)
		}
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
