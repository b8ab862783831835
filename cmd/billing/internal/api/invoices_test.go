package api_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/business"
)

// fixedInvoice sets up the source document's plan in the bundle's sandbox
// business with 150.5 kWh reported in its first window, fixes its amount
// at the fix time, and returns the plan's and the invoice's ids.
func (b *bundle) fixedInvoice() (planID, invoiceID string) {
	b.t.Helper()
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	r := b.call("POST", "/recurring/plans", sourcePlan(custID, tokenID))
	if r.status != 200 {
		b.t.Fatalf("plan: %d %s", r.status, r.raw)
	}
	planID = r.body["id"].(string)
	b.advance("2026-02-10T00:00:00Z")
	for i, q := range []string{"80", "70.5"} {
		if r := b.call("POST", "/usage_events", map[string]any{"event_id": "kwh-" + q, "customer_id": custID, "meter": "electricity_kwh",
			"quantity": q, "timestamp": time.Date(2026, 2, 3+i, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)}); r.status != 200 {
			b.t.Fatalf("usage: %d %s", r.status, r.raw)
		}
	}
	b.advance("2026-02-14T00:00:00Z")
	inv, _ := b.only(planID)["invoice_id"].(string)
	if inv == "" {
		b.t.Fatal("the cycle has no invoice after its fix time")
	}
	return planID, inv
}

// keyID is the id of the bundle's API key, which audit trails record.
func (b *bundle) keyID() string {
	b.t.Helper()
	var id string
	if err := b.db.Bun.NewRaw("SELECT id FROM api_keys WHERE business_id = ?", b.biz.ID).Scan(context.Background(), &id); err != nil {
		b.t.Fatal(err)
	}
	return id
}

// TestInvoiceAPI reads a fixed invoice, lists it with each filter, and
// takes it through hold, release, adjustments and void, through the API:
// every state change audited with the API key, refusals with 403 and the
// field named on 400, another business's invoice a 404.
func TestInvoiceAPI(t *testing.T) {
	b := setup(t)
	planID, id := b.fixedInvoice()
	path := "/invoices/" + id

	inv := b.call("GET", path, nil)
	// 100,000 base + 150.5 kWh graduated: 100 × 1,000 + 50.5 × 1,500.
	want(t, "invoice", inv.body, "id", id, "number", "INV-2026-000001", "status", "OPEN", "review_status", "NOT_REQUIRED",
		"review_reasons", []any{}, "plan_id", planID, "currency", "IDR", "subtotal", 275750, "total", 275750, "amount_paid", 0,
		"amount_due", 275750, "amount_credited", 0, "due_at", "2026-02-15T16:23:52.000Z", "finalized_at", "2026-02-14T00:00:00.000Z",
		"period", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-02-14T00:00:00.000Z"}, "credit_notes", []any{})
	lines := inv.body["lines"].([]any)
	usage := lines[1].(map[string]any)
	want(t, "usage line", usage, "kind", "USAGE", "meter", "electricity_kwh", "quantity", 150.5, "amount", 175750, "unit_amount", nil,
		"tiers", []any{
			map[string]any{"from": 0, "to": 100, "quantity": 100, "unit_amount": 1000, "flat_amount": 0, "amount": 100000},
			map[string]any{"from": 100, "to": 200, "quantity": 50.5, "unit_amount": 1500, "flat_amount": 0, "amount": 75750},
		})
	want(t, "usage evidence", usage["usage"].(map[string]any), "event_count", 2, "first_event_at", "2026-02-03T00:00:00.000Z",
		"last_event_at", "2026-02-04T00:00:00.000Z", "window_start", "2026-01-31T23:59:59.000Z", "window_end", "2026-02-14T00:00:00.000Z")
	want(t, "base line", lines[0].(map[string]any), "kind", "BASE", "quantity", 1, "unit_amount", 100000, "amount", 100000)

	// Another business sees nothing.
	_, otherKey := b.newBusiness(business.ModeSandbox)
	b.callWithKey(otherKey, "GET", path, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "POST", path+"/hold", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	if r := b.callWithKey(otherKey, "GET", "/invoices", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business lists %s", r.raw)
	}
	b.call("GET", "/invoices/inv-nope", nil).wantError(t, 404, "DATA_NOT_FOUND", "")

	// Filters.
	custID := inv.body["customer_id"].(string)
	for query, n := range map[string]int{
		"": 1, "status=OPEN": 1, "status=DRAFT": 0, "customer_id=" + custID: 1, "plan_id=" + planID: 1, "needs_review=false": 1,
		"needs_review=true": 0, "review_status=NOT_REQUIRED": 1, "period_from=2026-02-13T00:00:00Z": 1, "period_from=2026-02-14T00:00:00Z": 0,
		"period_to=2026-02-01T00:00:00Z": 1, "period_to=2026-01-31T23:59:59Z": 0, "limit=1&after_id=" + id: 0,
	} {
		r := b.call("GET", "/invoices?"+query, nil)
		if r.status != 200 || len(r.body["data"].([]any)) != n {
			t.Errorf("GET /invoices?%s: %d %.300s, want %d invoices", query, r.status, r.raw, n)
		}
	}
	for query, field := range map[string]string{"status=LATE": "status", "needs_review=yes": "needs_review", "period_to=March": "period_to",
		"review_status=MAYBE": "review_status", "limit=0": "limit"} {
		b.call("GET", "/invoices?"+query, nil).wantError(t, 400, "API_VALIDATION_ERROR", field)
	}
	b.call("GET", "/invoices?customer_id=cust-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")

	// Review actions: what the state allows, and 403 otherwise.
	b.call("POST", path+"/approve", map[string]any{}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", path+"/release", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", path+"/hold", map[string]any{"nope": 1}).wantError(t, 400, "API_VALIDATION_ERROR", "nope")
	held := b.call("POST", path+"/hold", map[string]any{"note": "customer disputes the reading"})
	want(t, "held", held.body, "review_status", "ON_HOLD", "status", "OPEN")
	b.call("POST", path+"/hold", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	released := b.call("POST", path+"/release", nil)
	want(t, "released", released.body, "review_status", "NOT_REQUIRED")
	audit := released.body["audit"].([]any)
	key := b.keyID()
	if len(audit) != 3 {
		t.Fatalf("audit %v", audit)
	}
	want(t, "audit held", audit[1].(map[string]any), "action", "held", "actor", key, "note", "customer disputes the reading")
	want(t, "audit released", audit[2].(map[string]any), "action", "released", "actor", key, "note", nil)

	// Adjustments move the total and the cycle's amount; never below zero.
	adj := b.call("POST", path+"/adjustments", map[string]any{"amount": -25750, "reason": "goodwill credit", "note": "ticket 42"})
	want(t, "adjusted", adj.body, "total", 250000, "subtotal", 275750)
	if c := b.only(planID); c["amount"] != json.Number("250000") {
		t.Fatalf("cycle amount %v after the adjustment", c["amount"])
	}
	adjLine := adj.body["lines"].([]any)[2].(map[string]any)
	want(t, "adjustment line", adjLine, "kind", "ADJUSTMENT", "amount", -25750, "reason", "goodwill credit", "created_by", key)
	b.call("POST", path+"/adjustments", map[string]any{"amount": -250001, "reason": "too much"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", path+"/adjustments", map[string]any{"amount": "0.5", "reason": "cents"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", path+"/adjustments", map[string]any{"amount": 0, "reason": "nothing"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", path+"/adjustments", map[string]any{"amount": 10}).wantError(t, 400, "API_VALIDATION_ERROR", "reason")
	b.call("POST", path+"/credit_notes", map[string]any{"amount": 10, "reason": "x"}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")

	// Void: the cycle is cancelled and the plan moves on; the number stays.
	voided := b.call("POST", path+"/void", map[string]any{"note": "duplicate"})
	want(t, "voided", voided.body, "status", "VOID", "number", "INV-2026-000001", "amount_due", 0)
	b.call("POST", path+"/void", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("POST", path+"/adjustments", map[string]any{"amount": 10, "reason": "late"}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	cycles := b.call("GET", "/recurring/plans/"+planID+"/cycles", nil).body["data"].([]any)
	if len(cycles) != 2 || cycles[1].(map[string]any)["status"] != "CANCELLED" || cycles[0].(map[string]any)["cycle_number"] != json.Number("2") {
		t.Fatalf("cycles after void: %v", cycles)
	}
	if types := b.eventTypes(); !contains(types, "invoice.voided") || !contains(types, "invoice.finalized") || !contains(types, "recurring.cycle.amount_fixed") {
		t.Fatalf("events %v", types)
	}
}

// TestInvoiceReviewAPI approves an invoice held for review: it is
// finalized then, and adjusting it is refused from its cycle's date.
func TestInvoiceReviewAPI(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	plan := b.call("POST", "/recurring/plans", change(sourcePlan(custID, tokenID), "review_policy", "MANUAL"))
	planID := plan.body["id"].(string)
	b.advance("2026-02-14T00:00:00Z")
	id := b.only(planID)["invoice_id"].(string)
	path := "/invoices/" + id
	inv := b.call("GET", path, nil)
	want(t, "held", inv.body, "status", "DRAFT", "number", nil, "review_status", "NEEDS_REVIEW", "review_reasons", []any{"MANUAL_REVIEW"})
	if r := b.call("GET", "/invoices?needs_review=true", nil); len(r.body["data"].([]any)) != 1 {
		t.Fatalf("needs_review=true: %s", r.raw)
	}
	held := b.call("POST", path+"/hold", nil)
	want(t, "held draft", held.body, "review_status", "ON_HOLD", "status", "DRAFT")
	released := b.call("POST", path+"/release", map[string]any{"note": "checked the reading"})
	want(t, "released from review", released.body, "review_status", "APPROVED", "status", "OPEN", "number", "INV-2026-000001",
		"finalized_at", "2026-02-14T00:00:00.000Z")
	b.advance("2026-02-15T00:00:00Z")
	b.call("POST", path+"/adjustments", map[string]any{"amount": 10, "reason": "late"}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
}

// TestInvoiceCreditNotesAPI records credit notes on a paid invoice, up to
// what was paid.
func TestInvoiceCreditNotesAPI(t *testing.T) {
	b := setup(t)
	_, id := b.fixedInvoice()
	// The invoice is paid: its cycle is charged on its date.
	b.advance("2026-02-15T17:00:00Z")
	want(t, "paid", b.call("GET", "/invoices/"+id, nil).body, "status", "PAID", "amount_paid", 275750)
	path := "/invoices/" + id + "/credit_notes"
	cn := b.call("POST", path, map[string]any{"amount": 75750, "reason": "meter misread"})
	want(t, "credit note", cn.body, "invoice_id", id, "amount", 75750, "reason", "meter misread", "actor", b.keyID())
	b.call("POST", path, map[string]any{"amount": 200001, "reason": "too much"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", path, map[string]any{"amount": -1, "reason": "negative"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", path, map[string]any{"amount": 10, "reason": "x", "refund": true}).wantError(t, 400, "API_VALIDATION_ERROR", "refund")
	e := b.call("POST", path, map[string]any{"amount": 200000, "reason": "rest"})
	if e.status != 200 {
		t.Fatalf("the rest: %d %s", e.status, e.raw)
	}
	inv := b.call("GET", "/invoices/"+id, nil)
	want(t, "credited", inv.body, "amount_credited", 275750, "status", "PAID")
	if n := len(inv.body["credit_notes"].([]any)); n != 2 {
		t.Fatalf("%d credit notes", n)
	}
	b.call("POST", path, map[string]any{"amount": 1, "reason": "more"}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("POST", "/invoices/"+id+"/void", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
}

// TestInvoiceExportCSV exports the invoice list and its lines, filtered,
// with exact amounts.
func TestInvoiceExportCSV(t *testing.T) {
	b := setup(t)
	_, id := b.fixedInvoice()
	read := func(query string) [][]string {
		t.Helper()
		r := b.call("GET", "/invoices/export.csv?"+query, nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("export %s: %d %s", query, r.status, r.raw)
		}
		recs, err := csv.NewReader(strings.NewReader(string(r.raw))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	recs := read("status=OPEN")
	if len(recs) != 2 || recs[0][0] != "id" || recs[1][0] != id || recs[1][1] != "INV-2026-000001" {
		t.Fatalf("invoices: %v", recs)
	}
	col := func(header []string, name string) int {
		for i, h := range header {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s in %v", name, header)
		return -1
	}
	if got := recs[1][col(recs[0], "total")]; got != "275750" {
		t.Fatalf("total %q", got)
	}
	if got := recs[1][col(recs[0], "customer_reference_id")]; got != "test_reference_id" {
		t.Fatalf("customer reference %q", got)
	}
	if recs := read("status=VOID"); len(recs) != 1 {
		t.Fatalf("filtered export: %v", recs)
	}
	lines := read("lines=true&customer_id=" + url.QueryEscape(recs[1][col(recs[0], "customer_id")]))
	if len(lines) != 3 {
		t.Fatalf("lines: %v", lines)
	}
	usage := lines[2]
	if usage[col(lines[0], "kind")] != "USAGE" || usage[col(lines[0], "quantity")] != "150.5" || usage[col(lines[0], "amount")] != "175750" ||
		usage[col(lines[0], "event_count")] != "2" || usage[col(lines[0], "window_end")] != "2026-02-14T00:00:00.000Z" {
		t.Fatalf("usage line: %v", usage)
	}
	b.call("GET", "/invoices/export.csv?lines=maybe", nil).wantError(t, 400, "API_VALIDATION_ERROR", "lines")
	b.call("GET", "/invoices/export.csv?status=LATE", nil).wantError(t, 400, "API_VALIDATION_ERROR", "status")
	b.call("GET", "/invoices/export.csv?plan_id=repl-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/invoices/export.csv", nil).wantError(t, 401, "INVALID_API_KEY", "")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
