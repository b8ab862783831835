package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// publicHook is an endpoint URL that passes the live rules without a DNS
// lookup. Nothing is ever sent to it: the scenario runs no worker, and
// sends only to a local receiver through its own service.
const publicHook = "https://93.184.215.14/hooks"

func init() {
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "webhooks and notifications",
		run:  runWebhooksScenario,
		calls: [][3]string{
			{"POST", "/webhook_endpoints", `{"url":"https://93.184.215.14/","enabled_events":["*"]}`},
			{"GET", "/webhook_endpoints", ""},
			{"GET", "/webhook_endpoints/whe-00000000-0000-7000-8000-000000000000", ""},
			{"PATCH", "/webhook_endpoints/whe-00000000-0000-7000-8000-000000000000", `{"description":"x"}`},
			{"DELETE", "/webhook_endpoints/whe-00000000-0000-7000-8000-000000000000", ""},
			{"GET", "/webhook_settings", ""},
			{"POST", "/webhook_settings/rotate_callback_token", `{}`},
			{"GET", "/events", ""},
			{"GET", "/events/evt-00000000-0000-7000-8000-000000000000", ""},
			{"GET", "/events/evt-00000000-0000-7000-8000-000000000000/deliveries", ""},
			{"POST", "/events/evt-00000000-0000-7000-8000-000000000000/redeliver", `{}`},
			{"GET", "/notifications", ""},
		},
	})
}

func runWebhooksScenario(t *testing.T, e *openAPIEnv) {
	b := e.b
	ctx := context.Background()
	missingEndpoint := "/webhook_endpoints/whe-00000000-0000-7000-8000-000000000000"

	// POST /webhook_endpoints.
	created := e.ok(t, b.call("POST", "/webhook_endpoints", map[string]any{"url": publicHook, "enabled_events": []string{"invoice.voided"}, "description": "ERP"},
		"idempotency-key", "oa-whe"), "create endpoint")
	endpointID := created.body["id"].(string)
	if r := e.ok(t, b.call("POST", "/webhook_endpoints", map[string]any{"url": publicHook, "enabled_events": []string{"invoice.voided"}, "description": "ERP"},
		"idempotency-key", "oa-whe"), "replay"); r.header.Get("idempotent-replayed") != "true" || r.body["secret"] != created.body["secret"] {
		t.Fatalf("replay: %s", r.raw)
	}
	e.ok(t, b.call("POST", "/webhook_endpoints", map[string]any{"url": publicHook + "/2", "enabled_events": []string{"*"}}), "create * endpoint")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:8000/", "enabled_events": []string{"nope"}, "extra": 1}).wantError(t, 400, "API_VALIDATION_ERROR", "extra")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": "http://10.0.0.1/", "enabled_events": []string{"nope"}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events[0]")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": publicHook}, "idempotency-key", "oa-whe").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/webhook_endpoints", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/webhook_endpoints", `{"url":"x"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/webhook_endpoints", nil).wantError(t, 401, "INVALID_API_KEY", "")
	_, crowdedKey := b.newBusiness(business.ModeSandbox)
	for i := range webhooks.MaxEndpoints {
		e.ok(t, b.callWithKey(crowdedKey, "POST", "/webhook_endpoints", map[string]any{"url": fmt.Sprintf("%s/%d", publicHook, i), "enabled_events": []string{"invoice.voided"}}), "fill")
	}
	b.callWithKey(crowdedKey, "POST", "/webhook_endpoints", map[string]any{"url": publicHook, "enabled_events": []string{"*"}}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")

	// GET /webhook_endpoints and /webhook_endpoints/{id}.
	e.ok(t, b.call("GET", "/webhook_endpoints", nil), "list endpoints")
	e.ok(t, b.call("GET", "/webhook_endpoints?limit=1&after_id="+endpointID, nil), "list endpoints after")
	b.call("GET", "/webhook_endpoints?limit=0", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
	b.callWithKey("", "GET", "/webhook_endpoints", nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("GET", "/webhook_endpoints/"+endpointID, nil), "get endpoint")
	b.call("GET", missingEndpoint, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(e.otherKey, "GET", "/webhook_endpoints/"+endpointID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/webhook_endpoints/"+endpointID, nil).wantError(t, 401, "INVALID_API_KEY", "")

	// PATCH /webhook_endpoints/{id}.
	e.ok(t, b.call("PATCH", "/webhook_endpoints/"+endpointID, map[string]any{"status": "DISABLED", "description": nil}, "idempotency-key", "oa-whe-patch"), "disable")
	e.ok(t, b.call("PATCH", "/webhook_endpoints/"+endpointID, map[string]any{"status": "DISABLED", "description": nil}, "idempotency-key", "oa-whe-patch"), "disable replay")
	b.call("PATCH", "/webhook_endpoints/"+endpointID, map[string]any{"enabled_events": []string{}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events")
	b.call("PATCH", missingEndpoint, map[string]any{"description": "x"}).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("PATCH", "/webhook_endpoints/"+endpointID, map[string]any{"status": "ENABLED"}, "idempotency-key", "oa-whe-patch").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("PATCH", "/webhook_endpoints/"+endpointID, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("PATCH", "/webhook_endpoints/"+endpointID, `{"status":"ENABLED"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "PATCH", "/webhook_endpoints/"+endpointID, map[string]any{"status": "ENABLED"}).wantError(t, 401, "INVALID_API_KEY", "")

	// GET and POST /webhook_settings….
	e.ok(t, b.call("GET", "/webhook_settings", nil), "settings")
	b.callWithKey("", "GET", "/webhook_settings", nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("POST", "/webhook_settings/rotate_callback_token", nil, "idempotency-key", "oa-rotate"), "rotate")
	if r := e.ok(t, b.call("POST", "/webhook_settings/rotate_callback_token", nil, "idempotency-key", "oa-rotate"), "rotate replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("rotate replay not marked")
	}
	b.call("POST", "/webhook_settings/rotate_callback_token", map[string]any{"callback_token": "mine"}).wantError(t, 400, "API_VALIDATION_ERROR", "callback_token")
	b.call("POST", "/webhook_settings/rotate_callback_token", map[string]any{}, "idempotency-key", "oa-rotate").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/webhook_settings/rotate_callback_token", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/webhook_settings/rotate_callback_token", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/webhook_settings/rotate_callback_token", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Events, delivered to a local receiver by a service of the scenario's
	// own (the server's refuses local addresses).
	rcv := newWebhookReceiver(t)
	local := e.ok(t, b.call("POST", "/webhook_endpoints", map[string]any{"url": publicHook + "/local", "enabled_events": []string{"payment.capture"}}), "local endpoint")
	localID := local.body["id"].(string)
	if _, err := b.db.Bun.NewRaw("UPDATE webhook_endpoints SET url = ? WHERE id = ?", rcv.srv.URL, localID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	svc := webhooks.New(webhooks.Config{DB: b.db.Bun, Clock: b.clock, Timeout: 5 * time.Second, Guard: webhooks.Guard{AllowPrivateSandbox: true}})
	biz, err := business.Get(ctx, b.db.Bun, b.biz.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := biz.Clock().Now()
	ev, err := outbox.Emit(ctx, b.db.Bun, b.biz.ID, outbox.PaymentCapture, now, map[string]any{"payment_id": "py-oa"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.RunEndpoint(ctx, localID); err != nil {
		t.Fatal(err)
	}
	e.ok(t, b.call("GET", "/events", nil), "events")
	e.ok(t, b.call("GET", "/events?type=payment.capture&limit=5", nil), "events by type")
	b.call("GET", "/events?type=payment.captured", nil).wantError(t, 400, "API_VALIDATION_ERROR", "type")
	b.callWithKey("", "GET", "/events", nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("GET", "/events/"+ev.ID, nil), "event")
	b.call("GET", "/events/evt-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/events/"+ev.ID, nil).wantError(t, 401, "INVALID_API_KEY", "")
	if r := e.ok(t, b.call("GET", "/events/"+ev.ID+"/deliveries", nil), "deliveries"); len(r.body["data"].([]any)) != 2 {
		t.Fatalf("deliveries: %s", r.raw)
	}
	b.call("GET", "/events/"+ev.ID+"/deliveries?limit=101", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
	b.callWithKey(e.otherKey, "GET", "/events/"+ev.ID+"/deliveries", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/events/"+ev.ID+"/deliveries", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// POST /events/{id}/redeliver.
	e.ok(t, b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{"webhook_endpoint_id": localID}, "idempotency-key", "oa-redeliver"), "redeliver")
	e.ok(t, b.call("POST", "/events/"+ev.ID+"/redeliver", nil), "redeliver to every subscriber")
	b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{"webhook_endpoint_id": endpointID}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{"endpoint": localID}).wantError(t, 400, "API_VALIDATION_ERROR", "endpoint")
	b.call("POST", "/events/evt-00000000-0000-7000-8000-000000000000/redeliver", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{}, "idempotency-key", "oa-redeliver").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/events/"+ev.ID+"/redeliver", nil).wantError(t, 401, "INVALID_API_KEY", "")
	if _, _, err := svc.RunEndpoint(ctx, localID); err != nil {
		t.Fatal(err)
	}
	e.ok(t, b.call("GET", "/events/"+ev.ID+"/deliveries?limit=2", nil), "deliveries after redelivery")

	// DELETE /webhook_endpoints/{id}.
	e.ok(t, b.call("DELETE", "/webhook_endpoints/"+endpointID, nil), "delete")
	b.call("DELETE", "/webhook_endpoints/"+endpointID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "DELETE", "/webhook_endpoints/"+localID, nil).wantError(t, 401, "INVALID_API_KEY", "")

	// GET /notifications, with one of each status.
	cust := e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-ntf", "individual_detail": map[string]any{"given_names": "Dewi"}, "mobile_number": "+6281100000000"}), "customer")
	custID := cust.body["id"].(string)
	gw := newTestGateway(t)
	nsvc := notify.New(notify.Config{DB: b.db.Bun, Clock: b.clock, SMSGatewayURL: gw.URL})
	date := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	err = b.db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := nsvc.Queue(ctx, tx, now, notify.Message{BusinessID: b.biz.ID, CustomerID: custID, PlanID: ptrTo("repl-1"), CycleID: ptrTo("recy-1"),
			Kind: notify.KindAttemptFailed, AttemptNumber: ptrTo(1), Amount: idrAmount(150000), Date: &date, PaymentLink: ptrTo("https://pay.example/1"),
			Channels: []notify.Channel{notify.ChannelSMS, notify.ChannelEmail}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nsvc.SendDue(ctx, b.biz.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.ok(t, b.call("GET", "/notifications?customer_id="+custID, nil), "notifications"); len(r.body["data"].([]any)) != 2 {
		t.Fatalf("notifications: %s", r.raw)
	}
	e.ok(t, b.call("GET", "/notifications?cycle_id=recy-1&status=SENT&limit=1", nil), "notifications by cycle and status")
	b.call("GET", "/notifications?status=LOST", nil).wantError(t, 400, "API_VALIDATION_ERROR", "status")
	b.callWithKey("", "GET", "/notifications", nil).wantError(t, 401, "INVALID_API_KEY", "")
}
