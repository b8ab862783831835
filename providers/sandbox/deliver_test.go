package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	now := opened
	p := sandbox.New(sandbox.Config{DB: db.Bun})
	cfg := newBusiness(t, db)
	link(t, p, cfg, "first", "", now)
	var got []string
	inFirst, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failure below must not leave the first delivery holding its connection
	var calls atomic.Int32
	firstDone := make(chan int)
	go func() {
		n, err := p.DeliverDue(ctx, cfg.BusinessID, now, 500, func(ctx context.Context, ins []providers.CallbackInput) error {
			if calls.Add(1) == 1 {
				close(inFirst)
				<-release
			}
			for _, in := range ins {
				got = append(got, string(in.Body))
			}
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
	n, err := p.DeliverDue(waitCtx, cfg.BusinessID, now, 500, func(context.Context, []providers.CallbackInput) error {
		t.Error("a second delivery delivered while the first was at work")
		return nil
	})
	if err != nil || n != 0 {
		t.Fatalf("second delivery: %d, %v (it must return at once, not wait)", n, err)
	}
	link(t, p, cfg, "second", "", now) // falls due while the first delivery is at work
	releaseOnce()
	if n := <-firstDone; n != 4 || len(got) != 4 {
		t.Fatalf("the first delivery delivered %d callbacks, want 4 (capture and activation of both linkings)", n)
	}
}

// TestDeliverInBatches: callbacks go to receive in time order, at most
// size at a time; a batch receive refuses stays undelivered, and the
// batches before it stay delivered.
func TestDeliverInBatches(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := opened
	p := sandbox.New(sandbox.Config{DB: db.Bun})
	cfg := newBusiness(t, db)
	// Three linkings, settled newest first: their callbacks are due in
	// the order of the business clock, not of their ids.
	toks := map[string]string{}
	for i, key := range []string{"a", "b", "c"} {
		toks[key] = link(t, p, cfg, key, "", now.Add(time.Duration(2-i)*time.Second))
	}
	var batches [][]string
	refuse := true
	receive := func(ctx context.Context, ins []providers.CallbackInput) error {
		var refs []string
		for _, in := range ins {
			var w struct {
				Event string `json:"event"`
				Data  struct {
					ReferenceID string `json:"reference_id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(in.Body, &w); err != nil || in.Header.Get("Webhook-Id") == "" {
				t.Errorf("callback %s (%v) without its id", in.Body, err)
			}
			refs = append(refs, w.Data.ReferenceID+" "+w.Event)
		}
		batches = append(batches, refs)
		if len(batches) == 2 && refuse {
			return errors.New("not now")
		}
		return nil
	}
	n, err := p.DeliverDue(ctx, cfg.BusinessID, now.Add(time.Minute), 4, receive)
	if err == nil || n != 4 {
		t.Fatalf("delivered %d (%v), want the first batch of 4 and the second's error", n, err)
	}
	refuse = false
	if n, err = p.DeliverDue(ctx, cfg.BusinessID, now.Add(time.Minute), 4, receive); err != nil || n != 2 {
		t.Fatalf("delivered %d (%v), want the 2 refused", n, err)
	}
	want := [][]string{
		{"pr-c payment.capture", "pr-c payment_token.activation", "pr-b payment.capture", "pr-b payment_token.activation"},
		{"pr-a payment.capture", "pr-a payment_token.activation"},
		{"pr-a payment.capture", "pr-a payment_token.activation"},
	}
	if !reflect.DeepEqual(batches, want) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
	// Below one, a batch is one callback.
	for _, key := range []string{"a", "b"} {
		charge := providers.ChargeRequest{BusinessID: cfg.BusinessID, IdempotencyKey: "charge-" + key, Reference: "pr-charge-" + key,
			TokenRef: toks[key], Country: "ID", Amount: idr(5000), Now: now}
		if _, err := p.Charge(ctx, cfg, charge); err != nil {
			t.Fatal(err)
		}
	}
	batches = nil
	if n, err := p.DeliverDue(ctx, cfg.BusinessID, now.Add(time.Minute), 0, receive); err != nil || n != 2 || len(batches) != 2 {
		t.Fatalf("delivered %d in %d batches (%v), want 2 in 2", n, len(batches), err)
	}
}
