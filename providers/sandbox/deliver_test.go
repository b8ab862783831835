package sandbox_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

// TestOneDeliveryAtATime: a delivery that finds the business's next
// callback being delivered by another returns at once, delivering nothing
// (rather than holding a connection while it waits); the one at work
// delivers what falls due meanwhile, in order.
func TestOneDeliveryAtATime(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	biz, _, err := business.Create(ctx, db.Bun, billing.NewSettableClock(now), business.CreateParams{Name: "sbx", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	p := sandbox.New(sandbox.Config{DB: db.Bun})
	cfg := providers.Config{BusinessID: biz.ID, Active: providers.Sandbox, Sandbox: true}
	link := func(key string) {
		t.Helper()
		req := providers.LinkRequest{BusinessID: biz.ID, IdempotencyKey: key, Reference: "pr-" + key, Country: "ID",
			Amount: billing.Money{Amount: decimal.NewFromInt(10000), Currency: "IDR"}, ChannelCode: "OVO", Now: now}
		if _, err := p.StartLinking(ctx, cfg, req); err != nil {
			t.Fatal(err)
		}
		ref := providers.PaymentRef{BusinessID: biz.ID, IdempotencyKey: key, Now: now}
		if err := p.Simulate(ctx, cfg, ref, req.Amount); err != nil {
			t.Fatal(err)
		}
	}
	link("first")
	var got []string
	inFirst, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failure below must not leave the first delivery holding its connection
	var calls atomic.Int32
	firstDone := make(chan int)
	go func() {
		n, err := p.DeliverDue(ctx, biz.ID, now, func(ctx context.Context, in providers.CallbackInput) error {
			if calls.Add(1) == 1 {
				close(inFirst)
				<-release
			}
			got = append(got, string(in.Body))
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		firstDone <- n
	}()
	<-inFirst
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := p.DeliverDue(waitCtx, biz.ID, now, func(context.Context, providers.CallbackInput) error {
		t.Error("a second delivery delivered while the first was at work")
		return nil
	})
	if err != nil || n != 0 {
		t.Fatalf("second delivery: %d, %v (it must return at once, not wait)", n, err)
	}
	link("second") // falls due while the first delivery is at work
	releaseOnce()
	if n := <-firstDone; n != 4 || len(got) != 4 {
		t.Fatalf("the first delivery delivered %d callbacks, want 4 (capture and activation of both linkings)", n)
	}
}
