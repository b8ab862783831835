package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// sandboxCharges counts the charges the sandbox provider made with key.
func (w *chargeWorld) sandboxCharges(key string) int {
	w.t.Helper()
	return w.count("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND idempotency_key = ?", w.biz.ID, key)
}

// TestPendingThenSucceed: a provider that answers PENDING leaves the cycle
// PENDING with nothing due; the callback a minute later settles it.
func TestPendingThenSucceed(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("pending_then_succeed")))
	w.to("2026-02-15T08:00:30Z")
	c := w.cycle(p, 1)
	if c.Status != CycleStatusPending || c.NextAction != nil || c.attempts[0].Status != AttemptPending || c.attempts[0].PaymentRequestID == nil {
		t.Fatalf("while pending: %s next %v, %v", c.Status, c.NextAction, attempts(c))
	}
	w.to("2026-02-15T08:01:00Z")
	if c = w.cycle(p, 1); c.Status != CycleStatusSucceeded || w.invoiceOf(c).Status != InvoiceStatusPaid {
		t.Fatalf("after the callback: %s %v", c.Status, attempts(c))
	}
}

// TestTimeoutOnce: the provider took the money but its answer was lost.
// The lost answer is recovered — by the callback, or when the callback is
// lost too, by the reconciler asking again with the same key — and the
// customer is charged once.
func TestTimeoutOnce(t *testing.T) {
	for _, byReconciler := range []bool{false, true} {
		t.Run(fmt.Sprintf("reconciler=%v", byReconciler), func(t *testing.T) {
			w := newChargeWorld(t)
			w.holdCallbacks = byReconciler
			p := w.plan(w.planBody(w.token("timeout_once")))
			w.to("2026-02-15T08:00:00Z")
			c := w.cycle(p, 1)
			if byReconciler {
				if c.Status != CycleStatusPending || c.NextAction != nil || c.attempts[0].Status != AttemptPending {
					t.Fatalf("with the answer lost: %s next %v, %v", c.Status, c.NextAction, attempts(c))
				}
				w.to("2026-02-15T08:15:00Z")
				if _, err := w.pay.ReconcileDue(w.ctx, 100); err != nil {
					t.Fatal(err)
				}
				w.holdCallbacks = false
				w.runDue()
			}
			c = w.cycle(p, 1)
			wantList(t, "attempts", attempts(c), "1.1 INITIAL SUCCEEDED")
			if c.Status != CycleStatusSucceeded || w.sandboxCharges(c.attempts[0].ProviderKey) != 1 {
				t.Fatalf("cycle %s; the sandbox charged %d times", c.Status, w.sandboxCharges(c.attempts[0].ProviderKey))
			}
		})
	}
}

// TestInterruptedAfterTheProvider is SPEC §8 guarantee 2: the worker dies
// after the provider took the money and before the answer is recorded
// (and the provider's callback is lost). The cycle stays PENDING with its
// lease; when the lease runs out SEND_CHARGE sends the action again with
// the same provider key, the provider answers its first answer, and the
// cycle succeeds — with one charge, one payment, one payment.capture.
func TestInterruptedAfterTheProvider(t *testing.T) {
	w := newChargeWorld(t)
	w.holdCallbacks = true
	p := w.plan(w.planBody(w.token("")))
	w.to("2026-02-14T00:00:00Z")
	w.setSeam(func(string) error { return errors.New("killed between the provider's answer and the commit") })
	w.to("2026-02-15T08:00:00Z")
	w.setSeam(nil)
	c := w.cycle(p, 1)
	key := c.ID + "/1/1"
	if c.Status != CycleStatusPending || *c.NextAction != ActionSendCharge || !c.NextActionAt.Equal(at("2026-02-15T08:02:00Z")) ||
		w.sandboxCharges(key) != 1 {
		t.Fatalf("after the crash: %s %v at %v, %d charges", c.Status, c.NextAction, c.NextActionAt, w.sandboxCharges(key))
	}
	w.to("2026-02-15T08:01:59Z")
	if w.cycle(p, 1).Status != CycleStatusPending {
		t.Fatal("resent before the lease ran out")
	}
	w.to("2026-02-15T08:02:00Z")
	c = w.cycle(p, 1)
	if c.Status != CycleStatusSucceeded || w.sandboxCharges(key) != 1 {
		t.Fatalf("after SEND_CHARGE: %s, %d charges", c.Status, w.sandboxCharges(key))
	}
	w.holdCallbacks = false
	w.runDue() // the late callback is a duplicate
	if n := w.count("SELECT count(*) FROM events WHERE business_id = ? AND type = 'payment.capture' AND data->>'payment_request_id' = ?",
		w.biz.ID, *c.attempts[0].PaymentRequestID); n != 1 {
		t.Fatalf("%d payment.capture events", n)
	}
	if w.cycle(p, 2).Status != CycleStatusScheduled {
		t.Fatal("no next cycle")
	}
}

// TestInterruptedBeforeTheProvider: the worker dies after it committed the
// action and before it called the provider. SEND_CHARGE makes the call
// when the lease runs out.
func TestInterruptedBeforeTheProvider(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("")))
	w.to("2026-02-15T07:00:00Z")
	w.setClock(at("2026-02-15T08:00:00Z"))
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		plan, c, err := lockCycle(ctx, tx, w.biz.ID, w.cycle(p, 1).ID)
		if err != nil {
			return err
		}
		_, err = w.s.openAction(ctx, tx, plan, c, w.now, false, "") // and the worker dies
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	key := w.cycle(p, 1).ID + "/1/1"
	if w.sandboxCharges(key) != 0 || w.count("SELECT count(*) FROM payment_requests WHERE provider_key = ?", key) != 0 {
		t.Fatal("charged before the call")
	}
	w.to("2026-02-15T08:02:00Z")
	if c := w.cycle(p, 1); c.Status != CycleStatusSucceeded || w.sandboxCharges(key) != 1 {
		t.Fatalf("after SEND_CHARGE: %s, %d charges", c.Status, w.sandboxCharges(key))
	}
}

// TestThreeProcesses: three engine processes — each its own pool, payment
// service and engine, on one database — run the same due cycles at once,
// in small batches, one of them dying after every third provider answer.
// Every cycle is charged, each action once, and no cycle twice.
func TestThreeProcesses(t *testing.T) {
	w := newChargeWorld(t)
	fail, good := w.token("always_fail"), w.token("")
	var plans []*Plan
	for i := 0; i < 30; i++ {
		tokens := []string{good}
		if i%2 == 0 {
			tokens = []string{fail, good}
		}
		plans = append(plans, w.plan(w.planBody(tokens...)))
	}
	w.to("2026-02-15T00:00:00Z")
	var calls atomic.Int64
	var procs []*Service
	for i := 0; i < 3; i++ {
		db, err := postgres.Open(w.ctx, pgtest.URL(t), 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		seam := func(context.Context, string) error { return nil }
		if i == 1 {
			seam = func(context.Context, string) error {
				if calls.Add(1)%3 == 0 {
					return errors.New("killed")
				}
				return nil
			}
		}
		_, eng := engineProcess(db, 4, seam)
		procs = append(procs, eng)
	}
	w.holdCallbacks = true
	runAll := func(now time.Time) {
		w.setClock(now)
		var wg sync.WaitGroup
		for _, eng := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := eng.RunDueBusiness(w.ctx, w.biz.ID, now); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	// Every two minutes the dead process's leases have run out and another
	// takes its work over; it may die again on what it takes, so go on
	// until no cycle 1 has anything left to do.
	for round := 0; ; round++ {
		runAll(at("2026-02-15T08:00:00Z").Add(time.Duration(round) * 2 * time.Minute))
		if w.count("SELECT count(*) FROM recurring_cycles WHERE business_id = ? AND cycle_number = 1 AND next_action IS NOT NULL", w.biz.ID) == 0 {
			break
		}
		if round == 30 {
			t.Fatal("cycles still have work after 30 rounds")
		}
	}
	for _, p := range plans {
		c := w.cycle(p, 1)
		want := []string{"1.1 INITIAL SUCCEEDED"}
		if len(p.PaymentMethods) == 2 {
			want = []string{"1.1 INITIAL FAILED INSUFFICIENT_BALANCE", "1.2 INITIAL SUCCEEDED"}
		}
		wantList(t, "attempts of "+p.ReferenceID, attempts(c), want...)
		if c.Status != CycleStatusSucceeded {
			t.Errorf("%s: cycle %s", p.ReferenceID, c.Status)
		}
		for _, a := range c.attempts {
			if n := w.sandboxCharges(a.ProviderKey); n != 1 {
				t.Errorf("%s was charged %d times", a.ProviderKey, n)
			}
		}
	}
	if calls.Load() < 3 {
		t.Fatalf("the dying process made %d calls; it should have died at least once", calls.Load())
	}
	if n := w.count("SELECT count(*) FROM recurring_cycles WHERE business_id = ? AND cycle_number = 2", w.biz.ID); n != len(plans) {
		t.Fatalf("%d next cycles for %d plans", n, len(plans))
	}
	w.holdCallbacks = false
	w.runDue()
	if n := w.count("SELECT count(*) FROM payments WHERE business_id = ? AND status = ? AND amount = 100000", w.biz.ID, payments.StatusSucceeded); n != len(plans) {
		t.Fatalf("%d payments succeeded for %d cycles", n, len(plans))
	}
}
