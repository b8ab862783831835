package api_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// sourcePlan is the plan of the source document (seeds/001: a utility's
// monthly plan with a base amount of IDR 100,000, three retries three
// days apart, every failure notified on WhatsApp, and the service stopped
// when a month goes unpaid), with the engine's graduated kWh charge.
func sourcePlan(customerID string, tokens ...string) map[string]any {
	methods := []any{}
	for i, t := range tokens {
		methods = append(methods, map[string]any{"payment_token_id": t, "rank": i + 1})
	}
	return map[string]any{
		"reference_id": "test_reference_id", "customer_id": customerID, "recurring_action": "PAYMENT", "currency": "IDR", "amount": 100000,
		"schedule": map[string]any{
			"reference_id": "test_reference_id", "interval": "MONTH", "interval_count": 1, "anchor_date": "2022-02-15T16:23:52Z",
			"retry_interval": "DAY", "retry_interval_count": 3, "total_retry": 3, "failed_attempt_notifications": []any{1, 2, 3},
		},
		"notification_config": map[string]any{"recurring_created": []any{"WHATSAPP"}, "recurring_succeeded": []any{"WHATSAPP"}, "recurring_failed": []any{"WHATSAPP"}},
		"failed_cycle_action": "STOP", "metadata": nil,
		"success_return_url": "https://www.xendit.co/successisthesumoffailures", "failure_return_url": "https://www.xendit.co/failureisthemotherofsuccess",
		"payment_methods": methods,
		"usage_charges": []any{map[string]any{"meter": "electricity_kwh", "description": "Electricity", "price": map[string]any{
			"model": "GRADUATED", "tiers": []any{
				map[string]any{"up_to": 100, "unit_amount": 1000},
				map[string]any{"up_to": 200, "unit_amount": 1500},
				map[string]any{"up_to": nil, "unit_amount": 2000, "flat_amount": 5000},
			}}}},
	}
}

// utilitySetup creates the kWh meter and the source document's customer,
// and returns the customer's id.
func (b *bundle) utilitySetup() string {
	b.t.Helper()
	if r := b.call("POST", "/meters", map[string]any{"code": "electricity_kwh", "name": "Electricity", "unit": "kWh", "aggregation": "SUM"}); r.status != 200 {
		b.t.Fatalf("meter: %d %s", r.status, r.raw)
	}
	c := b.call("POST", "/customers", map[string]any{"reference_id": "test_reference_id", "mobile_number": "+6218181818181",
		"email": "honeybadgey@xendit.co", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Honey Badgey"}})
	if c.status != 200 {
		b.t.Fatalf("customer: %d %s", c.status, c.raw)
	}
	return c.body["id"].(string)
}

// tokenOf saves an ACTIVE sandbox token for customerID in country's
// currency through PAY_AND_SAVE and simulate, and returns its id.
func (b *bundle) tokenOf(customerID, country, currency string) string {
	b.t.Helper()
	channel := map[string]string{"ID": "DANA", "PH": "GCASH"}[country]
	r := b.call("POST", "/payment_requests", map[string]any{"reference_id": "link-" + customerID, "type": "PAY_AND_SAVE", "customer_id": customerID,
		"country": country, "currency": currency, "request_amount": 10000, "channel_code": channel,
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}})
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

// deliver delivers the sandbox's due callbacks, as the engine's job does.
func (b *bundle) deliver() {
	b.t.Helper()
	if _, err := b.api.PaymentsForTest().DeliverDueSandboxCallbacks(context.Background(), b.biz.ID); err != nil {
		b.t.Fatal(err)
	}
}

// advance moves the sandbox clock to t.
func (b *bundle) advance(t string) {
	b.t.Helper()
	if r := b.call("POST", "/sandbox/clock/advance", map[string]any{"to": t}); r.status != 200 {
		b.t.Fatalf("advance to %s: %d %s", t, r.status, r.raw)
	}
}

// only returns the single cycle of a plan, listed through the API.
func (b *bundle) only(planID string) map[string]any {
	b.t.Helper()
	r := b.call("GET", "/recurring/plans/"+planID+"/cycles", nil)
	data, _ := r.body["data"].([]any)
	if r.status != 200 || len(data) != 1 {
		b.t.Fatalf("cycles of %s: %d %s", planID, r.status, r.raw)
	}
	return data[0].(map[string]any)
}

// want fails unless m has each of the pairs (compared as JSON text, so
// numbers are compared exactly).
func want(t *testing.T, what string, m map[string]any, pairs ...any) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i].(string)
		got, _ := json.Marshal(m[k])
		exp, _ := json.Marshal(pairs[i+1])
		if string(got) != string(exp) {
			t.Errorf("%s: %s = %s, want %s", what, k, got, exp)
		}
	}
}

// TestSourceDocumentPlan is the "done when", through the API in a
// sandbox business: meters, a customer, a token, and the source
// document's plan with a graduated kWh charge; cycle 1 at the right time,
// with its fix time and window; its PATCH accepted at 23:59:59 UTC the day
// before its date and refused at 00:00:00 on the date; and the usage
// preview pricing the usage reported so far.
func TestSourceDocumentPlan(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	before := len(b.eventTypes())

	r := b.call("POST", "/recurring/plans", sourcePlan(custID, tokenID), "idempotency-key", "plan-1")
	if r.status != 200 {
		t.Fatalf("create plan: %d %s", r.status, r.raw)
	}
	plan := r.body
	planID := plan["id"].(string)
	want(t, "plan", plan, "status", "ACTIVE", "currency", "IDR", "amount", 100000, "recurring_action", "PAYMENT", "recurring_cycle_count", 1,
		"failed_cycle_action", "STOP", "activated_at", "2026-01-31T23:59:59.000Z", "amount_lead_days", 1, "actions", []any{},
		"payment_methods", []any{map[string]any{"payment_token_id": tokenID, "rank": 1}},
		"review_policy", map[string]any{"mode": "AUTO", "max_total": nil, "usage_factor": 3},
		"notification_config", map[string]any{"recurring_created": []any{"WHATSAPP"}, "recurring_succeeded": []any{"WHATSAPP"},
			"recurring_failed": []any{"WHATSAPP"}, "locale": "en"})
	sched := plan["schedule"].(map[string]any)
	want(t, "schedule", sched, "id", plan["schedule_id"], "interval", "MONTH", "interval_count", 1, "total_recurrence", nil,
		"anchor_date", "2022-02-15T16:23:52.000Z", "retry_interval", "DAY", "retry_interval_count", 3, "total_retry", 3,
		"failed_attempt_notifications", []any{1, 2, 3})
	charge := plan["usage_charges"].([]any)[0].(map[string]any)
	want(t, "usage charge", charge, "meter", "electricity_kwh", "minimum_amount", nil, "price", map[string]any{"model": "GRADUATED", "tiers": []any{
		map[string]any{"up_to": 100, "unit_amount": 1000, "flat_amount": 0},
		map[string]any{"up_to": 200, "unit_amount": 1500, "flat_amount": 0},
		map[string]any{"up_to": nil, "unit_amount": 2000, "flat_amount": 5000}}})

	// Cycle 1: the anchor (2022) is long past, so the first slot whose date
	// has not begun: 15 February 2026 at the anchor's time. Its amount is
	// fixed at 00:00 UTC the day before, which ends the window that starts
	// at the activation.
	cycle := b.only(planID)
	cycleID := cycle["id"].(string)
	want(t, "cycle 1", cycle, "cycle_number", 1, "type", "SCHEDULED", "status", "SCHEDULED", "scheduled_timestamp", "2026-02-15T16:23:52.000Z",
		"fix_at", "2026-02-14T00:00:00.000Z", "usage_window", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-02-14T00:00:00.000Z"},
		"currency", "IDR", "amount", 100000, "amount_fixed_at", nil, "attempt_count", 0, "attempt_details", []any{}, "plan_id", planID,
		"customer_id", custID, "reference_id", "test_reference_id", "recurring_action", "PAYMENT", "invoice_id", nil)
	var next struct {
		Action string    `bun:"next_action"`
		At     time.Time `bun:"next_action_at"`
	}
	if err := b.db.Bun.NewRaw("SELECT next_action, next_action_at FROM recurring_cycles WHERE id = ?", cycleID).Scan(context.Background(), &next); err != nil ||
		next.Action != "FIX_AMOUNT" || !next.At.Equal(time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next action %+v (%v)", next, err)
	}
	// The activation's events, in the outbox with the plan.
	if got := b.eventTypes()[before:]; len(got) != 2 || !slices.Contains(got, "recurring.plan.activated") || !slices.Contains(got, "recurring.cycle.created") {
		t.Fatalf("events: %v", b.eventTypes())
	}
	want(t, "recurring.plan.activated", b.eventData("recurring.plan.activated")[0], "id", planID, "status", "ACTIVE")
	want(t, "recurring.cycle.created", b.eventData("recurring.cycle.created")[0], "id", cycleID, "scheduled_timestamp", "2026-02-15T16:23:52.000Z")

	// Usage: 250.5 kWh in the window, and one reading from before the
	// activation, which the plan never bills.
	b.advance("2026-02-10T12:00:00Z")
	events := []any{
		map[string]any{"event_id": "kwh-0", "customer_id": custID, "meter": "electricity_kwh", "quantity": 40, "timestamp": "2026-01-31T10:00:00Z"},
		map[string]any{"event_id": "kwh-1", "customer_id": custID, "meter": "electricity_kwh", "quantity": "120.25", "timestamp": "2026-02-01T08:00:00Z"},
		map[string]any{"event_id": "kwh-2", "customer_id": custID, "meter": "electricity_kwh", "quantity": 130.25, "timestamp": "2026-02-09T08:00:00Z"},
	}
	if r := b.call("POST", "/usage_events", map[string]any{"events": events}); r.status != 200 || r.body["accepted"] != json.Number("3") {
		t.Fatalf("usage: %d %s", r.status, r.raw)
	}
	u := b.call("GET", "/customers/"+custID+"/usage", nil)
	if u.status != 200 || len(u.body["plans"].([]any)) != 1 {
		t.Fatalf("usage preview: %d %s", u.status, u.raw)
	}
	want(t, "preview", u.body, "customer_id", custID, "as_of", "2026-02-10T12:00:00.000Z")
	pu := u.body["plans"].([]any)[0].(map[string]any)
	want(t, "plan usage", pu, "plan_id", planID, "cycle_id", cycleID, "cycle_number", 1, "currency", "IDR",
		"window", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-02-10T12:00:00.000Z"}, "closes_at", "2026-02-14T00:00:00.000Z",
		"base_amount", 100000, "usage_amount", 356000, "estimated_amount", 456000)
	mu := pu["meters"].([]any)[0].(map[string]any)
	want(t, "meter usage", mu, "meter", "electricity_kwh", "unit", "kWh", "quantity", 250.5, "event_count", 2, "amount", 356000,
		"minimum_top_up", 0, "total", 356000, "late_event_count", 0, "tiers", []any{
			map[string]any{"from": 0, "to": 100, "quantity": 100, "unit_amount": 1000, "flat_amount": 0, "amount": 100000},
			map[string]any{"from": 100, "to": 200, "quantity": 100, "unit_amount": 1500, "flat_amount": 0, "amount": 150000},
			map[string]any{"from": 200, "to": nil, "quantity": 50.5, "unit_amount": 2000, "flat_amount": 5000, "amount": 106000}})

	// The utility sets the amount the day before the cycle's date: accepted
	// to the last second, refused from 00:00:00 UTC of the date.
	b.advance("2026-02-14T23:59:59Z")
	path := "/recurring/plans/" + planID + "/cycles/" + cycleID
	p := b.call("PATCH", path, map[string]any{"amount": 456000, "metadata": map[string]any{"kwh": "250.5"}})
	if p.status != 200 {
		t.Fatalf("PATCH at 23:59:59: %d %s", p.status, p.raw)
	}
	want(t, "patched cycle", p.body, "amount", 456000, "metadata", map[string]any{"kwh": "250.5"}, "updated", "2026-02-14T23:59:59.000Z",
		"scheduled_timestamp", "2026-02-15T16:23:52.000Z", "status", "SCHEDULED")
	b.advance("2026-02-15T00:00:00Z")
	b.call("PATCH", path, map[string]any{"amount": 1}).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("POST", path+"/cancel", nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	want(t, "cycle after the refusals", b.call("GET", path, nil).body, "amount", 456000, "status", "SCHEDULED")

	// The window has closed (its amount awaits the engine): the preview
	// shows the next window, and the closed window's readings are not late.
	pu = b.call("GET", "/customers/"+custID+"/usage", nil).body["plans"].([]any)[0].(map[string]any)
	want(t, "next window", pu, "cycle_id", nil, "cycle_number", 2, "closes_at", nil, "usage_amount", 0,
		"window", map[string]any{"start": "2026-02-14T00:00:00.000Z", "end": "2026-02-15T00:00:00.000Z"})
	want(t, "next window meter", pu["meters"].([]any)[0].(map[string]any), "quantity", 0, "late_event_count", 0)
}
