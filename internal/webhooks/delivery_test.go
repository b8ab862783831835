package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// TestSignedDelivery checks what a receiver gets: the event's envelope,
// the business's callback token, and a signature that an independent
// implementation of the documented rule verifies with the endpoint's
// secret (and that fails with another secret or another body).
func TestSignedDelivery(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	rcv := newReceiver(t)
	ep := w.endpoint(biz, rcv.srv.URL+"/hooks")
	ev := w.emit(biz, outbox.PaymentCapture, map[string]any{"payment_id": "py-1", "request_amount": 150000})
	w.dispatchAndRun(biz)

	got := rcv.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	r := got[0]
	settings, err := webhooks.GetSettings(w.ctx, w.db.Bun, biz.ID, w.now(biz))
	if err != nil {
		t.Fatal(err)
	}
	if tok := r.header.Get("x-callback-token"); tok == "" || tok != settings.CallbackToken {
		t.Fatalf("x-callback-token %q, want the business's %q", tok, settings.CallbackToken)
	}
	if r.header.Get("Content-Type") != "application/json" || r.header.Get("webhook-delivery-id") == "" {
		t.Fatalf("headers %v", r.header)
	}
	if !verify(r.header, r.body, ep.Secret, w.clock.Now()) {
		t.Fatalf("signature %q does not verify", r.header.Get("webhook-signature"))
	}
	if verify(r.header, r.body, ep.Secret+"x", w.clock.Now()) || verify(r.header, append(bytes.Clone(r.body), ' '), ep.Secret, w.clock.Now()) {
		t.Fatal("the signature verifies with another secret or body")
	}
	if verify(r.header, r.body, ep.Secret, w.clock.Now().Add(time.Hour)) {
		t.Fatal("an hour-old signature verifies")
	}
	want, _ := ev.Envelope()
	if !bytes.Equal(r.body, want) {
		t.Fatalf("body %s, want the envelope %s", r.body, want)
	}
	var env map[string]any
	if err := json.Unmarshal(r.body, &env); err != nil || env["id"] != ev.ID || env["event"] != "payment.capture" ||
		env["business_id"] != biz.ID || env["api_version"] != outbox.APIVersion || env["data"].(map[string]any)["payment_id"] != "py-1" {
		t.Fatalf("envelope %s", r.body)
	}
	ds := w.deliveries(ev.ID)
	if len(ds) != 1 || ds[0].Status != webhooks.DeliverySucceeded || ds[0].AttemptCount != 1 || ds[0].NextAttemptAt != nil {
		t.Fatalf("deliveries %+v", ds)
	}
	a := ds[0].Attempts[0]
	if *a.StatusCode != 200 || !a.Succeeded || a.ResponseExcerpt != `{"received":200}` || a.Error != nil || a.URL != rcv.srv.URL+"/hooks" {
		t.Fatalf("attempt %+v", a)
	}
}

// TestReceiverDownThenUp: a receiver that answers 503 for a while gets
// every event once it is back, on the retry schedule of the business's
// clock, each signed, and each event's attempts are logged.
func TestReceiverDownThenUp(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	rcv := newReceiver(t)
	ep := w.endpoint(biz, rcv.srv.URL)
	rcv.status.Store(503)
	start := w.now(biz)
	var events []*outbox.Event
	for i := range 5 {
		events = append(events, w.emit(biz, outbox.InvoiceFinalized, map[string]any{"n": i}))
	}
	if n := w.dispatchAndRun(biz); n != 5 {
		t.Fatalf("%d attempts while down, want 5", n)
	}
	for _, ev := range events {
		ds := w.deliveries(ev.ID)
		if len(ds) != 1 || ds[0].Status != webhooks.DeliveryPending || ds[0].AttemptCount != 1 ||
			*ds[0].NextAttemptAt != billing.FormatTime(start.Add(time.Minute)) {
			t.Fatalf("after a 503: %+v", ds)
		}
		if a := ds[0].Attempts[0]; *a.StatusCode != 503 || a.Succeeded || a.Error == nil {
			t.Fatalf("attempt %+v", a)
		}
	}
	// Nothing is due before the minute is over.
	if n := w.dispatchAndRun(biz); n != 0 {
		t.Fatalf("%d attempts before the retry was due", n)
	}
	w.advance(biz, start.Add(time.Minute))
	rcv.status.Store(204)
	if n := w.dispatchAndRun(biz); n != 5 {
		t.Fatalf("%d attempts once up, want 5", n)
	}
	ids := rcv.ids()
	for _, ev := range events {
		if ids[ev.ID] != 2 {
			t.Fatalf("event %s received %d times, want 2 (one refused, one acknowledged)", ev.ID, ids[ev.ID])
		}
		ds := w.deliveries(ev.ID)
		if ds[0].Status != webhooks.DeliverySucceeded || len(ds[0].Attempts) != 2 || *ds[0].Attempts[1].StatusCode != 204 {
			t.Fatalf("after coming back: %+v", ds)
		}
	}
	for _, r := range rcv.requests() {
		if !verify(r.header, r.body, ep.Secret, w.clock.Now()) {
			t.Fatalf("unsigned delivery of %s", r.id)
		}
	}
	if n := w.dispatchAndRun(biz); n != 0 {
		t.Fatalf("%d attempts after every event was acknowledged", n)
	}
}

// TestUnreachableEndpoint logs an attempt with no status when nothing
// listens.
func TestUnreachableEndpoint(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	rcv := newReceiver(t)
	url := rcv.srv.URL
	rcv.srv.Close()
	w.endpoint(biz, url)
	ev := w.emit(biz, outbox.InvoicePaid, map[string]any{})
	w.dispatchAndRun(biz)
	ds := w.deliveries(ev.ID)
	if len(ds) != 1 || ds[0].Status != webhooks.DeliveryPending || len(ds[0].Attempts) != 1 {
		t.Fatalf("%+v", ds)
	}
	if a := ds[0].Attempts[0]; a.StatusCode != nil || a.Error == nil || a.Succeeded {
		t.Fatalf("attempt %+v", a)
	}
}

// TestRedeliverySendsTheSameEvent: a redelivery of an acknowledged event
// sends the same id and body again, as a new delivery.
func TestRedeliverySendsTheSameEvent(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	rcv := newReceiver(t)
	ep := w.endpoint(biz, rcv.srv.URL)
	ev := w.emit(biz, outbox.CustomerServiceSuspended, map[string]any{"customer_id": "cust-1"})
	w.dispatchAndRun(biz)
	var views []webhooks.DeliveryView
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		views, err = webhooks.Redeliver(ctx, tx, biz.ID, ev.ID, w.now(biz), webhooks.RedeliverParams{WebhookEndpointID: &ep.ID})
		return err
	})
	if err != nil || len(views) != 1 || !views[0].Redelivery || views[0].Status != webhooks.DeliveryPending {
		t.Fatalf("redeliver: %+v, %v", views, err)
	}
	w.dispatchAndRun(biz)
	got := rcv.requests()
	if len(got) != 2 || got[0].id != ev.ID || got[1].id != ev.ID || !bytes.Equal(got[0].body, got[1].body) {
		t.Fatalf("received %d requests: %+v", len(got), got)
	}
	if ds := w.deliveries(ev.ID); len(ds) != 2 || ds[0].Status != webhooks.DeliverySucceeded || ds[1].Status != webhooks.DeliverySucceeded {
		t.Fatalf("deliveries %+v", ds)
	}
}

// TestSubscriptions: an endpoint gets only the types it subscribes to, and
// only events made since it was created (by the business's clock);
// disabled and deleted endpoints get nothing.
func TestSubscriptions(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	early := w.emit(biz, outbox.PaymentCapture, map[string]any{})
	w.advance(biz, w.now(biz).Add(time.Second))
	all, captures, disabled, deleted := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	w.endpoint(biz, all.srv.URL)
	w.endpoint(biz, captures.srv.URL, outbox.PaymentCapture, outbox.PaymentFailure)
	off := w.endpoint(biz, disabled.srv.URL)
	gone := w.endpoint(biz, deleted.srv.URL)
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var p webhooks.PatchParams
		p.Status.Set, p.Status.Value = true, webhooks.StatusDisabled
		_, err := w.svc.UpdateEndpoint(ctx, tx, biz, off.ID, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webhooks.DeleteEndpoint(w.ctx, w.db.Bun, biz.ID, gone.ID, w.now(biz)); err != nil {
		t.Fatal(err)
	}
	capture := w.emit(biz, outbox.PaymentCapture, map[string]any{})
	invoice := w.emit(biz, outbox.InvoicePaid, map[string]any{})
	w.dispatchAndRun(biz)
	if got := all.ids(); len(got) != 2 || got[capture.ID] != 1 || got[invoice.ID] != 1 || got[early.ID] != 0 {
		t.Fatalf("the * endpoint got %v", got)
	}
	if got := captures.ids(); len(got) != 1 || got[capture.ID] != 1 {
		t.Fatalf("the payment endpoint got %v", got)
	}
	if len(disabled.requests())+len(deleted.requests()) != 0 {
		t.Fatal("a disabled or deleted endpoint received events")
	}
}

// TestConcurrentDispatchAndDelivery runs dispatchers and senders in
// parallel, as several engine processes do: every event reaches every
// endpoint exactly once.
func TestConcurrentDispatchAndDelivery(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	a, b := newReceiver(t), newReceiver(t)
	epA := w.endpoint(biz, a.srv.URL)
	epB := w.endpoint(biz, b.srv.URL)
	const n = 120
	var events []string
	for i := range n {
		events = append(events, w.emit(biz, outbox.InvoiceFinalized, map[string]any{"n": i}).ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.svc.Dispatch(w.ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	for range 4 {
		for _, id := range []string{epA.ID, epB.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, more, err := w.svc.RunEndpoint(w.ctx, id)
					if err != nil {
						errs <- err
					}
					if !more || err != nil {
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Whatever a sender left to another that had the lease is due still.
	w.dispatchAndRun(biz)
	for name, r := range map[string]*receiver{"A": a, "B": b} {
		got := r.ids()
		if len(got) != n {
			t.Fatalf("endpoint %s got %d events, want %d", name, len(got), n)
		}
		for _, id := range events {
			if got[id] != 1 {
				t.Fatalf("endpoint %s got %s %d times", name, id, got[id])
			}
		}
	}
	if c := w.count("SELECT count(*) FROM webhook_deliveries WHERE business_id = ?", biz.ID); c != 2*n {
		t.Fatalf("%d deliveries, want %d", c, 2*n)
	}
	if c := w.count("SELECT count(*) FROM webhook_event_queue WHERE business_id = ?", biz.ID); c != 0 {
		t.Fatalf("%d events left in the queue", c)
	}
}

// TestNextAttempt pins the retry schedule: 1 minute doubling, capped at 12
// hours, the last attempt exactly 3 days after the delivery was made.
func TestNextAttempt(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	deadline := created.Add(72 * time.Hour)
	for _, tc := range []struct {
		attempt  int
		failedAt time.Time
		want     time.Time
		ok       bool
	}{
		{1, created, created.Add(time.Minute), true},
		{2, created.Add(time.Minute), created.Add(3 * time.Minute), true},
		{3, created.Add(3 * time.Minute), created.Add(7 * time.Minute), true},
		{10, created, created.Add(512 * time.Minute), true},
		{11, created, created.Add(12 * time.Hour), true},
		{40, created, created.Add(12 * time.Hour), true},
		{14, deadline.Add(-time.Hour), deadline, true},
		{14, deadline.Add(-time.Microsecond), deadline, true},
		{15, deadline, time.Time{}, false},
		{15, deadline.Add(time.Hour), time.Time{}, false},
	} {
		got, ok := webhooks.NextAttempt(created, tc.attempt, tc.failedAt)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("NextAttempt(attempt %d, at +%s) = %s %v, want %s %v", tc.attempt, tc.failedAt.Sub(created), got, ok, tc.want, tc.ok)
		}
	}
}

// TestEndpointDisabledAfterThreeDays follows an endpoint that always
// answers 500 through the schedule on a sandbox clock: attempts at the
// scheduled times, the delivery failed after the attempt at 3 days, the
// endpoint disabled with webhook_endpoint.disabled sent to the business's
// other endpoint, and its other pending delivery cancelled.
func TestEndpointDisabledAfterThreeDays(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	bad, watcher := newReceiver(t), newReceiver(t)
	bad.status.Store(500)
	ep := w.endpoint(biz, bad.srv.URL, outbox.InvoicePaid)
	w.endpoint(biz, watcher.srv.URL, outbox.WebhookEndpointDisabled)
	start := w.now(biz)
	first := w.emit(biz, outbox.InvoicePaid, map[string]any{})
	w.dispatchAndRun(biz)
	var second *outbox.Event
	var times []time.Duration
	for step := 0; step < 40; step++ {
		at, ok, err := w.svc.NextDue(w.ctx, biz.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if second == nil && at.Sub(start) > 48*time.Hour {
			w.advance(biz, start.Add(48*time.Hour))
			second = w.emit(biz, outbox.InvoicePaid, map[string]any{})
			w.dispatchAndRun(biz)
			continue
		}
		w.advance(biz, at)
		w.dispatchAndRun(biz)
	}
	// The disabling emitted an event, still to be dispatched.
	w.dispatchAndRun(biz)
	ds := w.deliveries(first.ID)
	for _, a := range ds[0].Attempts {
		at, _ := time.Parse(time.RFC3339, a.AttemptedAt)
		times = append(times, at.Sub(start))
	}
	want := []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute}
	for i, d := range want {
		if times[i] != d {
			t.Fatalf("attempt %d at +%s, want +%s (all: %v)", i+1, times[i], d, times)
		}
	}
	if last := times[len(times)-1]; last != 72*time.Hour {
		t.Fatalf("last attempt at +%s, want +72h (all: %v)", last, times)
	}
	if ds[0].Status != webhooks.DeliveryFailed || ds[0].NextAttemptAt != nil {
		t.Fatalf("first delivery %+v", ds[0])
	}
	if ds := w.deliveries(second.ID); ds[0].Status != webhooks.DeliveryCancelled {
		t.Fatalf("second delivery %+v", ds[0])
	}
	got, err := webhooks.GetEndpoint(w.ctx, w.db.Bun, biz.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != webhooks.StatusDisabled || *got.DisabledReason != webhooks.DisabledFailing || !got.DisabledAt.Equal(start.Add(72*time.Hour)) {
		t.Fatalf("endpoint %+v", got)
	}
	notices := watcher.requests()
	if len(notices) != 1 || notices[0].event != outbox.WebhookEndpointDisabled || !bytes.Contains(notices[0].body, []byte(ep.ID)) ||
		bytes.Contains(notices[0].body, []byte(ep.Secret)) {
		t.Fatalf("the other endpoint got %d notices: %v", len(notices), notices)
	}
	logged := len(times) + len(w.deliveries(second.ID)[0].Attempts)
	if n := len(bad.requests()); n != logged {
		t.Fatalf("the failing endpoint got %d requests for %d logged attempts", n, logged)
	}
}

// TestSuccessResetsFailing: an endpoint that fails for two days and then
// answers is not disabled by a failure on the third.
func TestSuccessResetsFailing(t *testing.T) {
	w := newWorld(t)
	biz := w.business(business.ModeSandbox)
	rcv := newReceiver(t)
	ep := w.endpoint(biz, rcv.srv.URL)
	start := w.now(biz)
	rcv.status.Store(500)
	w.emit(biz, outbox.InvoicePaid, map[string]any{})
	w.dispatchAndRun(biz)
	w.advance(biz, start.Add(47*time.Hour))
	rcv.status.Store(200)
	w.dispatchAndRun(biz)
	rcv.status.Store(500)
	w.emit(biz, outbox.InvoicePaid, map[string]any{})
	w.dispatchAndRun(biz)
	w.advance(biz, start.Add(73*time.Hour))
	w.dispatchAndRun(biz)
	got, err := webhooks.GetEndpoint(w.ctx, w.db.Bun, biz.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != webhooks.StatusEnabled || got.FailingSince == nil || !got.FailingSince.Equal(start.Add(47*time.Hour)) {
		t.Fatalf("endpoint %+v (failing since %v)", got, got.FailingSince)
	}
}
