package engine

import (
	"regexp"
	"testing"

	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
)

// failToStop runs a cycle of an always failing token to its end: four
// attempts (the first and three retries three days apart), all failed.
func failToStop(t *testing.T, w *chargeWorld, body map[string]any) (*Plan, *Cycle) {
	t.Helper()
	p := w.plan(body)
	w.to("2026-02-24T08:00:00Z")
	c := w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "2.1 RETRY FAILED INSUFFICIENT_BALANCE",
		"3.1 RETRY FAILED INSUFFICIENT_BALANCE", "4.1 RETRY FAILED INSUFFICIENT_BALANCE")
	if c.Status != CycleStatusFailed || c.NextAction != nil || c.attempts[3].NextRetryTimestamp != nil {
		t.Fatalf("cycle %s, next %v", c.Status, c.NextAction)
	}
	if inv := w.invoiceOf(c); inv.Status != InvoiceStatusUncollectible || !inv.AmountPaid.IsZero() {
		t.Fatalf("invoice %s", inv.Status)
	}
	return p, c
}

var payLink = regexp.MustCompile(`https://billing\.test/pay/(pay_[0-9a-f]{64})`)

// TestExhaustionStop: after the last attempt fails the cycle is FAILED,
// its invoice UNCOLLECTIBLE, the plan INACTIVE and the customer's service
// SUSPENDED, with the events and notifications of each step; then the
// customer pays the invoice with another token (POST /invoices/{id}/pay):
// PAID, the service ACTIVE again, customer.service.reinstated. The plan
// stays INACTIVE.
func TestExhaustionStop(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("always_fail")
	before := len(w.events(0))
	p, c := failToStop(t, w, w.planBody(tok))
	wantList(t, "events", w.events(before), "recurring.plan.activated", "recurring.cycle.created",
		"recurring.cycle.amount_fixed", "invoice.finalized",
		"payment.failure", "recurring.cycle.retrying", "payment.failure", "recurring.cycle.retrying",
		"payment.failure", "recurring.cycle.retrying", "payment.failure", "recurring.cycle.failed",
		"recurring.plan.inactivated", "customer.service.suspended")
	if got := w.planNow(p); got.Status != PlanStatusInactive {
		t.Fatalf("plan %s", got.Status)
	}
	if n := w.cycles(p); n[CycleStatusScheduled]+n[CycleStatusRetrying]+n[CycleStatusPending] != 0 || n[CycleStatusFailed] != 1 {
		t.Fatalf("cycles %v", n)
	}
	inv := w.invoiceOf(c)
	st := w.service()
	if st.Status != customers.ServiceSuspended || *st.Reason != ServiceReasonCycleFailed || *st.PlanID != p.ID || *st.InvoiceID != inv.ID ||
		!st.Since.Equal(at("2026-02-24T08:00:00Z")) {
		t.Fatalf("service %+v", st)
	}
	got, ns := w.notices()
	wantList(t, "notifications", got, "CYCLE_CREATED/WHATSAPP",
		"ATTEMPT_FAILED#1/WHATSAPP", "ATTEMPT_FAILED#1/EMAIL", "ATTEMPT_FAILED#3/WHATSAPP", "ATTEMPT_FAILED#3/EMAIL",
		"CYCLE_FAILED/WHATSAPP", "CYCLE_FAILED/EMAIL", "SERVICE_SUSPENDED/WHATSAPP", "SERVICE_SUSPENDED/EMAIL")
	if !payLink.MatchString(ns[len(ns)-1].Body) {
		t.Errorf("SERVICE_SUSPENDED without a pay link: %q", ns[len(ns)-1].Body)
	}

	// Reinstatement: the customer pays the unpaid invoice with a token
	// that works.
	good := w.token("")
	before = len(w.events(0))
	w.to("2026-02-26T10:00:00Z")
	pr, err := w.s.PayInvoice(w.ctx, w.business(), w.now, inv.ID, PayInvoiceParams{PaymentTokenID: good})
	if err != nil || pr.Status != payments.StatusSucceeded || pr.ProviderKey != inv.ID+"/pay/1" || !pr.RequestAmount.Equal(dec("100000")) {
		t.Fatalf("pay: %v %+v", err, pr)
	}
	wantList(t, "events", w.events(before), "payment.capture", "invoice.paid", "customer.service.reinstated")
	if inv = w.invoiceOf(c); inv.Status != InvoiceStatusPaid || !inv.AmountPaid.Equal(inv.Total) {
		t.Fatalf("invoice %s", inv.Status)
	}
	st = w.service()
	if st.Status != customers.ServiceActive || *st.Reason != ServiceReasonInvoicePaid || *st.InvoiceID != inv.ID || !st.Since.Equal(at("2026-02-26T10:00:00Z")) {
		t.Fatalf("service %+v", st)
	}
	if w.planNow(p).Status != PlanStatusInactive || w.cycle(p, 1).Status != CycleStatusFailed {
		t.Fatal("the plan or cycle changed")
	}
	got, _ = w.notices()
	if got[len(got)-1] != "SERVICE_REINSTATED/WHATSAPP" {
		t.Errorf("last notification %s", got[len(got)-1])
	}
	// Paid: nothing is left to pay.
	_, err = w.s.PayInvoice(w.ctx, w.business(), w.now, inv.ID, PayInvoiceParams{PaymentTokenID: good})
	wantReason(t, err, "REQUEST_FORBIDDEN_ERROR")
}

// TestReinstatementByPayLink: the pay link of the suspension notice sends
// the customer to a payment link for what is owed; paid there, the
// invoice is PAID and the service ACTIVE. Opened again, the page says the
// bill is paid.
func TestReinstatementByPayLink(t *testing.T) {
	w := newChargeWorld(t)
	_, c := failToStop(t, w, w.planBody(w.token("always_fail")))
	_, ns := w.notices()
	m := payLink.FindStringSubmatch(ns[len(ns)-1].Body)
	if m == nil {
		t.Fatalf("no pay link in %q", ns[len(ns)-1].Body)
	}
	st, err := w.s.OpenPayPage(w.ctx, m[1], m[0])
	if err != nil || st.Outcome != PayRedirect {
		t.Fatalf("pay page: %v %+v", err, st)
	}
	again, err := w.s.OpenPayPage(w.ctx, m[1], m[0])
	if err != nil || again.URL != st.URL {
		t.Fatalf("a second visit made another link: %v %s %s", err, again.URL, st.URL)
	}
	inv := w.invoiceOf(c)
	var prID string
	if err := w.db.Bun.NewRaw("SELECT payment_request_id FROM invoice_payments WHERE invoice_id = ?", inv.ID).Scan(w.ctx, &prID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pay.Simulate(w.ctx, w.db.Bun, w.business(), w.now, prID, payments.SimulateParams{}); err != nil {
		t.Fatal(err)
	}
	w.runDue()
	if inv = w.invoiceOf(c); inv.Status != InvoiceStatusPaid || w.service().Status != customers.ServiceActive {
		t.Fatalf("after paying the link: invoice %s, service %s", inv.Status, w.service().Status)
	}
	if st, err = w.s.OpenPayPage(w.ctx, m[1], m[0]); err != nil || st.Outcome != PayPaid {
		t.Fatalf("pay page after payment: %v %+v", err, st)
	}
	_, err = w.s.OpenPayPage(w.ctx, "pay_"+m[1][4:10], m[0])
	wantReason(t, err, "DATA_NOT_FOUND")
}

// TestExhaustionResume: with failed_cycle_action RESUME the failed cycle's
// invoice stays UNCOLLECTIBLE as arrears, the next cycle goes ahead, and
// the service stays ACTIVE; paying the arrears later changes no service.
func TestExhaustionResume(t *testing.T) {
	w := newChargeWorld(t)
	body := w.planBody(w.token("always_fail"))
	body["failed_cycle_action"] = "RESUME"
	p, c := failToStop(t, w, body)
	if got := w.planNow(p); got.Status != PlanStatusActive {
		t.Fatalf("plan %s", got.Status)
	}
	if next := w.cycle(p, 2); next.Status != CycleStatusScheduled || !next.ScheduledTimestamp.Equal(at("2026-03-15T08:00:00Z")) {
		t.Fatalf("cycle 2 %s at %v", next.Status, next.ScheduledTimestamp)
	}
	if st := w.service(); st.Status != customers.ServiceActive || st.Reason != nil {
		t.Fatalf("service %+v", st)
	}
	before := len(w.events(0))
	pr, err := w.s.PayInvoice(w.ctx, w.business(), w.now, w.invoiceOf(c).ID, PayInvoiceParams{PaymentTokenID: w.token("")})
	if err != nil || pr.Status != payments.StatusSucceeded {
		t.Fatalf("pay the arrears: %v", err)
	}
	wantList(t, "events", w.events(before+2), "payment.capture", "invoice.paid")
	if st := w.service(); st.Status != customers.ServiceActive || st.Reason != nil {
		t.Fatalf("service %+v", st)
	}
}

// TestSuspensionWaitsForEveryStoppedInvoice: a customer suspended by two
// plans' failures is reinstated only once both invoices are paid; paying
// the first points the suspension at the second.
func TestSuspensionWaitsForEveryStoppedInvoice(t *testing.T) {
	w := newChargeWorld(t)
	bad := w.token("always_fail")
	p1 := w.plan(w.planBody(bad))
	p2 := w.plan(w.planBody(bad))
	w.to("2026-02-24T08:00:00Z")
	inv1, inv2 := w.invoiceOf(w.cycle(p1, 1)), w.invoiceOf(w.cycle(p2, 1))
	if st := w.service(); st.Status != customers.ServiceSuspended || *st.InvoiceID != inv1.ID && *st.InvoiceID != inv2.ID {
		t.Fatalf("service %+v", st)
	}
	good := w.token("")
	first, second := inv1, inv2
	if *w.service().InvoiceID == inv2.ID {
		first, second = inv2, inv1
	}
	if _, err := w.s.PayInvoice(w.ctx, w.business(), w.now, first.ID, PayInvoiceParams{PaymentTokenID: good}); err != nil {
		t.Fatal(err)
	}
	if st := w.service(); st.Status != customers.ServiceSuspended || *st.InvoiceID != second.ID || *st.PlanID != second.PlanID {
		t.Fatalf("after paying one of two: %+v", st)
	}
	if _, err := w.s.PayInvoice(w.ctx, w.business(), w.now, second.ID, PayInvoiceParams{PaymentTokenID: good}); err != nil {
		t.Fatal(err)
	}
	if st := w.service(); st.Status != customers.ServiceActive {
		t.Fatalf("after paying both: %+v", st)
	}
	if n := w.count("SELECT count(*) FROM events WHERE business_id = ? AND type = 'customer.service.suspended'", w.biz.ID); n != 1 {
		t.Fatalf("%d suspension events", n)
	}
}
