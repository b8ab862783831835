package api_test

import (
	"testing"

	"github.com/tagihan/billing/internal/business"
)

// TestUsageTenancy: a business can report usage only for its own customers
// and meters, and sees only its own events.
func TestUsageTenancy(t *testing.T) {
	b := setup(t)
	cust := b.call("POST", "/customers", siti).body["id"].(string)
	b.call("POST", "/meters", map[string]any{"code": "kwh", "name": "kWh", "unit": "kWh", "aggregation": "SUM"})
	event := map[string]any{"event_id": "e1", "customer_id": cust, "meter": "kwh", "quantity": 5, "timestamp": "2026-01-31T12:00:00Z"}
	if r := b.call("POST", "/usage_events", event); r.status != 200 || r.body["accepted"].(interface{ String() string }).String() != "1" {
		t.Fatalf("own event: %d %s", r.status, r.raw)
	}

	_, otherKey := b.newBusiness(business.ModeSandbox)
	// Another business cannot report for this business's customer, nor use
	// its meter, nor see its events or meters.
	b.callWithKey(otherKey, "POST", "/usage_events", event).wantError(t, 404, "DATA_NOT_FOUND", "meter")
	b.callWithKey(otherKey, "POST", "/meters", map[string]any{"code": "kwh", "name": "kWh", "unit": "kWh", "aggregation": "SUM"})
	b.callWithKey(otherKey, "POST", "/usage_events", event).wantError(t, 404, "DATA_NOT_FOUND", "customer_id")
	if r := b.callWithKey(otherKey, "GET", "/usage_events", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business sees events: %s", r.raw)
	}
	if r := b.callWithKey(otherKey, "GET", "/usage_events?customer_id="+cust, nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business sees events by customer: %s", r.raw)
	}
	meters := b.call("GET", "/meters", nil).body["data"].([]any)
	b.callWithKey(otherKey, "GET", "/meters/"+meters[0].(map[string]any)["id"].(string), nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	// The same event_id is free in another business.
	otherCust := b.callWithKey(otherKey, "POST", "/customers", siti).body["id"].(string)
	event["customer_id"] = otherCust
	if r := b.callWithKey(otherKey, "POST", "/usage_events", event); r.status != 200 || r.body["accepted"].(interface{ String() string }).String() != "1" {
		t.Fatalf("same event_id in another business: %d %s", r.status, r.raw)
	}
	if r := b.call("GET", "/usage_events", nil); len(r.body["data"].([]any)) != 1 {
		t.Fatalf("own events: %s", r.raw)
	}
}

// TestUsageTimestampUsesTheSandboxClock: "5 minutes ahead" is judged by the
// business's clock, not the machine's.
func TestUsageTimestampUsesTheSandboxClock(t *testing.T) {
	b := setup(t)
	cust := b.call("POST", "/customers", siti).body["id"].(string)
	b.call("POST", "/meters", map[string]any{"code": "kwh", "name": "kWh", "unit": "kWh", "aggregation": "SUM"})
	at := func(ts string) response {
		return b.call("POST", "/usage_events", map[string]any{"event_id": ts, "customer_id": cust, "meter": "kwh", "quantity": 1, "timestamp": ts})
	}
	if r := at("2026-02-01T00:04:59Z"); r.status != 200 { // the sandbox clock reads 2026-01-31T23:59:59Z
		t.Fatalf("4m59s ahead: %d %s", r.status, r.raw)
	}
	at("2026-02-01T00:05:00Z").wantError(t, 400, "API_VALIDATION_ERROR", "timestamp")
	b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1h"})
	if r := at("2026-02-01T00:05:00Z"); r.status != 200 {
		t.Fatalf("after advancing the clock: %d %s", r.status, r.raw)
	}
}
