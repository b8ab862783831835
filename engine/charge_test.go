package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
)

// TestChargeSucceeds: at its scheduled timestamp a cycle whose invoice is
// OPEN is charged (attempt 1, action 1, INITIAL, with the provider key
// written first); the payment's success marks the invoice PAID, emits
// payment.capture, invoice.paid and recurring.cycle.succeeded, tells the
// customer, and creates the next cycle — nothing before its time.
func TestChargeSucceeds(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("")
	before := len(w.events(0))
	p := w.plan(w.planBody(tok))
	w.to("2026-02-15T07:59:59Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusScheduled || len(c.attempts) != 0 || w.invoiceOf(c).Status != InvoiceStatusOpen {
		t.Fatalf("before its time: %s, %v", c.Status, attempts(c))
	}
	w.to("2026-02-15T08:00:00Z")
	c = w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL SUCCEEDED")
	a := c.attempts[0]
	if c.Status != CycleStatusSucceeded || c.AttemptCount != 1 || c.NextAction != nil || a.ProviderKey != c.ID+"/1/1" ||
		a.PaymentRequestID == nil || *a.PaymentTokenID != tok || !a.Amount.Equal(dec("100000")) {
		t.Fatalf("cycle %s %d attempts, next %v; attempt %+v", c.Status, c.AttemptCount, c.NextAction, a)
	}
	inv := w.invoiceOf(c)
	if inv.Status != InvoiceStatusPaid || !inv.AmountPaid.Equal(dec("100000")) || inv.PaidAt == nil || !inv.PaidAt.Equal(at("2026-02-15T08:00:00Z")) {
		t.Fatalf("invoice %s paid %s at %v", inv.Status, inv.AmountPaid, inv.PaidAt)
	}
	pr, err := w.pay.Get(w.ctx, w.db.Bun, w.biz.ID, *a.PaymentRequestID)
	if err != nil || pr.Status != payments.StatusSucceeded || pr.ProviderKey != a.ProviderKey || pr.Type != payments.TypePay || pr.ReferenceID != *inv.Number {
		t.Fatalf("payment request %+v, %v", pr, err)
	}
	wantList(t, "events", w.events(before), "recurring.plan.activated", "recurring.cycle.created",
		"recurring.cycle.amount_fixed", "invoice.finalized",
		"payment.capture", "invoice.paid", "recurring.cycle.succeeded", "recurring.cycle.created")
	next := w.cycle(p, 2)
	if next.Status != CycleStatusScheduled || !next.ScheduledTimestamp.Equal(at("2026-03-15T08:00:00Z")) {
		t.Fatalf("cycle 2: %s at %v", next.Status, next.ScheduledTimestamp)
	}
	got, ns := w.notices()
	wantList(t, "notifications", got, "CYCLE_CREATED/WHATSAPP", "CYCLE_SUCCEEDED/WHATSAPP", "CYCLE_CREATED/WHATSAPP")
	if ns[1].Locale != "id" || !strings.Contains(ns[1].Body, "Rp 100.000") || !strings.Contains(ns[1].Body, "15 Februari 2026") {
		t.Errorf("CYCLE_SUCCEEDED: %s %q", ns[1].Locale, ns[1].Body)
	}
}

// TestCustomersAreTheirParents: a cycle's customer is its plan's and a
// payment's its payment request's (migration 20261201000010): a cycle or
// payment written or changed to another customer of the business is
// refused, whole batch and all, as is changing a plan's or a request's
// customer.
func TestCustomersAreTheirParents(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("")))
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusSucceeded {
		t.Fatalf("cycle 1 %s", c.Status)
	}
	if _, err := w.db.Pool.Exec(w.ctx, `INSERT INTO customers (id, business_id, reference_id, type, individual_detail, created, updated)
		SELECT 'cust_other', business_id, 'other', type, individual_detail, created, updated FROM customers WHERE id = $1`, w.cust.ID); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, column string, sql string, args ...any) {
		t.Helper()
		_, err := w.db.Pool.Exec(w.ctx, sql, args...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23503" || pgErr.ColumnName != column {
			t.Errorf("%s: err %v, want foreign_key_violation naming %q", what, err, column)
		}
	}
	refused("a cycle moved to another customer", "business_id, customer_id, plan_id",
		`UPDATE recurring_cycles SET customer_id = 'cust_other' WHERE id = $1`, c.ID)
	refused("a new cycle of another customer, in a batch with a good one", "business_id, customer_id, plan_id",
		`INSERT INTO recurring_cycles (id, business_id, plan_id, customer_id, cycle_number, type, status, scheduled_timestamp, currency,
			retry_interval_count, total_retry, failed_attempt_notifications, usage_window_start, usage_window_end, fix_at, created, updated)
		SELECT id || k.suffix, business_id, plan_id, k.customer, cycle_number + k.n, type, status, scheduled_timestamp, currency,
			retry_interval_count, total_retry, failed_attempt_notifications, usage_window_start, usage_window_end, fix_at, created, updated
		FROM recurring_cycles, (VALUES ('a', $2, 100), ('b', 'cust_other', 101)) AS k(suffix, customer, n) WHERE id = $1`, c.ID, w.cust.ID)
	refused("a payment moved to another customer", "business_id, customer_id, payment_request_id",
		`UPDATE payments SET customer_id = 'cust_other' WHERE payment_request_id = $1`, *c.attempts[0].PaymentRequestID)
	refused("a plan moved to another customer", "", `UPDATE recurring_plans SET customer_id = 'cust_other' WHERE id = $1`, p.ID)
	refused("a payment request moved to another customer", "",
		`UPDATE payment_requests SET customer_id = 'cust_other' WHERE id = $1`, *c.attempts[0].PaymentRequestID)
	if n := w.count("SELECT count(*) FROM recurring_cycles WHERE plan_id = ?", p.ID); n != 2 {
		t.Errorf("%d cycles of the plan, want 2 (cycle 1 and its successor)", n)
	}
	w.checkInvariants()
}

// TestChargeRankOrder: an attempt tries the plan's tokens in rank order,
// one action each, until one succeeds; a token that is no longer ACTIVE is
// skipped.
func TestChargeRankOrder(t *testing.T) {
	w := newChargeWorld(t)
	failing, cancelled, good := w.token("always_fail"), w.token(""), w.token("")
	p := w.plan(w.planBody(failing, cancelled, good))
	if _, err := w.pay.CancelToken(w.ctx, w.db.Bun, w.business(), w.now, cancelled); err != nil {
		t.Fatal(err)
	}
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "1.2 INITIAL SUCCEEDED")
	if c.Status != CycleStatusSucceeded || c.AttemptCount != 1 || *c.attempts[0].PaymentTokenID != failing || *c.attempts[1].PaymentTokenID != good {
		t.Fatalf("cycle %s, %d attempts", c.Status, c.AttemptCount)
	}
	if n := w.count("SELECT count(*) FROM payments WHERE business_id = ? AND status = 'SUCCEEDED' AND amount = 100000", w.biz.ID); n != 1 {
		t.Fatalf("%d payments of the cycle succeeded", n)
	}
	got, _ := w.notices()
	wantList(t, "notifications", got, "CYCLE_CREATED/WHATSAPP", "CYCLE_SUCCEEDED/WHATSAPP", "CYCLE_CREATED/WHATSAPP")
}

// TestChargeZeroAmount: a cycle that owes nothing succeeds at its time
// without a charge: no attempt, no payment request, the invoice PAID.
func TestChargeZeroAmount(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("always_fail")
	body := w.planBody(tok)
	body["amount"] = 0
	p := w.plan(body)
	requests := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", w.biz.ID)
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	inv := w.invoiceOf(c)
	if c.Status != CycleStatusSucceeded || len(c.attempts) != 0 || c.AttemptCount != 0 || inv.Status != InvoiceStatusPaid || !inv.Total.IsZero() {
		t.Fatalf("cycle %s %v, invoice %s %s", c.Status, attempts(c), inv.Status, inv.Total)
	}
	if n := w.count("SELECT count(*) FROM payment_requests WHERE business_id = ?", w.biz.ID); n != requests {
		t.Fatalf("%d payment requests made for a zero amount", n-requests)
	}
	if w.cycle(p, 2).Status != CycleStatusScheduled {
		t.Fatal("no next cycle")
	}
}

// TestRetriesUntilTheCustomerHasMoney is the fail_until case: the
// token fails until a date between the retries. Attempt 1 on the date and
// attempt 2 three days later fail (RETRYING, recurring.cycle.retrying, the
// next retry three days after each attempt); only attempt 1, listed in
// failed_attempt_notifications, is notified, with a pay link; attempt 3
// succeeds before the retries run out.
func TestRetriesUntilTheCustomerHasMoney(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("fail_until:2026-02-20T00:00:00Z")
	p := w.plan(w.planBody(tok))
	before := len(w.events(0))
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusRetrying || c.NextAction == nil || *c.NextAction != ActionCharge || !c.NextActionAt.Equal(at("2026-02-18T08:00:00Z")) {
		t.Fatalf("after attempt 1: %s, next %v at %v", c.Status, c.NextAction, c.NextActionAt)
	}
	if r := c.attempts[0].NextRetryTimestamp; r == nil || !r.Equal(at("2026-02-18T08:00:00Z")) {
		t.Fatalf("next_retry_timestamp %v", r)
	}
	w.to("2026-02-18T07:59:59Z")
	if w.cycle(p, 1).AttemptCount != 1 {
		t.Fatal("retried before its time")
	}
	w.to("2026-02-21T08:00:00Z")
	c = w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "2.1 RETRY FAILED INSUFFICIENT_BALANCE", "3.1 RETRY SUCCEEDED")
	if c.Status != CycleStatusSucceeded || c.AttemptCount != 3 || !c.attempts[1].Created.Equal(at("2026-02-18T08:00:00Z")) ||
		!c.attempts[2].Created.Equal(at("2026-02-21T08:00:00Z")) || !c.attempts[1].NextRetryTimestamp.Equal(at("2026-02-21T08:00:00Z")) {
		t.Fatalf("cycle %s after %d attempts: %+v", c.Status, c.AttemptCount, c.attempts)
	}
	wantList(t, "events", w.events(before), "recurring.cycle.amount_fixed", "invoice.finalized",
		"payment.failure", "recurring.cycle.retrying", "payment.failure", "recurring.cycle.retrying",
		"payment.capture", "invoice.paid", "recurring.cycle.succeeded", "recurring.cycle.created")
	got, ns := w.notices()
	wantList(t, "notifications", got, "CYCLE_CREATED/WHATSAPP", "ATTEMPT_FAILED#1/WHATSAPP", "ATTEMPT_FAILED#1/EMAIL",
		"CYCLE_SUCCEEDED/WHATSAPP", "CYCLE_CREATED/WHATSAPP")
	if !strings.Contains(ns[1].Body, "https://billing.test/pay/pay_") || !strings.Contains(ns[1].Body, "percobaan ke-1") {
		t.Errorf("ATTEMPT_FAILED body: %q", ns[1].Body)
	}
	if w.service().Status != customers.ServiceActive {
		t.Error("service changed")
	}
}

// TestChargeWaitsForReview: a cycle whose invoice is held is not charged
// at its time; released, it is charged at once.
func TestChargeWaitsForReview(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("")))
	w.to("2026-02-14T12:00:00Z")
	inv := w.invoiceOf(w.cycle(p, 1))
	if _, err := w.s.HoldInvoice(w.ctx, w.db.Bun, w.business(), w.now, inv.ID, "key-test", InvoiceActionParams{}); err != nil {
		t.Fatal(err)
	}
	w.to("2026-02-16T00:00:00Z")
	if c := w.cycle(p, 1); c.Status != CycleStatusScheduled || len(c.attempts) != 0 {
		t.Fatalf("a held invoice was charged: %s %v", c.Status, attempts(c))
	}
	if _, err := w.s.ReleaseInvoice(w.ctx, w.db.Bun, w.business(), w.now, inv.ID, "key-test", InvoiceActionParams{}); err != nil {
		t.Fatal(err)
	}
	w.runDue()
	if c := w.cycle(p, 1); c.Status != CycleStatusSucceeded || !c.attempts[0].Created.Equal(at("2026-02-16T00:00:00Z")) {
		t.Fatalf("after release: %s %v", c.Status, attempts(c))
	}
}
