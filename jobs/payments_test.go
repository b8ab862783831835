package jobs_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/jobs"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

// TestPaymentJobs runs the payment workers in a River client, as billing
// serve does: the sandbox's callbacks are delivered by the jobs its
// operations trigger, and the reconciler settles a charge whose answer and
// callback were both lost, 15 minutes (business clock) after it was sent.
func TestPaymentJobs(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := billing.NewSettableClock(start)
	var client atomic.Pointer[river.Client[pgx.Tx]]
	var dropCallbacks atomic.Bool
	due := func(ctx context.Context, businessID string) {
		if dropCallbacks.Load() {
			return
		}
		if _, err := client.Load().Insert(ctx, jobs.SandboxCallbacksArgs{BusinessID: businessID}, nil); err != nil {
			t.Error(err)
		}
	}
	svc := payments.New(payments.Config{DB: db.Bun, Clock: clock,
		Providers: []providers.Provider{sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: due})}})
	c, err := jobs.NewClient(db.Pool, jobs.Deps{DB: db.Bun, Clock: clock, Payments: svc}, jobs.Config{Work: true, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	client.Store(c)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = c.Stop(stopCtx)
	}()

	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Jobs payments", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := customers.DecodeCreate([]byte(`{"reference_id":"m-1","individual_detail":{"given_names":"Siti"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cust, err := customers.Create(ctx, db.Bun, biz.ID, start, cp)
	if err != nil {
		t.Fatal(err)
	}
	create := func(body map[string]any) *payments.PaymentRequest {
		t.Helper()
		raw, _ := json.Marshal(body)
		p, err := payments.DecodeCreate(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := business.Get(ctx, db.Bun, biz.ID)
		pr, err := svc.Create(ctx, b, b.Clock().Now(), p, "", raw)
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	status := func(id string) string {
		var s string
		if err := db.Bun.NewRaw("SELECT status FROM payment_requests WHERE id = ?", id).Scan(ctx, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wait := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	link := create(map[string]any{"reference_id": "l", "type": "PAY_AND_SAVE", "customer_id": cust.ID, "country": "ID", "currency": "IDR",
		"request_amount": 150000, "channel_code": "OVO", "metadata": map[string]any{"sandbox_behavior": "timeout_once"},
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}})
	b, _ := business.Get(ctx, db.Bun, biz.ID)
	if _, err := svc.Simulate(ctx, db.Bun, b, b.Clock().Now(), link.ID, payments.SimulateParams{}); err != nil {
		t.Fatal(err)
	}
	wait("the linking's callbacks delivered by the job", func() bool { return status(link.ID) == payments.StatusSucceeded })
	var tokenID string
	if err := db.Bun.NewRaw("SELECT payment_token_id FROM payment_requests WHERE id = ?", link.ID).Scan(ctx, &tokenID); err != nil {
		t.Fatal(err)
	}

	// The token's first charge times out after the sandbox took the money,
	// and its callback is lost too.
	dropCallbacks.Store(true)
	charge := create(map[string]any{"reference_id": "c", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 99000})
	if _, err := db.Bun.NewRaw("DELETE FROM sandbox_callbacks WHERE business_id = ? AND delivered_at IS NULL", biz.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if charge.APIStatus() != payments.StatusPending {
		t.Fatalf("charge: %s", charge.Status)
	}
	by := 15 * time.Minute
	if _, err := business.AdvanceClock(ctx, db.Bun, biz.ID, business.ClockAdvance{By: &by}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Insert(ctx, jobs.PaymentReconcileArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	wait("the reconciler settles the charge", func() bool { return status(charge.ID) == payments.StatusSucceeded })
	var charges, captures int
	if err := db.Bun.NewRaw("SELECT count(*) FROM sandbox_payments WHERE business_id = ? AND kind = 'CHARGE'", biz.ID).Scan(ctx, &charges); err != nil {
		t.Fatal(err)
	}
	if err := db.Bun.NewRaw("SELECT count(*) FROM events WHERE business_id = ? AND type = 'payment.capture'", biz.ID).Scan(ctx, &captures); err != nil {
		t.Fatal(err)
	}
	if charges != 1 || captures != 2 {
		t.Fatalf("%d sandbox charges (want 1), %d captures (want 2)", charges, captures)
	}
}
