package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tagihan/billing/internal/business"
)

const unknownInvoice = "inv-00000000-0000-7000-8000-000000000000"

func init() {
	inv := "/invoices/" + unknownInvoice
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "invoices",
		run:  openAPIInvoices,
		calls: [][3]string{
			{"GET", "/invoices", ""},
			{"GET", "/invoices/export.csv", ""},
			{"GET", inv, ""},
			{"POST", inv + "/approve", `{}`},
			{"POST", inv + "/hold", `{}`},
			{"POST", inv + "/release", `{}`},
			{"POST", inv + "/void", `{}`},
			{"POST", inv + "/adjustments", `{"amount":1,"reason":"x"}`},
			{"POST", inv + "/credit_notes", `{"amount":1,"reason":"x"}`},
		},
	})
}

// openAPIInvoices works in a sandbox business of its own, whose clock it
// moves to fix two invoices: one held for review (MANUAL), one finalized.
func openAPIInvoices(t *testing.T, e *openAPIEnv) {
	biz, key := e.b.newBusiness(business.ModeSandbox)
	b := &bundle{t: t, db: e.b.db, srv: e.b.srv, api: e.b.api, biz: biz, key: key, clock: e.b.clock, client: e.b.client}
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	manual := e.ok(t, b.call("POST", "/recurring/plans", change(change(sourcePlan(custID, tokenID), "review_policy", "MANUAL"), "reference_id", "oa-manual")), "plan").body["id"].(string)
	auto := e.ok(t, b.call("POST", "/recurring/plans", change(sourcePlan(custID, tokenID), "reference_id", "oa-auto")), "plan").body["id"].(string)
	b.advance("2026-02-14T00:00:00Z")
	held, open := b.only(manual)["invoice_id"].(string), b.only(auto)["invoice_id"].(string)

	// GET /invoices, /invoices/export.csv, /invoices/{id}.
	for _, path := range []string{"/invoices", "/invoices/export.csv"} {
		e.ok(t, b.call("GET", path+"?needs_review=true&customer_id="+custID, nil), path)
		b.call("GET", path+"?status=LATE", nil).wantError(t, 400, "API_VALIDATION_ERROR", "status")
		b.call("GET", path+"?plan_id="+unknownPlan, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
		b.callWithKey("", "GET", path, nil).wantError(t, 401, "INVALID_API_KEY", "")
	}
	e.ok(t, b.call("GET", "/invoices?limit=1&period_from=2026-01-01T00:00:00Z&period_to=2026-03-01T00:00:00Z&review_status=NEEDS_REVIEW", nil), "list")
	e.ok(t, b.call("GET", "/invoices/export.csv?lines=true&status=OPEN&review_status=NOT_REQUIRED&period_from=2026-01-01T00:00:00Z", nil), "lines")
	e.ok(t, b.call("GET", "/invoices/"+held, nil), "get")
	b.callWithKey(e.otherKey, "GET", "/invoices/"+held, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/invoices/"+held, nil).wantError(t, 401, "INVALID_API_KEY", "")

	// The POST actions: what each state allows, then the conventions.
	conventions := func(action string, good any) {
		t.Helper()
		path := "/invoices/" + held + "/" + action
		b.call("POST", path, map[string]any{"note": 1}).wantError(t, 400, "API_VALIDATION_ERROR", "note")
		b.call("POST", "/invoices/"+unknownInvoice+"/"+action, good).wantError(t, 404, "DATA_NOT_FOUND", "")
		b.call("POST", path, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
		b.call("POST", path, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
		b.callWithKey("", "POST", path, good).wantError(t, 401, "INVALID_API_KEY", "")
	}
	twice := func(path string, body, other any, key string) {
		t.Helper()
		e.ok(t, b.call("POST", path, body, "idempotency-key", key), path)
		if r := b.call("POST", path, body, "idempotency-key", key); r.status != http.StatusOK || r.header.Get("idempotent-replayed") != "true" {
			t.Fatalf("replay of %s: %d %s", path, r.status, r.raw)
		}
		b.call("POST", path, other, "idempotency-key", key).wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	}
	note := map[string]any{"note": "checked"}
	twice("/invoices/"+held+"/approve", note, map[string]any{"note": "other"}, "oa-approve")
	b.call("POST", "/invoices/"+held+"/approve", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	conventions("approve", note)
	twice("/invoices/"+open+"/hold", note, map[string]any{"note": "other"}, "oa-hold")
	b.call("POST", "/invoices/"+open+"/hold", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	conventions("hold", note)
	twice("/invoices/"+open+"/release", nil, note, "oa-release")
	b.call("POST", "/invoices/"+open+"/release", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	conventions("release", note)
	adjust := map[string]any{"amount": "1500", "reason": "meter reading fee"}
	twice("/invoices/"+open+"/adjustments", adjust, map[string]any{"amount": 1, "reason": "x"}, "oa-adjust")
	b.call("POST", "/invoices/"+open+"/adjustments", map[string]any{"reason": "no amount"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	conventions("adjustments", adjust)
	twice("/invoices/"+open+"/void", nil, note, "oa-void")
	b.call("POST", "/invoices/"+open+"/void", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", "/invoices/"+open+"/adjustments", adjust).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	conventions("void", note)

	credit := map[string]any{"amount": 1000, "reason": "meter misread"}
	b.call("POST", "/invoices/"+held+"/credit_notes", credit).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	if _, err := b.db.Bun.NewRaw("UPDATE invoices SET status = 'PAID', amount_paid = total, paid_at = updated WHERE id = ?", held).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	twice("/invoices/"+held+"/credit_notes", credit, map[string]any{"amount": 2000, "reason": "meter misread"}, "oa-credit")
	b.call("POST", "/invoices/"+held+"/credit_notes", map[string]any{"amount": 1000}).wantError(t, 400, "API_VALIDATION_ERROR", "reason")
	conventions("credit_notes", credit)
}
