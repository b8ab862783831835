package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/tagihan/billing/internal/business"
)

// behaviorToken saves an ACTIVE sandbox token of customerID whose charges
// follow the sandbox behavior ("" for none), and returns its id.
func (b *bundle) behaviorToken(customerID, behavior string) string {
	b.t.Helper()
	body := map[string]any{"reference_id": "link-" + behavior, "type": "PAY_AND_SAVE", "customer_id": customerID, "country": "ID",
		"currency": "IDR", "request_amount": 10000, "channel_code": "DANA",
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}}
	if behavior != "" {
		body["metadata"] = map[string]any{"sandbox_behavior": behavior}
	}
	r := b.call("POST", "/payment_requests", body)
	if r.status != 201 {
		b.t.Fatalf("pay and save: %d %s", r.status, r.raw)
	}
	id := r.body["payment_request_id"].(string)
	b.call("POST", "/payment_requests/"+id+"/simulate", nil)
	b.deliver()
	tok, _ := b.call("GET", "/payment_requests/"+id, nil).body["payment_token_id"].(string)
	if tok == "" {
		b.t.Fatal("no token saved")
	}
	return tok
}

// runTo advances the sandbox clock to t through the API, which runs
// everything that falls due on the way.
func (b *bundle) runTo(t string) {
	b.t.Helper()
	b.advance(t)
}

// chargingPlan creates the source document's plan for customerID with
// tokens, retried once a day later, and returns its id and its cycle 1's.
func (b *bundle) chargingPlan(customerID, action string, tokens ...string) (string, string) {
	b.t.Helper()
	body := sourcePlan(customerID, tokens...)
	body["usage_charges"], body["failed_cycle_action"] = []any{}, action
	body["success_return_url"], body["failure_return_url"] = nil, nil
	body["schedule"].(map[string]any)["retry_interval_count"] = 1
	body["schedule"].(map[string]any)["total_retry"] = 1
	body["schedule"].(map[string]any)["failed_attempt_notifications"] = []any{1}
	r := b.call("POST", "/recurring/plans", body)
	if r.status != 200 {
		b.t.Fatalf("plan: %d %s", r.status, r.raw)
	}
	planID := r.body["id"].(string)
	return planID, b.only(planID)["id"].(string)
}

// TestSuspensionThroughTheAPI: a STOP plan whose token always fails; after
// the retry the cycle is FAILED, GET /customers/{id}/service says
// SUSPENDED (and customers show it), the invoice is UNCOLLECTIBLE; a
// payment link for it, paid on the provider's page, reinstates the
// customer. Another business sees none of it.
func TestSuspensionThroughTheAPI(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	planID, cycleID := b.chargingPlan(custID, "STOP", b.behaviorToken(custID, "always_fail"))
	svc := b.call("GET", "/customers/"+custID+"/service", nil)
	want(t, "service before", svc.body, "status", "ACTIVE", "reason", nil, "plan_id", nil, "invoice_id", nil, "customer_id", custID,
		"since", "2026-01-31T23:59:59.000Z")

	b.runTo("2026-02-16T16:23:52Z")
	cycle := b.call("GET", "/recurring/plans/"+planID+"/cycles/"+cycleID, nil).body
	want(t, "cycle", cycle, "status", "FAILED", "attempt_count", 2, "forced_attempt_count", 0)
	details := cycle["attempt_details"].([]any)
	want(t, "attempt 2", details[1].(map[string]any), "attempt_number", 2, "action_number", 1, "type", "RETRY", "status", "FAILED",
		"failure_code", "INSUFFICIENT_BALANCE", "next_retry_timestamp", nil, "created", "2026-02-16T16:23:52.000Z")
	want(t, "attempt 1", details[0].(map[string]any), "next_retry_timestamp", "2026-02-16T16:23:52.000Z")
	invoiceID := cycle["invoice_id"].(string)
	svc = b.call("GET", "/customers/"+custID+"/service", nil)
	want(t, "service suspended", svc.body, "status", "SUSPENDED", "reason", "CYCLE_FAILED", "plan_id", planID, "invoice_id", invoiceID,
		"since", "2026-02-16T16:23:52.000Z")
	want(t, "customer", b.call("GET", "/customers/"+custID, nil).body, "service_status", "SUSPENDED")
	want(t, "plan", b.call("GET", "/recurring/plans/"+planID, nil).body, "status", "INACTIVE")

	// The customer pays on a payment link; the provider's page sends them
	// back to the engine's pay page, which then says the bill is paid.
	link := b.call("POST", "/invoices/"+invoiceID+"/payment_link", nil)
	if link.status != 200 {
		t.Fatalf("payment link: %d %s", link.status, link.raw)
	}
	want(t, "link", link.body, "invoice_id", invoiceID, "amount", 100000, "currency", "IDR", "expires_at", "2026-02-17T16:23:52.000Z")
	prID := link.body["payment_request_id"].(string)
	pr := b.call("GET", "/payment_requests/"+prID, nil).body
	back, _ := pr["channel_properties"].(map[string]any)["success_return_url"].(string)
	u, err := url.Parse(back)
	if err != nil || u.Path[:5] != "/pay/" {
		t.Fatalf("return URL %q", back)
	}
	if status, to := browsePage(t, b, "GET", b.srv.URL+u.Path, nil); status != http.StatusSeeOther || to != link.body["url"] {
		t.Fatalf("pay page before payment: %d to %q", status, to)
	}
	b.call("POST", "/payment_requests/"+prID+"/simulate", nil)
	b.deliver()
	want(t, "service reinstated", b.call("GET", "/customers/"+custID+"/service", nil).body, "status", "ACTIVE", "reason", "INVOICE_PAID",
		"invoice_id", invoiceID)
	if page := b.browse("GET", b.srv.URL+u.Path, nil); page.status != 200 {
		t.Fatalf("pay page after payment: %d", page.status)
	} else {
		page.has(t, "pay page", "This bill is paid")
	}
	b.call("POST", "/invoices/"+invoiceID+"/payment_link", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")

	_, otherKey := b.newBusiness(business.ModeSandbox)
	b.callWithKey(otherKey, "GET", "/customers/"+custID+"/service", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "POST", "/invoices/"+invoiceID+"/pay", map[string]any{"payment_token_id": "pt-x"}).wantError(t, 404, "DATA_NOT_FOUND", "")
}

// TestForceAttemptThroughTheAPI: force_attempt charges a SCHEDULED cycle
// before its date and answers with the paid cycle.
func TestForceAttemptThroughTheAPI(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	planID, cycleID := b.chargingPlan(custID, "RESUME", b.tokenOf(custID, "ID", "IDR"))
	path := "/recurring/plans/" + planID + "/cycles/" + cycleID + "/force_attempt"
	b.call("POST", path, nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "") // its amount is not fixed yet
	b.runTo("2026-02-14T00:00:00Z")
	r := b.call("POST", path, nil, "idempotency-key", "force-1")
	if r.status != 200 {
		t.Fatalf("force: %d %s", r.status, r.raw)
	}
	want(t, "forced cycle", r.body, "status", "SUCCEEDED", "attempt_count", 0, "forced_attempt_count", 1)
	want(t, "attempt", r.body["attempt_details"].([]any)[0].(map[string]any), "type", "FORCED", "status", "SUCCEEDED")
	if again := b.call("POST", path, nil, "idempotency-key", "force-1"); again.header.Get("idempotent-replayed") != "true" {
		t.Fatal("not replayed")
	}
	b.call("POST", path, nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	inv := b.call("GET", "/invoices/"+r.body["invoice_id"].(string), nil).body
	want(t, "invoice", inv, "status", "PAID", "amount_paid", 100000)
}
