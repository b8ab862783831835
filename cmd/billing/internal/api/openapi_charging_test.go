package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/tagihan/billing/internal/business"
)

const unknownPaySecret = "pay_0000000000000000000000000000000000000000000000000000000000000000"

func init() {
	force := "/recurring/plans/" + unknownPlan + "/cycles/" + unknownCycle + "/force_attempt"
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "charging",
		run:  openAPICharging,
		calls: [][3]string{
			{"POST", force, `{}`},
			{"POST", "/invoices/" + unknownInvoice + "/pay", `{"payment_token_id":"pt-x"}`},
			{"POST", "/invoices/" + unknownInvoice + "/payment_link", `{}`},
			{"GET", "/customers/" + unknownCustomer + "/service", ""},
		},
		pages: [][3]string{{"GET", "/pay/" + unknownPaySecret, ""}},
	})
}

// openAPICharging exercises force_attempt, paying an invoice (with a token
// and on a payment link), the pay page and the service status, in a
// sandbox business of its own (its clock moves).
func openAPICharging(t *testing.T, e *openAPIEnv) {
	mine := *e.b
	mine.biz, mine.key = e.b.newBusiness(business.ModeSandbox)
	b := &mine
	custID := e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-charging", "individual_detail": map[string]any{"given_names": "Siti"}}),
		"customer").body["id"].(string)
	good, bad := b.tokenOf(custID, "ID", "IDR"), b.behaviorToken(custID, "always_fail")
	paidPlan, paidCycle := b.chargingPlan(custID, "RESUME", good)
	owedPlan, owedCycle := b.chargingPlan(custID, "RESUME", bad)
	force := func(plan, cycle string) string {
		return "/recurring/plans/" + plan + "/cycles/" + cycle + "/force_attempt"
	}

	// POST …/force_attempt.
	b.call("POST", force(paidPlan, paidCycle), nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "") // not fixed yet
	b.runTo("2026-02-14T00:00:00Z")
	for i := 0; i < 5; i++ {
		e.ok(t, b.call("POST", force(owedPlan, owedCycle), nil), "forced attempt that fails")
	}
	b.call("POST", force(owedPlan, owedCycle), nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	path := force(paidPlan, paidCycle)
	forced := e.ok(t, b.call("POST", path, nil, "idempotency-key", "oa-force"), "forced attempt")
	if r := e.ok(t, b.call("POST", path, nil, "idempotency-key", "oa-force"), "replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("replay not marked")
	}
	b.call("POST", path, `{}`, "idempotency-key", "oa-force").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", path, `[1]`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", force(paidPlan, unknownCycle), nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", path, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", path, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", path, nil).wantError(t, 401, "INVALID_API_KEY", "")
	paidInvoice := forced.body["invoice_id"].(string)
	owedInvoice := b.call("GET", "/recurring/plans/"+owedPlan+"/cycles/"+owedCycle, nil).body["invoice_id"].(string)

	// POST /invoices/{id}/payment_link, and the pay page it returns to.
	linkPath := "/invoices/" + owedInvoice + "/payment_link"
	link := e.ok(t, b.call("POST", linkPath, nil, "idempotency-key", "oa-link"), "payment link")
	if r := e.ok(t, b.call("POST", linkPath, nil, "idempotency-key", "oa-link"), "replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("replay not marked")
	}
	b.call("POST", linkPath, `{}`, "idempotency-key", "oa-link").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", linkPath, `[1]`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/invoices/"+paidInvoice+"/payment_link", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/invoices/"+unknownInvoice+"/payment_link", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", linkPath, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", linkPath, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", linkPath, nil).wantError(t, 401, "INVALID_API_KEY", "")
	pr := b.call("GET", "/payment_requests/"+link.body["payment_request_id"].(string), nil).body
	back, err := url.Parse(pr["channel_properties"].(map[string]any)["success_return_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := browsePage(t, b, "GET", b.srv.URL+back.Path, nil); status != http.StatusSeeOther {
		t.Fatalf("pay page: %d", status)
	}

	// POST /invoices/{id}/pay: refused while the link is open (the customer
	// may be paying on it), then, the link cancelled, paid.
	payPath := "/invoices/" + owedInvoice + "/pay"
	body := map[string]any{"payment_token_id": good}
	b.call("POST", payPath, body).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	e.ok(t, b.call("POST", "/payment_requests/"+link.body["payment_request_id"].(string)+"/cancel", nil), "cancel the link")
	paid := e.ok(t, b.call("POST", payPath, body, "idempotency-key", "oa-pay"), "pay")
	want(t, "payment request", paid.body, "status", "SUCCEEDED", "request_amount", 100000)
	if r := e.ok(t, b.call("POST", payPath, body, "idempotency-key", "oa-pay"), "replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("replay not marked")
	}
	b.call("POST", payPath, map[string]any{"payment_token_id": bad}, "idempotency-key", "oa-pay").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", payPath, body).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", payPath, map[string]any{}).wantError(t, 400, "API_VALIDATION_ERROR", "payment_token_id")
	b.call("POST", "/invoices/"+unknownInvoice+"/pay", body).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", payPath, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", payPath, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", payPath, body).wantError(t, 401, "INVALID_API_KEY", "")
	if status, _ := browsePage(t, b, "GET", b.srv.URL+back.Path, nil); status != http.StatusOK {
		t.Fatalf("pay page of a paid bill: %d", status)
	}
	if status, _ := browsePage(t, b, "GET", b.srv.URL+"/pay/"+unknownPaySecret, nil); status != http.StatusNotFound {
		t.Fatalf("unknown pay page: %d", status)
	}

	// GET /customers/{id}/service.
	e.ok(t, b.call("GET", "/customers/"+custID+"/service", nil), "service")
	b.callWithKey(e.otherKey, "GET", "/customers/"+custID+"/service", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/customers/"+custID+"/service", nil).wantError(t, 401, "INVALID_API_KEY", "")
}
