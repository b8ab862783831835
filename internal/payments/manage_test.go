package payments_test

import (
	"context"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// TestTenancy: another business's ids are not found; another customer's
// token is refused naming payment_token_id; nothing is written.
func TestTenancy(t *testing.T) {
	w := setup(t)
	tok := w.linkToken(w.biz, nil, "l")
	pr := w.mustCreate(w.biz, w.saveBody(), "")
	other := w.newBusiness(business.ModeSandbox)
	otherCust := w.newCustomer(other, "meter-001")
	before := w.count("SELECT count(*) FROM payment_requests")

	_, err := w.create(other, w.payBody(tok), "")
	wantError(t, err, "DATA_NOT_FOUND", "")
	_, err = w.create(other, w.saveBody("customer_id", w.cust.ID), "")
	wantError(t, err, "DATA_NOT_FOUND", "")
	_, err = w.svc.Get(w.ctx, w.db.Bun, other.ID, pr.ID)
	wantError(t, err, "DATA_NOT_FOUND", "")
	_, err = w.svc.GetToken(w.ctx, w.db.Bun, other.ID, tok)
	wantError(t, err, "DATA_NOT_FOUND", "")
	_, err = w.svc.Simulate(w.ctx, w.db.Bun, other, w.now(other), pr.ID, payments.SimulateParams{})
	wantError(t, err, "DATA_NOT_FOUND", "")
	inTx(t, w, func(tx bun.Tx) error {
		_, err := w.svc.Cancel(w.ctx, tx, other, w.now(other), pr.ID)
		wantError(t, err, "DATA_NOT_FOUND", "")
		_, err = w.svc.CancelToken(w.ctx, tx, other, w.now(other), tok)
		wantError(t, err, "DATA_NOT_FOUND", "")
		return nil
	})
	_, err = w.create(other, w.payBody("pt-00000000-0000-7000-8000-000000000000"), "")
	wantError(t, err, "DATA_NOT_FOUND", "")

	// Same business, another customer's token.
	second := w.newCustomer(w.biz, "meter-002")
	_, err = w.create(w.biz, w.payBody(tok, "customer_id", second.ID), "")
	wantError(t, err, "API_VALIDATION_ERROR", "payment_token_id")
	// A token charges only in its own currency and country.
	_, err = w.create(w.biz, w.payBody(tok, "country", "PH", "currency", "PHP"), "")
	wantError(t, err, "API_VALIDATION_ERROR", "currency")
	_, err = w.create(w.biz, w.payBody(tok, "channel_code", "OVO"), "")
	wantError(t, err, "API_VALIDATION_ERROR", "channel_code")
	if n := w.count("SELECT count(*) FROM payment_requests"); n != before {
		t.Fatalf("refused requests wrote %d rows", n-before)
	}
	_ = otherCust
}

// TestInlineCustomer: a Pay and Save with an inline customer creates it,
// and a second one with the same reference_id uses it.
func TestInlineCustomer(t *testing.T) {
	w := setup(t)
	inline := map[string]any{"reference_id": "meter-777", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Budi"}, "email": "budi@example.co.id"}
	first := w.mustCreate(w.biz, w.saveBody("customer_id", nil, "customer", inline), "")
	second := w.mustCreate(w.biz, w.saveBody("customer_id", nil, "customer", inline), "")
	if first.CustomerID != second.CustomerID || first.CustomerID == w.cust.ID {
		t.Fatalf("customers %s and %s", first.CustomerID, second.CustomerID)
	}
	if n := w.count("SELECT count(*) FROM customers WHERE business_id = ? AND reference_id = 'meter-777'", w.biz.ID); n != 1 {
		t.Fatalf("%d customers", n)
	}
	// The existing customer's reference works too.
	third := w.mustCreate(w.biz, w.saveBody("customer_id", nil, "customer", map[string]any{"reference_id": "meter-001", "individual_detail": map[string]any{"given_names": "X"}}), "")
	if third.CustomerID != w.cust.ID {
		t.Fatal("matching by reference_id failed")
	}
}

func TestCancel(t *testing.T) {
	w := setup(t)
	pr := w.mustCreate(w.biz, w.saveBody(), "")
	inTx(t, w, func(tx bun.Tx) error {
		got, err := w.svc.Cancel(w.ctx, tx, w.biz, w.now(w.biz), pr.ID)
		if err != nil {
			return err
		}
		wantStatus(t, got, "CANCELED", "")
		if len(got.Actions) != 0 {
			t.Fatalf("a cancelled request keeps actions %v", got.Actions)
		}
		return nil
	})
	inTx(t, w, func(tx bun.Tx) error {
		_, err := w.svc.Cancel(w.ctx, tx, w.biz, w.now(w.biz), pr.ID)
		wantError(t, err, "REQUEST_FORBIDDEN_ERROR", "")
		return nil
	})
	// The customer cannot complete a cancelled request.
	_, err := w.svc.Simulate(w.ctx, w.db.Bun, w.biz, w.now(w.biz), pr.ID, payments.SimulateParams{})
	wantError(t, err, "REQUEST_FORBIDDEN_ERROR", "")
	if n := w.count("SELECT count(*) FROM sandbox_payments WHERE reference = ? AND canceled", pr.ID); n != 1 {
		t.Fatal("the request was not cancelled at the sandbox")
	}

	// A token: cancelled at the provider and here; charging it is refused.
	tok := w.linkToken(w.biz, nil, "l")
	inTx(t, w, func(tx bun.Tx) error {
		got, err := w.svc.CancelToken(w.ctx, tx, w.biz, w.now(w.biz), tok)
		if err != nil || got.Status != payments.TokenCanceled {
			t.Fatalf("cancel token: %v %v", got, err)
		}
		again, err := w.svc.CancelToken(w.ctx, tx, w.biz, w.now(w.biz), tok)
		if err != nil || again.Status != payments.TokenCanceled {
			t.Fatalf("cancel again: %v %v", again, err)
		}
		return nil
	})
	_, err = w.create(w.biz, w.payBody(tok), "")
	wantError(t, err, "API_VALIDATION_ERROR", "payment_token_id")
	// A succeeded request cannot be cancelled.
	charged := w.mustCreate(w.biz, w.saveBody(), "")
	w.simulate(w.biz, charged.ID, 0)
	w.deliver(w.biz)
	inTx(t, w, func(tx bun.Tx) error {
		_, err := w.svc.Cancel(w.ctx, tx, w.biz, w.now(w.biz), charged.ID)
		wantError(t, err, "REQUEST_FORBIDDEN_ERROR", "")
		return nil
	})
}

// TestLinkingExpires: the reconciler finds a linking the customer never
// completed; after a day of the business clock the sandbox says EXPIRED.
func TestLinkingExpires(t *testing.T) {
	w := setup(t)
	pr := w.mustCreate(w.biz, w.saveBody(), "")
	w.advance(w.biz, 15*time.Minute)
	if n, err := w.svc.ReconcileDue(w.ctx, 10); n != 1 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	got := w.get(w.biz, pr.ID)
	wantStatus(t, got, "REQUIRES_ACTION", "")
	if got.Checks != 1 || !got.NextCheckAt.Equal(w.now(w.biz).Add(30*time.Minute)) {
		t.Fatalf("next check %v after %d checks", got.NextCheckAt, got.Checks)
	}
	w.advance(w.biz, 24*time.Hour)
	if n, err := w.svc.ReconcileDue(w.ctx, 10); n != 1 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	got = w.get(w.biz, pr.ID)
	wantStatus(t, got, "EXPIRED", "")
	if got.NextCheckAt != nil {
		t.Fatal("an expired request is still checked")
	}
	if n, _ := w.svc.ReconcileDue(w.ctx, 10); n != 0 {
		t.Fatal("reconciled a final request")
	}
}

// TestPaymentLink: a hosted payment for an amount owed, completed by the
// simulated customer; nothing is saved.
func TestPaymentLink(t *testing.T) {
	w := setup(t)
	amount := billing.Money{Amount: mustDecimal("250000"), Currency: "IDR"}
	p := payments.PaymentLinkParams{
		CustomerID: w.cust.ID, Country: "ID", Amount: amount, ReferenceID: "inv-2026-000001", IdempotencyKey: "inv-1/link",
		LineItems:  []providers.LineItem{{Name: "Electricity, February", UnitAmount: amount, Quantity: 1}},
		SuccessURL: "https://utility.example/paid", CancelURL: "https://utility.example/cancel",
	}
	pr, err := w.svc.CreatePaymentLink(w.ctx, w.biz, w.now(w.biz), p)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, pr, "REQUIRES_ACTION", "")
	if !pr.PaymentLink || pr.ChannelCode != "SANDBOX_CHECKOUT" || len(pr.Actions) != 1 {
		t.Fatalf("link: %+v", pr)
	}
	again, err := w.svc.CreatePaymentLink(w.ctx, w.biz, w.now(w.biz), p)
	if err != nil || again.ID != pr.ID {
		t.Fatalf("repeat: %v %v", again, err)
	}
	w.simulate(w.biz, pr.ID, 0)
	w.deliver(w.biz)
	pr = w.get(w.biz, pr.ID)
	wantStatus(t, pr, "SUCCEEDED", "")
	if pr.PaymentTokenID != nil || w.count("SELECT count(*) FROM payment_tokens WHERE business_id = ?", w.biz.ID) != 0 {
		t.Fatal("a payment link saved a token")
	}
	p.IdempotencyKey, p.LineItems[0].Quantity = "inv-1/link-2", 2
	_, err = w.svc.CreatePaymentLink(w.ctx, w.biz, w.now(w.biz), p)
	wantError(t, err, "API_VALIDATION_ERROR", "line_items")
}

// TestLiveBusinessWithoutProvider: a clear 403, and nothing written.
func TestLiveBusinessWithoutProvider(t *testing.T) {
	w := setup(t)
	live := w.newBusiness(business.ModeLive)
	cust := w.newCustomer(live, "m")
	_, err := w.create(live, w.saveBody("customer_id", cust.ID), "")
	wantError(t, err, "REQUEST_FORBIDDEN_ERROR", "")
	if n := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", live.ID); n != 0 {
		t.Fatalf("%d rows", n)
	}
	_, err = w.svc.Simulate(w.ctx, w.db.Bun, live, w.now(live), "pr-00000000-0000-7000-8000-000000000000", payments.SimulateParams{})
	wantError(t, err, "REQUEST_FORBIDDEN_ERROR", "")
}

func inTx(t *testing.T, w *world, f func(tx bun.Tx) error) {
	t.Helper()
	if err := w.db.Bun.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error { return f(tx) }); err != nil {
		t.Fatal(err)
	}
}
