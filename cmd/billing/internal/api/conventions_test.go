package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/internal/business"
	"golang.org/x/time/rate"
)

var siti = map[string]any{
	"reference_id":      "meter-001",
	"type":              "INDIVIDUAL",
	"individual_detail": map[string]any{"given_names": "Siti", "surname": "Rahayu"},
	"email":             "siti@example.co.id",
	"mobile_number":     "+6281234567890",
}

func TestAuth(t *testing.T) {
	b := setup(t)
	b.callWithKey("", "GET", "/customers", nil).wantError(t, 401, "INVALID_API_KEY", "")
	b.callWithKey("sk_test_nope", "GET", "/customers", nil).wantError(t, 401, "INVALID_API_KEY", "")
	b.callWithKey(b.key+"x", "POST", "/customers", siti).wantError(t, 401, "INVALID_API_KEY", "")
	if b.count("customers") != 0 {
		t.Fatal("an unauthenticated request wrote a customer")
	}
	// Basic with the key as user name (what Xendit's SDKs send), and Bearer.
	if r := b.call("GET", "/customers", nil); r.status != 200 {
		t.Fatalf("basic: %d %s", r.status, r.raw)
	}
	if r := b.callWithKey("", "GET", "/customers", nil, "Authorization", "Bearer "+b.key); r.status != 200 {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(b.key+":"))
	if r := b.callWithKey("", "GET", "/customers", nil, "Authorization", basic); r.status != 200 {
		t.Fatalf("basic header: %d %s", r.status, r.raw)
	}
	if r := b.callWithKey("", "GET", "/customers", nil, "Authorization", "Token "+b.key); r.status != 401 {
		t.Fatalf("unknown scheme accepted: %d", r.status)
	}
}

func TestRequestIDAndErrorEnvelope(t *testing.T) {
	b := setup(t)
	r := b.call("GET", "/nowhere", nil)
	r.wantError(t, 404, "DATA_NOT_FOUND", "")
	if id := r.header.Get("request-id"); !strings.HasPrefix(id, "req_") {
		t.Fatalf("request-id = %q", id)
	}
	r = b.call("DELETE", "/customers", nil)
	if r.status != 405 || r.header.Get("Allow") != "GET, POST" {
		t.Fatalf("DELETE /customers: %d Allow=%q %s", r.status, r.header.Get("Allow"), r.raw)
	}
	if r := b.call("GET", "/customers", nil); r.header.Get("request-id") == "" {
		t.Fatal("no request-id on a success")
	}
}

func TestBodyLimits(t *testing.T) {
	b := setup(t)
	big := `{"reference_id":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
	b.call("POST", "/customers", big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	// Without a Content-Length the limit still holds.
	req, _ := http.NewRequest("POST", b.srv.URL+"/customers", struct{ *strings.Reader }{strings.NewReader(big)})
	req.SetBasicAuth(b.key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || req.ContentLength != 0 {
		t.Fatalf("chunked oversized body: %d", resp.StatusCode)
	}
	b.call("POST", "/customers", `{"reference_id":"a"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.call("POST", "/customers", `{"reference_id":"a"}`, "Content-Type", "application/x-www-form-urlencoded").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	if r := b.call("POST", "/customers", siti, "Content-Type", "application/json; charset=utf-8"); r.status != 200 {
		t.Fatalf("charset parameter refused: %d %s", r.status, r.raw)
	}
	if b.count("customers") != 1 {
		t.Fatalf("%d customers, want 1", b.count("customers"))
	}
}

func TestMalformedBodiesChangeNothing(t *testing.T) {
	b := setup(t)
	for body, field := range map[string]string{
		``:                              "body",
		`{`:                             "body",
		`[]`:                            "body",
		`"customer"`:                    "body",
		`{"reference_id": 42}`:          "reference_id",
		`{"reference_id": "a"} {"x":1}`: "body",
		`{"reference_id":"a","type":"INDIVIDUAL","individual_detail":{"given_names":["Siti"]}}`:         "individual_detail.given_names",
		`{"reference_id":"a","type":"INDIVIDUAL","individual_detail":{"given_names":"S"},"email":true}`: "email",
	} {
		b.call("POST", "/customers", body).wantError(t, 400, "API_VALIDATION_ERROR", field)
	}
	if b.count("customers") != 0 || b.count("idempotency_keys") != 0 {
		t.Fatal("a rejected request wrote something")
	}
}

func TestIdempotency(t *testing.T) {
	b := setup(t)
	first := b.call("POST", "/customers", siti, "idempotency-key", "create-siti")
	if first.status != 200 {
		t.Fatalf("create: %d %s", first.status, first.raw)
	}
	replay := b.call("POST", "/customers", siti, "idempotency-key", "create-siti")
	if replay.status != 200 || string(replay.raw) != string(first.raw) || replay.header.Get("idempotent-replayed") != "true" {
		t.Fatalf("replay: %d %s (replayed=%q)", replay.status, replay.raw, replay.header.Get("idempotent-replayed"))
	}
	if b.count("customers") != 1 {
		t.Fatalf("%d customers after a replay", b.count("customers"))
	}
	other := map[string]any{"reference_id": "meter-002", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Budi"}}
	b.call("POST", "/customers", other, "idempotency-key", "create-siti").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	// The key is per business: another business may use the same key.
	_, otherKey := b.newBusiness(business.ModeSandbox)
	if r := b.callWithKey(otherKey, "POST", "/customers", siti, "idempotency-key", "create-siti"); r.status != 200 || r.body["id"] == first.body["id"] {
		t.Fatalf("other business, same key: %d %s", r.status, r.raw)
	}
	// A failed request stores nothing: fixing the body and retrying with
	// the same key works.
	bad := map[string]any{"reference_id": "meter-003", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Ani"}, "email": "not-an-email"}
	b.call("POST", "/customers", bad, "idempotency-key", "create-ani").wantError(t, 400, "API_VALIDATION_ERROR", "email")
	delete(bad, "email")
	if r := b.call("POST", "/customers", bad, "idempotency-key", "create-ani"); r.status != 200 {
		t.Fatalf("retry after a 400: %d %s", r.status, r.raw)
	}
	for _, k := range []string{strings.Repeat("k", 101)} { // Go's client refuses to send control characters
		b.call("POST", "/customers", other, "idempotency-key", k).wantError(t, 400, "API_VALIDATION_ERROR", "idempotency-key")
	}
	// After 24 hours the key is free again.
	b.clock.Advance(api.IdempotencyTTL)
	if r := b.call("POST", "/customers", other, "idempotency-key", "create-siti"); r.status != 200 || r.body["reference_id"] != "meter-002" {
		t.Fatalf("reuse after 24h: %d %s", r.status, r.raw)
	}
}

func TestIdempotencyConcurrentRequestsRunOnce(t *testing.T) {
	b := setup(t)
	const n = 8
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = b.call("POST", "/customers", siti, "idempotency-key", "same-key")
		}()
	}
	wg.Wait()
	replayed := 0
	for _, r := range results {
		if r.status != 200 || r.body["id"] != results[0].body["id"] {
			t.Fatalf("concurrent: %d %s", r.status, r.raw)
		}
		if r.header.Get("idempotent-replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 || b.count("customers") != 1 {
		t.Fatalf("%d replayed, %d customers; want %d and 1", replayed, b.count("customers"), n-1)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	b := setup(t, func(o *options) { o.rateLimit = rate.Limit(0.001); o.rateBurst = 3 })
	for i := 0; i < 3; i++ {
		if r := b.call("GET", "/customers", nil); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := b.call("GET", "/customers", nil)
	r.wantError(t, 429, "RATE_LIMIT_EXCEEDED", "")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	b.call("POST", "/customers", siti).wantError(t, 429, "RATE_LIMIT_EXCEEDED", "")
	// Another key has its own budget.
	_, other := b.newBusiness(business.ModeLive)
	if r := b.callWithKey(other, "GET", "/customers", nil); r.status != 200 {
		t.Fatalf("other key limited: %d", r.status)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	b := setup(t)
	if r := b.callWithKey("", "GET", "/healthz", nil); r.status != 200 || r.body["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	if r := b.callWithKey("", "GET", "/readyz", nil); r.status != 200 || r.body["status"] != "ready" {
		t.Fatalf("readyz: %d %s", r.status, r.raw)
	}
	b.call("GET", "/customers", nil)
	r := b.callWithKey("", "GET", "/metrics", nil)
	if r.status != 200 || !strings.Contains(string(r.raw), `billing_http_requests_total{code="200",method="GET",route="GET /customers"}`) {
		t.Fatalf("metrics: %d\n%s", r.status, r.raw)
	}
	if strings.Contains(string(r.raw), b.key) {
		t.Fatal("metrics show an API key")
	}
}
