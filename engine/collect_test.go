package engine

import (
	"context"
	"testing"

	"github.com/uptrace/bun"
)

// TestPaymentLinkHoldsCharges: a payment link the customer may be paying
// on holds back the cycle's retry until it expires, and refuses
// force_attempt and a payment with a token meanwhile — else a customer
// paying on the link a failed-attempt notice sent would pay the cycle
// twice. Cancelled, the link holds nothing back.
func TestPaymentLinkHoldsCharges(t *testing.T) {
	w := newChargeWorld(t)
	good := w.token("")
	p := w.plan(w.planBody(w.token("fail_until:2026-02-16T00:00:00Z")))
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusRetrying || !c.NextActionAt.Equal(at("2026-02-18T08:00:00Z")) {
		t.Fatalf("after attempt 1: %s next at %v", c.Status, c.NextActionAt)
	}
	inv := w.invoiceOf(c)

	// The customer opens the notice's pay page a day before the retry:
	// the link lasts a day from then.
	w.to("2026-02-17T20:00:00Z")
	link, err := w.s.InvoicePaymentLink(w.ctx, w.business(), w.now, inv.ID, "", "https://billing.test")
	if err != nil {
		t.Fatal(err)
	}
	if link.ExpiresAt == nil || !link.ExpiresAt.Equal(at("2026-02-18T20:00:00Z")) {
		t.Fatalf("link expires %v", link.ExpiresAt)
	}
	_, err = w.force(p, 1)
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")
	_, err = w.s.PayInvoice(w.ctx, w.business(), w.now, inv.ID, PayInvoiceParams{PaymentTokenID: good})
	wantReason(t, err, "REQUEST_FORBIDDEN_ERROR")

	// The retry waits for the link to expire, then charges.
	w.to("2026-02-18T19:59:59Z")
	if c = w.cycle(p, 1); c.AttemptCount != 1 || !c.NextActionAt.Equal(at("2026-02-18T20:00:00Z")) {
		t.Fatalf("retried while the link was open: %d attempts, next at %v", c.AttemptCount, c.NextActionAt)
	}
	w.to("2026-02-18T20:00:00Z")
	c = w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "2.1 RETRY SUCCEEDED")
	if c.Status != CycleStatusSucceeded || !c.attempts[1].Created.Equal(at("2026-02-18T20:00:00Z")) {
		t.Fatalf("cycle %s, retried at %v", c.Status, c.attempts[1].Created)
	}
}

// TestCancelledLinkHoldsNothing: a link cancelled through the payment
// request API no longer holds the invoice.
func TestCancelledLinkHoldsNothing(t *testing.T) {
	w := newChargeWorld(t)
	good := w.token("")
	p := w.plan(w.planBody(w.token("always_fail")))
	w.to("2026-02-15T08:00:00Z")
	inv := w.invoiceOf(w.cycle(p, 1))
	link, err := w.s.InvoicePaymentLink(w.ctx, w.business(), w.now, inv.ID, "", "https://billing.test")
	if err != nil {
		t.Fatal(err)
	}
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := w.pay.Cancel(ctx, tx, w.business(), w.now, link.PaymentRequestID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := w.s.PayInvoice(w.ctx, w.business(), w.now, inv.ID, PayInvoiceParams{PaymentTokenID: good})
	if err != nil || pr.Status != "SUCCEEDED" {
		t.Fatalf("pay after the link was cancelled: %v %+v", err, pr)
	}
	if c := w.cycle(p, 1); c.Status != CycleStatusSucceeded {
		t.Fatalf("cycle %s after the invoice was paid", c.Status)
	}
}

// TestAbandonedPayment: a payment of an invoice with a token that was
// recorded but never reached the provider (the process died, or the
// payment service refused it, before its payment request existed) holds
// the invoice only for the charge lease; then the cycle's charge and other
// payments go ahead.
func TestAbandonedPayment(t *testing.T) {
	w := newChargeWorld(t)
	good := w.token("")
	p := w.plan(w.planBody(good))
	w.to("2026-02-15T07:59:00Z")
	inv := w.invoiceOf(w.cycle(p, 1))
	// What PayInvoice's first transaction leaves before the payment
	// service is called.
	if _, err := newPayment(w.ctx, w.db.Bun, inv, invoicePay, &good, w.now); err != nil {
		t.Fatal(err)
	}
	w.to("2026-02-15T08:00:00Z")
	if c := w.cycle(p, 1); c.AttemptCount != 0 || !c.NextActionAt.Equal(at("2026-02-15T08:02:00Z")) {
		t.Fatalf("charged while the payment could still be under way: %d attempts, next at %v", c.AttemptCount, c.NextActionAt)
	}
	w.to("2026-02-15T08:02:00Z")
	if c := w.cycle(p, 1); c.Status != CycleStatusSucceeded || c.AttemptCount != 1 {
		t.Fatalf("after the lease: cycle %s with %d attempts", c.Status, c.AttemptCount)
	}
}

// TestDeactivatedBetweenTokens: a plan deactivated after its first token
// declined and before the next was tried cancels the cycle and voids its
// invoice, as it does its waiting cycles, instead of leaving it PENDING.
func TestDeactivatedBetweenTokens(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("always_fail"), w.token("")))
	w.to("2026-02-14T00:00:00Z")
	c, err := w.force(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != CycleStatusPending || c.NextAction == nil || *c.NextAction != ActionCharge {
		t.Fatalf("after the first token declined: %s next %v", c.Status, c.NextAction)
	}
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.DeactivatePlan(ctx, tx, w.business(), w.now, p.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w.to("2026-02-14T00:01:00Z")
	c = w.cycle(p, 1)
	if c.Status != CycleStatusCancelled || c.NextAction != nil {
		t.Fatalf("cycle %s next %v", c.Status, c.NextAction)
	}
	if inv := w.invoiceOf(c); inv.Status != InvoiceStatusVoid {
		t.Fatalf("invoice %s", inv.Status)
	}
	wantList(t, "attempts", attempts(c), "1.1 FORCED FAILED INSUFFICIENT_BALANCE")
}
