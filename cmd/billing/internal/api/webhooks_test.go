package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// webhookReceiver records what a webhook endpoint is sent.
type webhookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	ids    []string
	tokens []string
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var env struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &env)
		r.mu.Lock()
		r.ids = append(r.ids, env.ID)
		r.tokens = append(r.tokens, req.Header.Get("x-callback-token"))
		r.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) received() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...), append([]string(nil), r.tokens...)
}

// withLocalWebhooks lets the test's sandbox businesses use local receivers
// and returns the service, to do what the jobs do.
func withLocalWebhooks(svc **webhooks.Service) func(*options) {
	return func(o *options) {
		o.configure = func(cfg *api.Config) {
			*svc = webhooks.New(webhooks.Config{DB: cfg.DB.Bun, Clock: cfg.Clock, Timeout: 5 * time.Second,
				Guard: webhooks.Guard{AllowPrivateSandbox: true}})
			cfg.Webhooks = *svc
		}
	}
}

func deliverNow(t *testing.T, svc *webhooks.Service, businessID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RunDue(ctx, businessID); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookEndpointsAPI(t *testing.T) {
	var svc *webhooks.Service
	b := setup(t, withLocalWebhooks(&svc))
	rcv := newWebhookReceiver(t)
	ctx := context.Background()

	r := b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL + "/hooks", "enabled_events": []string{"payment.capture"}, "description": "ERP"})
	if r.status != 200 || !strings.HasPrefix(r.body["secret"].(string), "whsec_") || r.body["status"] != "ENABLED" || r.body["description"] != "ERP" {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	if got := b.call("GET", "/webhook_endpoints/"+id, nil); got.status != 200 || got.body["secret"] != nil {
		t.Fatalf("get shows the secret again: %s", got.raw)
	}
	if got := b.call("GET", "/webhook_endpoints", nil); len(got.body["data"].([]any)) != 1 || strings.Contains(string(got.raw), "whsec_") {
		t.Fatalf("list: %s", got.raw)
	}

	// Validation names each field; nothing is stored.
	b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL, "enabled_events": []string{"*"}, "secret": "mine"}).wantError(t, 400, "API_VALIDATION_ERROR", "secret")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL, "enabled_events": []string{"*", "payment.capture"}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events[0]")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL, "enabled_events": []string{"payment.capture", "customer.created"}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events[1]")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL, "enabled_events": []string{"invoice.paid", "invoice.paid"}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events[1]")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": rcv.srv.URL, "enabled_events": []string{}}).wantError(t, 400, "API_VALIDATION_ERROR", "enabled_events")
	b.call("POST", "/webhook_endpoints", map[string]any{"enabled_events": []string{"*"}}).wantError(t, 400, "API_VALIDATION_ERROR", "url")
	b.call("POST", "/webhook_endpoints", map[string]any{"url": "ftp://example.com", "enabled_events": []string{"*"}, "description": strings.Repeat("d", 501)}).wantError(t, 400, "API_VALIDATION_ERROR", "description")
	b.call("PATCH", "/webhook_endpoints/"+id, map[string]any{"status": "PAUSED"}).wantError(t, 400, "API_VALIDATION_ERROR", "status")
	b.call("PATCH", "/webhook_endpoints/"+id, map[string]any{"url": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "url")
	if n := b.count("webhook_endpoints"); n != 1 {
		t.Fatalf("%d endpoints stored", n)
	}

	// Live mode: https to public addresses only.
	_, liveKey := b.newBusiness(business.ModeLive)
	for _, u := range []string{"http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://[::1]/hook", "https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://[::1]/hook", "http://93.184.215.14/hook"} {
		b.callWithKey(liveKey, "POST", "/webhook_endpoints", map[string]any{"url": u, "enabled_events": []string{"*"}}).wantError(t, 400, "API_VALIDATION_ERROR", "url")
	}
	if r := b.callWithKey(liveKey, "POST", "/webhook_endpoints", map[string]any{"url": "https://93.184.215.14/hook", "enabled_events": []string{"*"}}); r.status != 200 {
		t.Fatalf("live https public: %d %s", r.status, r.raw)
	}

	// Tenancy: another business sees none of it.
	_, otherKey := b.newBusiness(business.ModeSandbox)
	b.callWithKey(otherKey, "GET", "/webhook_endpoints/"+id, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "PATCH", "/webhook_endpoints/"+id, map[string]any{"description": "x"}).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "DELETE", "/webhook_endpoints/"+id, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	if r := b.callWithKey(otherKey, "GET", "/webhook_endpoints", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business lists %s", r.raw)
	}

	// An event reaches the endpoint; the log shows the attempt.
	ev, err := outbox.Emit(ctx, b.db.Bun, b.biz.ID, outbox.PaymentCapture, sandboxStart, map[string]any{"payment_id": "py-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Emit(ctx, b.db.Bun, b.biz.ID, outbox.InvoicePaid, sandboxStart, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	deliverNow(t, svc, b.biz.ID)
	settings := b.call("GET", "/webhook_settings", nil)
	token := settings.body["callback_token"].(string)
	if ids, tokens := rcv.received(); len(ids) != 1 || ids[0] != ev.ID || tokens[0] != token {
		t.Fatalf("received %v with tokens %v; the business's token is %q", ids, tokens, token)
	}
	if r := b.call("GET", "/events?type=payment.capture", nil); len(r.body["data"].([]any)) != 1 || r.body["data"].([]any)[0].(map[string]any)["id"] != ev.ID {
		t.Fatalf("events by type: %s", r.raw)
	}
	if r := b.call("GET", "/events", nil); len(r.body["data"].([]any)) != 2 {
		t.Fatalf("events: %s", r.raw)
	}
	b.call("GET", "/events?type=payment.done", nil).wantError(t, 400, "API_VALIDATION_ERROR", "type")
	d := b.call("GET", "/events/"+ev.ID+"/deliveries", nil)
	first := d.body["data"].([]any)[0].(map[string]any)
	if first["status"] != "SUCCEEDED" || first["webhook_endpoint_id"] != id || len(first["attempts"].([]any)) != 1 {
		t.Fatalf("deliveries: %s", d.raw)
	}
	b.callWithKey(otherKey, "GET", "/events/"+ev.ID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "GET", "/events/"+ev.ID+"/deliveries", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "POST", "/events/"+ev.ID+"/redeliver", nil).wantError(t, 404, "DATA_NOT_FOUND", "")

	// Redelivery sends the same event again, with a rotated token.
	rotated := b.call("POST", "/webhook_settings/rotate_callback_token", map[string]any{})
	if rotated.status != 200 || rotated.body["callback_token"] == token {
		t.Fatalf("rotate: %s", rotated.raw)
	}
	if r := b.call("POST", "/events/"+ev.ID+"/redeliver", nil); r.status != 200 || r.body["data"].([]any)[0].(map[string]any)["redelivery"] != true {
		t.Fatalf("redeliver: %d %s", r.status, r.raw)
	}
	deliverNow(t, svc, b.biz.ID)
	ids, tokens := rcv.received()
	if len(ids) != 2 || ids[1] != ev.ID || tokens[1] != rotated.body["callback_token"] {
		t.Fatalf("after redelivery received %v %v", ids, tokens)
	}

	// Disabled, the endpoint takes no redelivery; deleted, it is gone.
	if r := b.call("PATCH", "/webhook_endpoints/"+id, map[string]any{"status": "DISABLED"}); r.body["status"] != "DISABLED" || r.body["disabled_reason"] != "REQUESTED" {
		t.Fatalf("disable: %s", r.raw)
	}
	b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{"webhook_endpoint_id": id}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	if r := b.call("PATCH", "/webhook_endpoints/"+id, map[string]any{"status": "ENABLED", "enabled_events": []string{"*"}, "description": nil}); r.body["status"] != "ENABLED" || r.body["disabled_reason"] != nil || r.body["description"] != nil {
		t.Fatalf("enable: %s", r.raw)
	}
	if r := b.call("DELETE", "/webhook_endpoints/"+id, nil); r.status != 200 || r.body["deleted"] != true {
		t.Fatalf("delete: %s", r.raw)
	}
	b.call("GET", "/webhook_endpoints/"+id, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("DELETE", "/webhook_endpoints/"+id, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/events/"+ev.ID+"/redeliver", map[string]any{"webhook_endpoint_id": id}).wantError(t, 404, "DATA_NOT_FOUND", "webhook_endpoint_id")
	if r := b.call("GET", "/events/"+ev.ID+"/deliveries", nil); len(r.body["data"].([]any)) != 2 {
		t.Fatalf("the delivery log lost a deleted endpoint's deliveries: %s", r.raw)
	}
}

func TestNotificationsAPI(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	svc := notify.New(notify.Config{DB: b.db.Bun, Clock: b.clock})
	var customers []string
	for _, ref := range []string{"ntf-a", "ntf-b"} {
		r := b.call("POST", "/customers", map[string]any{"reference_id": ref, "individual_detail": map[string]any{"given_names": "Ani"}, "email": ref + "@example.com"})
		customers = append(customers, r.body["id"].(string))
	}
	for i, c := range customers {
		err := b.db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := svc.Queue(ctx, tx, sandboxStart, notify.Message{BusinessID: b.biz.ID, CustomerID: c, Kind: notify.KindServiceSuspended,
				Channels: []notify.Channel{notify.ChannelEmail, notify.ChannelSMS}[:i+1], Locale: "id"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := b.call("GET", "/notifications?customer_id="+customers[1], nil)
	data := r.body["data"].([]any)
	if r.status != 200 || len(data) != 2 {
		t.Fatalf("by customer: %s", r.raw)
	}
	for _, n := range data {
		n := n.(map[string]any)
		if n["customer_id"] != customers[1] || n["status"] != "SKIPPED_NO_CHANNEL" || n["kind"] != "SERVICE_SUSPENDED" || n["locale"] != "id" ||
			!strings.Contains(n["body"].(string), "Layanan Anda dihentikan sementara") || n["sent_at"] != nil {
			t.Fatalf("notification %v", n)
		}
	}
	if r := b.call("GET", "/notifications", nil); len(r.body["data"].([]any)) != 3 {
		t.Fatalf("all: %s", r.raw)
	}
	if r := b.call("GET", "/notifications?status=SENT", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("sent: %s", r.raw)
	}
	b.call("GET", "/notifications?status=DONE", nil).wantError(t, 400, "API_VALIDATION_ERROR", "status")
	_, otherKey := b.newBusiness(business.ModeSandbox)
	if r := b.callWithKey(otherKey, "GET", "/notifications?customer_id="+customers[0], nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business sees %s", r.raw)
	}
}

// newTestGateway is a WhatsApp/SMS gateway that accepts every message.
func newTestGateway(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func ptrTo[T any](v T) *T { return &v }

func idrAmount(n int64) *billing.Money {
	return &billing.Money{Amount: decimal.NewFromInt(n), Currency: "IDR"}
}
