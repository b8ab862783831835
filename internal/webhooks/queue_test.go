package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// queued counts the business's events waiting for dispatch.
func (w *world) queued(biz *business.Business) int {
	w.t.Helper()
	return w.count("SELECT count(*) FROM webhook_event_queue WHERE business_id = ?", biz.ID)
}

// setStatus sets the endpoint's status through UpdateEndpoint.
func (w *world) setStatus(biz *business.Business, e *webhooks.Endpoint, status string) {
	w.t.Helper()
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var p webhooks.PatchParams
		p.Status.Set, p.Status.Value = true, status
		_, err := w.svc.UpdateEndpoint(ctx, tx, biz, e.ID, p)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// TestEventsQueuedOnlyWhileAnEndpointIsEnabled: an event is queued for
// dispatch only when its business has an ENABLED endpoint; without one
// (none, disabled, deleted) nothing is queued, and the event is still
// stored for GET /events.
func TestEventsQueuedOnlyWhileAnEndpointIsEnabled(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	other := w.business(business.ModeSandbox)
	w.emit(biz, outbox.PaymentCapture, map[string]any{})
	if n := w.queued(biz); n != 0 {
		t.Fatalf("without endpoints: %d events queued, want 0", n)
	}
	rcv := newReceiver(t)
	e := w.endpoint(biz, rcv.srv.URL)
	w.emit(biz, outbox.PaymentCapture, map[string]any{})
	w.emit(other, outbox.PaymentCapture, map[string]any{})
	if n, m := w.queued(biz), w.queued(other); n != 1 || m != 0 {
		t.Fatalf("with an endpoint: %d queued, want 1; another business without one: %d, want 0", n, m)
	}
	if n := w.dispatchAndRun(biz); n != 1 {
		t.Fatalf("%d deliveries sent, want 1 (the event emitted after the endpoint)", n)
	}
	w.setStatus(biz, e, webhooks.StatusDisabled)
	w.emit(biz, outbox.PaymentCapture, map[string]any{})
	if n := w.queued(biz); n != 0 {
		t.Fatalf("with the endpoint disabled: %d queued, want 0", n)
	}
	w.setStatus(biz, e, webhooks.StatusEnabled)
	w.emit(biz, outbox.PaymentCapture, map[string]any{})
	if n := w.queued(biz); n != 1 {
		t.Fatalf("with the endpoint enabled again: %d queued, want 1", n)
	}
	if _, err := webhooks.DeleteEndpoint(w.ctx, w.db.Bun, biz.ID, e.ID, w.now(biz)); err != nil {
		t.Fatal(err)
	}
	w.emit(biz, outbox.PaymentCapture, map[string]any{})
	if n := w.queued(biz); n != 1 {
		t.Fatalf("with the endpoint deleted: %d queued, want still 1", n)
	}
	if n := w.count("SELECT count(*) FROM events WHERE business_id = ?", biz.ID); n != 5 {
		t.Fatalf("%d events stored, want all 5", n)
	}
}

// TestNewEndpointWaitsForEventsUnderWay: creating an endpoint waits for a
// transaction that is writing the business's events, and takes its time
// after it; so an event of that transaction, not queued (no endpoint
// when it was written), is older than the endpoint and rightly not
// delivered to it, and every event written after is queued.
func TestNewEndpointWaitsForEventsUnderWay(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeLive)
	w.resolve("hooks.example.com", "93.184.216.34")
	tx, err := w.db.Bun.BeginTx(w.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	early, err := outbox.Emit(w.ctx, tx, biz.ID, outbox.PaymentCapture, w.clock.Now(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan *webhooks.Endpoint, 1)
	failed := make(chan error, 1)
	go func() {
		var e *webhooks.Endpoint
		err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, etx bun.Tx) error {
			var err error
			e, err = w.svc.CreateEndpoint(ctx, etx, biz, webhooks.CreateParams{URL: "https://hooks.example.com/billing",
				EnabledEvents: []string{webhooks.AllEvents}})
			return err
		})
		if err != nil {
			failed <- err
			return
		}
		created <- e
	}()
	select {
	case e := <-created:
		t.Fatalf("endpoint %s created while a transaction writing the business's events was under way", e.ID)
	case err := <-failed:
		t.Fatal(err)
	case <-time.After(300 * time.Millisecond):
	}
	w.clock.Advance(time.Second)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var e *webhooks.Endpoint
	select {
	case e = <-created:
	case err := <-failed:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the endpoint was not created after the event transaction committed")
	}
	if !e.Created.After(early.Created) {
		t.Fatalf("endpoint created at %s, not after the event it waited for (%s)", e.Created, early.Created)
	}
	late := w.emit(biz, outbox.PaymentCapture, map[string]any{})
	var ids []string
	if err := w.db.Bun.NewRaw("SELECT event_id FROM webhook_event_queue WHERE business_id = ? ORDER BY event_id", biz.ID).Scan(w.ctx, &ids); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != late.ID {
		t.Fatalf("queued %v, want only the event written after the endpoint (%s)", ids, late.ID)
	}
}
