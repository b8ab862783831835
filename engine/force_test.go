package engine

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tagihan/billing/internal/customers"
	"github.com/uptrace/bun"
)

func (w *chargeWorld) force(p *Plan, n int) (*Cycle, error) {
	w.t.Helper()
	return w.s.ForceAttempt(w.ctx, w.business(), w.now, p.ID, w.cycle(p, n).ID, "")
}

// patchPlan applies a PATCH body to plan p at the world's time.
func (w *chargeWorld) patchPlan(p *Plan, body map[string]any) {
	w.t.Helper()
	raw, _ := json.Marshal(body)
	pp, err := DecodePlanPatch(raw)
	if err != nil {
		w.t.Fatal(err)
	}
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.PatchPlan(ctx, tx, w.business(), w.now, p.ID, pp)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// TestForceAttemptLimits: force_attempt charges a SCHEDULED cycle whose
// invoice is OPEN at once (FORCED); a failed one puts the cycle back,
// still due at its scheduled timestamp, and uses no scheduled attempt; no
// customer is notified; a sixth is refused, as is forcing a cycle whose
// amount is not fixed or that has ended.
func TestForceAttemptLimits(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("always_fail")))
	w.to("2026-02-14T00:00:00Z")
	for i := 1; i <= 5; i++ {
		c, err := w.force(p, 1)
		if err != nil {
			t.Fatalf("force %d: %v", i, err)
		}
		if c.Status != CycleStatusScheduled || c.ForcedAttemptCount != i || c.AttemptCount != 0 || *c.NextAction != ActionCharge ||
			!c.NextActionAt.Equal(at("2026-02-15T08:00:00Z")) || c.attempts[i-1].Type != AttemptForced || c.attempts[i-1].Status != AttemptFailed {
			t.Fatalf("after force %d: %s forced %d scheduled %d next %v at %v, %v", i, c.Status, c.ForcedAttemptCount, c.AttemptCount,
				c.NextAction, c.NextActionAt, attempts(c))
		}
	}
	_, err := w.force(p, 1)
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")
	if n := w.count("SELECT count(*) FROM events WHERE business_id = ? AND type = 'recurring.cycle.retrying'", w.biz.ID); n != 0 {
		t.Fatalf("%d retrying events for forced attempts", n)
	}
	if got, _ := w.notices(); len(got) != 1 {
		t.Fatalf("notifications for forced attempts: %v", got)
	}
	// The scheduled attempt still runs on the date, with a token that works.
	w.patchPlan(p, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": w.token(""), "rank": 1}}})
	w.to("2026-02-15T08:00:00Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusSucceeded || len(c.attempts) != 6 || attempts(c)[5] != "6.1 INITIAL SUCCEEDED" || c.AttemptCount != 1 {
		t.Fatalf("the date's attempt: %s %v", c.Status, attempts(c))
	}
	_, err = w.force(p, 1)
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")
	_, err = w.force(p, 2) // its amount is not fixed yet
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")
}

// TestForceAttemptWhileRetrying: a forced attempt of a RETRYING cycle that
// fails leaves the next retry as it was; one that succeeds ends the cycle.
func TestForceAttemptWhileRetrying(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("fail_until:2026-02-17T00:00:00Z")))
	w.to("2026-02-16T09:00:00Z")
	c, err := w.force(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != CycleStatusRetrying || !c.NextActionAt.Equal(at("2026-02-18T08:00:00Z")) || c.AttemptCount != 1 || c.ForcedAttemptCount != 1 {
		t.Fatalf("after a failed forced attempt: %s next %v, %d+%d attempts", c.Status, c.NextActionAt, c.AttemptCount, c.ForcedAttemptCount)
	}
	w.to("2026-02-17T09:00:00Z")
	if c, err = w.force(p, 1); err != nil {
		t.Fatal(err)
	}
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "2.1 FORCED FAILED INSUFFICIENT_BALANCE", "3.1 FORCED SUCCEEDED")
	if c.Status != CycleStatusSucceeded || c.NextAction != nil || w.invoiceOf(c).Status != InvoiceStatusPaid || w.cycle(p, 2).Status != CycleStatusScheduled {
		t.Fatalf("after a successful forced attempt: %s", c.Status)
	}
}

// TestImmediateCharge: a FULL_AMOUNT plan with a token is PENDING with an
// IMMEDIATE cycle 0 (its invoice of one BASE line, numbered, OPEN) charged
// at once; success activates the plan with cycle 1. A plan that gets its
// token later (here by PATCH) does the same when it activates.
func TestImmediateCharge(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("")
	body := w.planBody(tok)
	body["immediate_action_type"] = "FULL_AMOUNT"
	before := len(w.events(0))
	p := w.plan(body)
	c := w.cycle(p, 0)
	inv := w.invoiceOf(c)
	if p.Status != PlanStatusPending || c.Type != CycleTypeImmediate || c.Status != CycleStatusScheduled || *c.NextAction != ActionCharge ||
		inv.Status != InvoiceStatusOpen || inv.Number == nil || !inv.Total.Equal(dec("100000")) {
		t.Fatalf("plan %s; cycle 0 %s %s; invoice %s %v %s", p.Status, c.Type, c.Status, inv.Status, inv.Number, inv.Total)
	}
	w.runDue()
	c = w.cycle(p, 0)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL SUCCEEDED")
	p = w.planNow(p)
	if c.Status != CycleStatusSucceeded || p.Status != PlanStatusActive || !p.ActivatedAt.Equal(chargeStart) || w.cycle(p, 1).Status != CycleStatusScheduled {
		t.Fatalf("after the charge: cycle %s, plan %s", c.Status, p.Status)
	}
	wantList(t, "events", w.events(before), "recurring.cycle.created", "invoice.finalized",
		"payment.capture", "invoice.paid", "recurring.cycle.succeeded", "recurring.plan.activated", "recurring.cycle.created")

	late := w.planBody()
	late["immediate_action_type"] = "FULL_AMOUNT"
	p2 := w.plan(late)
	if p2.Status != PlanStatusRequiresAction {
		t.Fatalf("plan without a token: %s", p2.Status)
	}
	w.patchPlan(p2, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": tok, "rank": 1}}})
	if got := w.planNow(p2); got.Status != PlanStatusPending {
		t.Fatalf("after PATCH: %s", got.Status)
	}
	w.runDue()
	if got := w.planNow(p2); got.Status != PlanStatusActive || w.cycle(p2, 0).Status != CycleStatusSucceeded {
		t.Fatalf("after its immediate charge: %s", got.Status)
	}
}

// TestImmediateChargeFails: the immediate charge is one attempt, never
// retried; its failure makes the plan INACTIVE with the failure code,
// voids the invoice (nothing is owed for a plan that never started), and
// creates no cycle 1.
func TestImmediateChargeFails(t *testing.T) {
	w := newChargeWorld(t)
	body := w.planBody(w.token("always_fail"))
	body["immediate_action_type"] = "FULL_AMOUNT"
	before := len(w.events(0))
	p := w.plan(body)
	w.to("2026-03-01T00:00:00Z")
	c := w.cycle(p, 0)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL FAILED INSUFFICIENT_BALANCE")
	p = w.planNow(p)
	if c.Status != CycleStatusFailed || p.Status != PlanStatusInactive || p.FailureCode == nil || *p.FailureCode != "INSUFFICIENT_BALANCE" ||
		w.invoiceOf(c).Status != InvoiceStatusVoid {
		t.Fatalf("cycle %s, plan %s %v, invoice %s", c.Status, p.Status, p.FailureCode, w.invoiceOf(c).Status)
	}
	wantList(t, "events", w.events(before), "recurring.cycle.created", "invoice.finalized",
		"payment.failure", "invoice.voided", "recurring.cycle.failed", "recurring.plan.inactivated")
	if n := w.count("SELECT count(*) FROM recurring_cycles WHERE plan_id = ?", p.ID); n != 1 {
		t.Fatalf("%d cycles", n)
	}
	if w.service().Status != customers.ServiceActive {
		t.Fatal("suspended for a plan that never started")
	}
}

// TestLateCapture: the provider reports, after the cycle FAILED, that the
// last attempt's charge was captured after all. The money is recorded: the
// attempt SUCCEEDED, the UNCOLLECTIBLE invoice PAID, the customer
// reinstated; the cycle stays FAILED and the plan INACTIVE.
func TestLateCapture(t *testing.T) {
	w := newChargeWorld(t)
	p, c := failToStop(t, w, w.planBody(w.token("always_fail")))
	last := c.attempts[3]
	if _, err := w.db.Bun.NewRaw(`INSERT INTO sandbox_callbacks (business_id, payment_id, event, due_at, body, created)
		SELECT business_id, payment_id, 'payment.capture', due_at, convert_to(replace(replace(convert_from(body, 'UTF8'),
			'"payment.failure"', '"payment.capture"'), '"FAILED"', '"SUCCEEDED"'), 'UTF8'), created
		FROM sandbox_callbacks WHERE business_id = ? AND event = 'payment.failure'
			AND payment_id = (SELECT id FROM sandbox_payments WHERE idempotency_key = ?)`, w.biz.ID, last.ProviderKey).Exec(w.ctx); err != nil {
		t.Fatal(err)
	}
	if w.runDue() != 1 {
		t.Fatal("the capture was not delivered")
	}
	c = w.cycle(p, 1)
	if c.Status != CycleStatusFailed || c.attempts[3].Status != AttemptSucceeded || w.invoiceOf(c).Status != InvoiceStatusPaid {
		t.Fatalf("cycle %s, %v, invoice %s", c.Status, attempts(c), w.invoiceOf(c).Status)
	}
	if st := w.service(); st.Status != customers.ServiceActive || w.planNow(p).Status != PlanStatusInactive {
		t.Fatalf("service %s, plan %s", st.Status, w.planNow(p).Status)
	}
}

// TestForceAttemptResumedWithItsKey: a force_attempt request keeps its
// Idempotency-Key on the attempt it opens. Made again with that key, after
// its first run committed the attempt and died before calling the
// provider, it sends that action (its provider key, one charge) instead of
// refusing the PENDING cycle, and answers with the cycle; made again once
// the attempt has an outcome, it answers with the cycle as it is, and
// opens no second attempt. Another key is a new request: refused while the
// cycle is PENDING, a new forced attempt once it is not.
func TestForceAttemptResumedWithItsKey(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("")))
	q := w.plan(w.planBody(w.token("always_fail")))
	w.to("2026-02-14T00:00:00Z")
	id := w.cycle(p, 1).ID
	force := func(key string) (*Cycle, error) { return w.s.ForceAttempt(w.ctx, w.business(), w.now, p.ID, id, key) }
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		plan, c, err := lockCycle(ctx, tx, w.biz.ID, id)
		if err != nil {
			return err
		}
		_, err = w.s.openAction(ctx, tx, plan, c, w.now, true, "force-1") // and the request's run dies
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	key := id + "/1/1"
	if c := w.cycle(p, 1); c.Status != CycleStatusPending || w.sandboxCharges(key) != 0 {
		t.Fatalf("after the cut-short run: %s, %d charges", c.Status, w.sandboxCharges(key))
	}
	_, err = force("force-2")
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")

	c, err := force("force-1")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "attempts", attempts(c), "1.1 FORCED SUCCEEDED")
	if c.Status != CycleStatusSucceeded || c.ForcedAttemptCount != 1 || w.sandboxCharges(key) != 1 ||
		w.count("SELECT count(*) FROM payment_requests WHERE provider_key = ?", key) != 1 ||
		w.count("SELECT count(*) FROM payments WHERE payment_request_id = ? AND status = 'SUCCEEDED'", *c.attempts[0].PaymentRequestID) != 1 {
		t.Fatalf("resumed: %s, %d forced, %d charges", c.Status, c.ForcedAttemptCount, w.sandboxCharges(key))
	}
	if c, err = force("force-1"); err != nil || c.Status != CycleStatusSucceeded || len(c.attempts) != 1 {
		t.Fatalf("asked again after the outcome: %v, %v", c, err)
	}
	_, err = force("force-3")
	wantReason(t, err, "INELIGIBLE_CYCLE_REQUEST")

	// A forced attempt that failed: the same key answers with the cycle,
	// back to SCHEDULED, and tries nothing more; a new key tries again.
	qid := w.cycle(q, 1).ID
	for i, k := range []string{"fail-1", "fail-1", "fail-2"} {
		c, err := w.s.ForceAttempt(w.ctx, w.business(), w.now, q.ID, qid, k)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{1, 1, 2}[i]
		if c.Status != CycleStatusScheduled || c.ForcedAttemptCount != want || len(c.attempts) != want {
			t.Fatalf("force %d (%s): %s, %d forced, %v", i+1, k, c.Status, c.ForcedAttemptCount, attempts(c))
		}
	}
	if n := w.count("SELECT count(*) FROM cycle_attempts WHERE cycle_id = ? AND request_key IS NOT NULL", qid); n != 2 {
		t.Fatalf("%d attempts keep a request key, want 2", n)
	}
}

// TestImmediateChargeReviewed: the review rules apply to the immediate
// cycle's invoice (SPEC §5.6). With a MANUAL policy it is a DRAFT that
// NEEDS_REVIEW and nothing is charged, the plan PENDING, until finance
// approves it; then it is numbered and charged, and the plan starts.
// Above max_total it is held too, and voiding it ends the plan that never
// started: INACTIVE.
func TestImmediateChargeReviewed(t *testing.T) {
	w := newChargeWorld(t)
	tok := w.token("")
	body := w.planBody(tok)
	body["immediate_action_type"], body["review_policy"] = "FULL_AMOUNT", map[string]any{"mode": "MANUAL"}
	before := len(w.events(0))
	p := w.plan(body)
	w.runDue()
	c, inv := w.cycle(p, 0), w.invoiceOf(w.cycle(p, 0))
	if p = w.planNow(p); p.Status != PlanStatusPending || c.Status != CycleStatusScheduled || c.NextAction != nil ||
		inv.Status != InvoiceStatusDraft || inv.ReviewStatus != ReviewNeedsReview || inv.Number != nil || len(c.attempts) != 0 {
		t.Fatalf("plan %s; cycle 0 %s next %v, %d attempts; invoice %s %s %v", p.Status, c.Status, c.NextAction, len(c.attempts),
			inv.Status, inv.ReviewStatus, inv.Number)
	}
	wantList(t, "review reasons", inv.ReviewReasons, reasonManual)
	wantList(t, "events", w.events(before), "recurring.cycle.created", "invoice.needs_review")
	act := func(do func(ctx context.Context, tx bun.Tx) error) {
		t.Helper()
		if err := w.db.Bun.RunInTx(w.ctx, nil, do); err != nil {
			t.Fatal(err)
		}
	}
	act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.ApproveInvoice(ctx, tx, w.business(), w.now, inv.ID, "key_finance", InvoiceActionParams{})
		return err
	})
	w.runDue()
	c, inv = w.cycle(p, 0), w.invoiceOf(w.cycle(p, 0))
	wantList(t, "attempts", attempts(c), "1.1 INITIAL SUCCEEDED")
	if c.Status != CycleStatusSucceeded || inv.Status != InvoiceStatusPaid || inv.Number == nil || w.planNow(p).Status != PlanStatusActive ||
		w.cycle(p, 1).Status != CycleStatusScheduled {
		t.Fatalf("after approval: cycle 0 %s, invoice %s %v, plan %s", c.Status, inv.Status, inv.Number, w.planNow(p).Status)
	}

	big := w.planBody(tok)
	big["immediate_action_type"], big["review_policy"] = "FULL_AMOUNT", map[string]any{"mode": "AUTO", "max_total": 50000}
	q := w.plan(big)
	held := w.invoiceOf(w.cycle(q, 0))
	wantList(t, "review reasons", held.ReviewReasons, reasonTotalAboveMax)
	act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.VoidInvoice(ctx, tx, w.business(), w.now, held.ID, "key_finance", InvoiceActionParams{})
		return err
	})
	w.runDue()
	if q = w.planNow(q); q.Status != PlanStatusInactive || w.cycle(q, 0).Status != CycleStatusCancelled ||
		w.invoiceOf(w.cycle(q, 0)).Status != InvoiceStatusVoid || w.sandboxCharges(w.cycle(q, 0).ID+"/1/1") != 0 {
		t.Fatalf("after voiding the held immediate invoice: plan %s, cycle 0 %s", q.Status, w.cycle(q, 0).Status)
	}
}
