package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/providers/wooshpay"
)

const unknownPR = "pr-00000000-0000-7000-8000-000000000000"
const unknownPT = "pt-00000000-0000-7000-8000-000000000000"

func init() {
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "payments",
		run:  openAPIPayments,
		calls: [][3]string{
			{"POST", "/payment_requests", `{"reference_id":"x"}`},
			{"POST", "/v3/payment_requests", `{"reference_id":"x"}`},
			{"GET", "/payment_requests/" + unknownPR, ""},
			{"POST", "/payment_requests/" + unknownPR + "/cancel", `{}`},
			{"POST", "/payment_requests/" + unknownPR + "/simulate", `{}`},
			{"GET", "/payment_tokens/" + unknownPT, ""},
			{"POST", "/payment_tokens/" + unknownPT + "/cancel", `{}`},
			{"GET", "/provider_settings", ""},
			{"POST", "/provider_settings", `{"provider":"sandbox"}`},
		},
		unlimited: [][]string{
			{"POST", "/callbacks/xendit", `{"event":"payment.capture"}`, "x-callback-token", "any-token"},
			{"POST", "/callbacks/wooshpay?business_id=biz-00000000-0000-7000-8000-000000000000", `{"id":"evt_1","type":"x"}`, wooshpay.SignatureHeader, "t=1,v1=00"},
		},
	})
}

func openAPIPayments(t *testing.T, e *openAPIEnv) {
	b := e.b
	created := func(r response, what string) response {
		t.Helper()
		if r.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", what, r.status, r.raw)
		}
		return r
	}
	cust := e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-pay-1", "individual_detail": map[string]any{"given_names": "Siti"}}), "customer")
	custID := cust.body["id"].(string)
	save := func(changes ...any) map[string]any {
		m := map[string]any{"reference_id": "oa-link", "type": "PAY_AND_SAVE", "customer_id": custID, "country": "ID", "currency": "IDR",
			"request_amount": 150000, "channel_code": "DANA",
			"channel_properties": map[string]any{"success_return_url": "https://utility.example/ok", "failure_return_url": "https://utility.example/fail"}}
		for i := 0; i+1 < len(changes); i += 2 {
			m[changes[i].(string)] = changes[i+1]
		}
		return m
	}
	deliver := func() {
		t.Helper()
		if _, err := b.api.PaymentsForTest().DeliverDueSandboxCallbacks(context.Background(), b.biz.ID); err != nil {
			t.Fatal(err)
		}
	}

	// POST /payment_requests and /v3/payment_requests.
	link := created(b.call("POST", "/payment_requests", save(), "idempotency-key", "oa-pr-link"), "pay and save")
	linkID := link.body["payment_request_id"].(string)
	if r := created(b.call("POST", "/payment_requests", save(), "idempotency-key", "oa-pr-link"), "replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("replay not marked")
	}
	inline := save("customer_id", nil, "customer", map[string]any{"reference_id": "oa-pay-2", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Budi"}},
		"request_amount", "150000", "sdk_field", true)
	delete(inline, "customer_id")
	created(b.call("POST", "/v3/payment_requests", inline), "v3 with an inline customer")
	e.ok(t, b.call("GET", "/payment_requests/"+linkID, nil), "get")

	// Simulate, then the callbacks save the token.
	if r := e.ok(t, b.call("POST", "/payment_requests/"+linkID+"/simulate", map[string]any{}), "simulate"); r.body["status"] != "PENDING" {
		t.Fatalf("simulate: %s", r.raw)
	}
	deliver()
	done := e.ok(t, b.call("GET", "/payment_requests/"+linkID, nil), "after simulate")
	tokenID, _ := done.body["payment_token_id"].(string)
	if done.body["status"] != "SUCCEEDED" || tokenID == "" {
		t.Fatalf("after simulate: %s", done.raw)
	}
	e.ok(t, b.call("GET", "/payment_tokens/"+tokenID, nil), "token")
	pay := map[string]any{"reference_id": "oa-charge", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 175000}
	created(b.call("POST", "/payment_requests", pay), "charge")
	pay["request_amount"] = 21110
	if r := created(b.call("POST", "/v3/payment_requests", pay), "failing charge"); r.body["status"] != "FAILED" || r.body["failure_code"] != "INSUFFICIENT_BALANCE" {
		t.Fatalf("failing charge: %s", r.raw)
	}

	// Errors of creation, on both paths.
	wooshBiz, wooshKey := b.newBusiness(business.ModeSandbox)
	e.ok(t, b.callWithKey(wooshKey, "POST", "/provider_settings", map[string]any{"provider": "wooshpay", "wooshpay": map[string]any{"secret_key": "sk_test_oa", "webhook_secret": "whsec_oa"}}), "wooshpay settings")
	wooshCust := e.ok(t, b.callWithKey(wooshKey, "POST", "/customers", map[string]any{"reference_id": "w-1", "individual_detail": map[string]any{"given_names": "W"}}), "customer")
	for _, path := range []string{"/payment_requests", "/v3/payment_requests"} {
		b.call("POST", path, save("channel_code", "BITCOIN")).wantError(t, 400, "API_VALIDATION_ERROR", "channel_code")
		b.callWithKey(wooshKey, "POST", path, save("customer_id", wooshCust.body["id"])).wantError(t, 400, "INVALID_VALUE_ERROR", "")
		b.callWithKey(e.liveKey, "POST", path, save()).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
		b.call("POST", path, save("customer_id", "cust-00000000-0000-7000-8000-000000000000")).wantError(t, 404, "DATA_NOT_FOUND", "")
		b.call("POST", path, save("request_amount", 1), "idempotency-key", "oa-pr-link").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
		b.call("POST", path, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
		b.call("POST", path, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
		b.callWithKey("", "POST", path, save()).wantError(t, 401, "INVALID_API_KEY", "")
	}
	b.call("GET", "/payment_requests/"+unknownPR, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(e.otherKey, "GET", "/payment_requests/"+linkID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/payment_requests/"+linkID, nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Cancel.
	waiting := created(b.call("POST", "/payment_requests", save("reference_id", "oa-cancel")), "to cancel").body["payment_request_id"].(string)
	if r := e.ok(t, b.call("POST", "/payment_requests/"+waiting+"/cancel", nil, "idempotency-key", "oa-cancel"), "cancel"); r.body["status"] != "CANCELED" {
		t.Fatalf("cancel: %s", r.raw)
	}
	b.call("POST", "/payment_requests/"+waiting+"/cancel", map[string]any{}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/payment_requests/"+unknownPR+"/cancel", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/payment_requests/"+waiting+"/cancel", `[]`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/payment_requests/"+linkID+"/cancel", nil, "idempotency-key", "oa-cancel").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/payment_requests/"+waiting+"/cancel", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/payment_requests/"+waiting+"/cancel", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/payment_requests/"+waiting+"/cancel", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Simulate.
	b.call("POST", "/payment_requests/"+waiting+"/simulate", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.callWithKey(e.liveKey, "POST", "/payment_requests/"+linkID+"/simulate", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/payment_requests/"+unknownPR+"/simulate", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/payment_requests/"+linkID+"/simulate", map[string]any{"amount": 0}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", "/payment_requests/"+linkID+"/simulate", nil, "idempotency-key", "oa-cancel").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/payment_requests/"+linkID+"/simulate", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/payment_requests/"+linkID+"/simulate", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/payment_requests/"+linkID+"/simulate", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Tokens.
	b.call("GET", "/payment_tokens/"+unknownPT, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(e.otherKey, "GET", "/payment_tokens/"+tokenID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/payment_tokens/"+tokenID, nil).wantError(t, 401, "INVALID_API_KEY", "")
	if r := e.ok(t, b.call("POST", "/payment_tokens/"+tokenID+"/cancel", nil, "idempotency-key", "oa-token-cancel"), "cancel token"); r.body["status"] != "CANCELED" {
		t.Fatalf("cancel token: %s", r.raw)
	}
	e.ok(t, b.call("POST", "/payment_tokens/"+tokenID+"/cancel", map[string]any{}), "cancel a cancelled token")
	second := created(b.call("POST", "/payment_requests", save("reference_id", "oa-link-2")), "second link").body["payment_request_id"].(string)
	e.ok(t, b.call("POST", "/payment_requests/"+second+"/simulate", nil), "simulate second")
	deliver()
	expired := e.ok(t, b.call("GET", "/payment_requests/"+second, nil), "second").body["payment_token_id"].(string)
	if _, err := b.db.Bun.NewRaw("UPDATE payment_tokens SET status = 'EXPIRED' WHERE id = ?", expired).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.call("POST", "/payment_tokens/"+expired+"/cancel", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/payment_tokens/"+unknownPT+"/cancel", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/payment_tokens/"+tokenID+"/cancel", `"x"`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/payment_tokens/"+expired+"/cancel", nil, "idempotency-key", "oa-token-cancel").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/payment_tokens/"+tokenID+"/cancel", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/payment_tokens/"+tokenID+"/cancel", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/payment_tokens/"+tokenID+"/cancel", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Provider settings.
	if r := e.ok(t, b.call("GET", "/provider_settings", nil), "settings"); r.body["provider"] != "sandbox" {
		t.Fatalf("settings: %s", r.raw)
	}
	if r := e.ok(t, b.callWithKey(e.liveKey, "GET", "/provider_settings", nil), "live settings"); r.body["provider"] != nil {
		t.Fatalf("live settings: %s", r.raw)
	}
	b.callWithKey("", "GET", "/provider_settings", nil).wantError(t, 401, "INVALID_API_KEY", "")
	xenditSettings := map[string]any{"provider": "xendit", "xendit": map[string]any{"secret_key": "xnd_development_oa", "callback_token": "oa-callback-token"}}
	xBiz, xKey := b.newBusiness(business.ModeSandbox)
	if r := e.ok(t, b.callWithKey(xKey, "POST", "/provider_settings", xenditSettings, "idempotency-key", "oa-settings"), "xendit settings"); strings.Contains(string(r.raw), "xnd_development_oa") {
		t.Fatalf("a secret came back: %s", r.raw)
	}
	b.callWithKey(e.liveKey, "POST", "/provider_settings", map[string]any{"provider": "sandbox"}).wantError(t, 400, "API_VALIDATION_ERROR", "provider")
	b.call("POST", "/provider_settings", xenditSettings).wantError(t, 409, "DUPLICATE_ERROR", "xendit.callback_token")
	b.callWithKey(xKey, "POST", "/provider_settings", map[string]any{"provider": "sandbox"}, "idempotency-key", "oa-settings").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/provider_settings", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/provider_settings", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/provider_settings", xenditSettings).wantError(t, 401, "INVALID_API_KEY", "")

	// Xendit callbacks, authenticated by the business's callback token.
	xendit := func(body string, headers ...string) response {
		return b.callWithKey("", "POST", "/callbacks/xendit", body, append([]string{"x-callback-token", "oa-callback-token"}, headers...)...)
	}
	capture := `{"event":"payment.capture","business_id":"5f27a14a9bf05c73dd040bc8","created":"2026-02-01T00:00:00Z","data":{"payment_id":"py-x","payment_request_id":"pr-xendit-unknown","reference_id":"` + unknownPR + `","status":"SUCCEEDED"}}`
	if r := e.ok(t, xendit(capture, "webhook-id", "oa-wh-1"), "unmatched"); r.body["outcome"] != "UNMATCHED" {
		t.Fatalf("unmatched: %s", r.raw)
	}
	if r := e.ok(t, xendit(capture, "webhook-id", "oa-wh-1"), "duplicate"); r.body["outcome"] != "DUPLICATE" {
		t.Fatalf("duplicate: %s", r.raw)
	}
	e.ok(t, xendit(`{"event":"payment.authorization","data":{}}`), "ignored")
	xendit(`{"event":`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.callWithKey("", "POST", "/callbacks/xendit", capture, "x-callback-token", "forged").wantError(t, 401, "INVALID_CALLBACK_TOKEN", "")
	xendit(`{"event":"x","data":"`+strings.Repeat("x", 1<<20)+`"}`).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	if n := b.countFor(xBiz.ID, "provider_callbacks"); n != 3 {
		t.Fatalf("%d xendit callbacks stored, want 3", n)
	}

	// WooshPay callbacks, signed with the business's webhook secret.
	wooshPath := "/callbacks/wooshpay?business_id=" + wooshBiz.ID
	event := `{"id":"evt_oa_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_oa","object":"payment_intent","status":"succeeded","metadata":{}}}}`
	sign := func(body string, at time.Time) string { return wooshpay.Sign("whsec_oa", at, []byte(body)) }
	if r := e.ok(t, b.callWithKey("", "POST", wooshPath, event, wooshpay.SignatureHeader, sign(event, b.clock.Now())), "wooshpay"); r.body["outcome"] != "UNMATCHED" {
		t.Fatalf("wooshpay: %s", r.raw)
	}
	b.callWithKey("", "POST", wooshPath, event, wooshpay.SignatureHeader, sign(event, b.clock.Now().Add(-10*time.Minute))).wantError(t, 401, "INVALID_SIGNATURE", "")
	b.callWithKey("", "POST", wooshPath, `{"id":`, wooshpay.SignatureHeader, sign(`{"id":`, b.clock.Now())).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.callWithKey("", "POST", wooshPath, `{"id":"`+strings.Repeat("x", 1<<20)+`"}`).wantError(t, 413, "REQUEST_TOO_LARGE", "")
}

// countFor returns how many rows of table belong to business id.
func (b *bundle) countFor(id, table string) int {
	b.t.Helper()
	var n int
	if err := b.db.Bun.NewRaw("SELECT count(*) FROM "+table+" WHERE business_id = ?", id).Scan(context.Background(), &n); err != nil {
		b.t.Fatal(err)
	}
	return n
}
