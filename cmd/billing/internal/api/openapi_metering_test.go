package api_test

import (
	"fmt"
	"strings"
	"testing"
)

func init() {
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "metering",
		run: func(t *testing.T, e *openAPIEnv) {
			b := e.b
			kwh := e.ok(t, b.call("POST", "/meters", map[string]any{"code": "oa_kwh", "name": "Electricity", "unit": "kWh", "aggregation": "SUM"}, "idempotency-key", "oa-meter"), "create meter")
			meterID := kwh.body["id"].(string)
			e.ok(t, b.call("POST", "/meters", map[string]any{"code": "oa_sites", "name": "Sites", "unit": "site", "aggregation": "UNIQUE_COUNT", "value_property": "site"}), "create unique meter")
			b.call("POST", "/meters", map[string]any{"code": "Bad Code", "name": "x", "unit": "kWh", "aggregation": "AVG"}).wantError(t, 400, "API_VALIDATION_ERROR", "code")
			b.call("POST", "/meters", map[string]any{"code": "oa_kwh", "name": "Again", "unit": "kWh", "aggregation": "SUM"}).wantError(t, 409, "DUPLICATE_ERROR", "code")
			b.call("POST", "/meters", map[string]any{"code": "oa_other", "name": "x", "unit": "kWh", "aggregation": "SUM"}, "idempotency-key", "oa-meter").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("POST", "/meters", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("POST", "/meters", `{"code":"x"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.callWithKey("", "POST", "/meters", nil).wantError(t, 401, "INVALID_API_KEY", "")

			e.ok(t, b.call("GET", "/meters", nil), "list meters")
			e.ok(t, b.call("GET", "/meters?limit=1&after_id="+meterID, nil), "list meters after")
			b.call("GET", "/meters?limit=1000", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
			b.callWithKey("", "GET", "/meters", nil).wantError(t, 401, "INVALID_API_KEY", "")

			e.ok(t, b.call("GET", "/meters/"+meterID, nil), "get meter")
			b.callWithKey(e.otherKey, "GET", "/meters/"+meterID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.callWithKey("", "GET", "/meters/"+meterID, nil).wantError(t, 401, "INVALID_API_KEY", "")

			e.ok(t, b.call("PATCH", "/meters/"+meterID, map[string]any{"name": "Electricity (kWh)"}, "idempotency-key", "oa-rename"), "rename")
			b.call("PATCH", "/meters/"+meterID, map[string]any{"unit": "MWh"}).wantError(t, 400, "API_VALIDATION_ERROR", "unit")
			b.call("PATCH", "/meters/mtr-00000000-0000-7000-8000-000000000000", map[string]any{"name": "x"}).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.call("PATCH", "/meters/"+meterID, map[string]any{"name": "Other"}, "idempotency-key", "oa-rename").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("PATCH", "/meters/"+meterID, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("PATCH", "/meters/"+meterID, `{"name":"x"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.callWithKey("", "PATCH", "/meters/"+meterID, map[string]any{"name": "x"}).wantError(t, 401, "INVALID_API_KEY", "")

			// Usage: a customer of this business to report for.
			cust := e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-usage-1", "individual_detail": map[string]any{"given_names": "Ani"}}), "usage customer")
			custID := cust.body["id"].(string)
			batch := map[string]any{"events": []any{
				map[string]any{"event_id": "oa-u1", "customer_id": custID, "meter": "oa_kwh", "quantity": 1.25, "timestamp": "2026-01-31T23:00:00Z", "properties": map[string]any{"phase": 1}},
				map[string]any{"event_id": "oa-u2", "customer_reference_id": "oa-usage-1", "meter": "oa_sites", "timestamp": "2026-01-31T22:00:00+07:00", "properties": map[string]any{"site": "A"}},
				map[string]any{"event_id": "oa-u3", "customer_id": custID, "meter": "oa_kwh", "quantity": "-0.25", "correction_of": "oa-u1"},
				map[string]any{"event_id": "oa-u4", "customer_id": custID, "meter": "nope", "quantity": 1, "timestamp": "2026-01-31T23:00:00Z"},
				"not an event",
			}}
			r := e.ok(t, b.call("POST", "/usage_events", batch, "idempotency-key", "oa-usage"), "ingest batch")
			if r.body["accepted"].(interface{ String() string }).String() != "3" || len(r.body["rejected"].([]any)) != 2 {
				t.Fatalf("batch: %s", r.raw)
			}
			if r := e.ok(t, b.call("POST", "/usage_events", batch, "idempotency-key", "oa-usage"), "replay"); r.header.Get("idempotent-replayed") != "true" {
				t.Fatal("usage replay not marked")
			}
			single := map[string]any{"event_id": "oa-u5", "customer_id": custID, "meter": "oa_kwh", "quantity": "2", "timestamp": "2026-01-30T00:00:00Z"}
			e.ok(t, b.call("POST", "/usage_events", single), "single event")
			e.ok(t, b.call("POST", "/usage_events", single), "single event again: a duplicate")
			single["quantity"] = "3"
			b.call("POST", "/usage_events", single).wantError(t, 409, "DUPLICATE_ERROR", "event_id")
			b.call("POST", "/usage_events", map[string]any{"event_id": "oa-u6", "customer_id": custID, "meter": "oa_kwh", "quantity": -1, "timestamp": "2026-01-30T00:00:00Z"}).wantError(t, 400, "API_VALIDATION_ERROR", "quantity")
			b.call("POST", "/usage_events", map[string]any{"event_id": "oa-u7", "customer_id": "cust-00000000-0000-7000-8000-000000000000", "meter": "oa_kwh", "quantity": 1, "timestamp": "2026-01-30T00:00:00Z"}).wantError(t, 404, "DATA_NOT_FOUND", "customer_id")
			b.call("POST", "/usage_events", `{"events": {}}`).wantError(t, 400, "API_VALIDATION_ERROR", "events")
			b.call("POST", "/usage_events", fmt.Sprintf(`{"events": [%s{}]}`, strings.Repeat("{},", 10000))).wantError(t, 400, "API_VALIDATION_ERROR", "events")
			b.call("POST", "/usage_events", single, "idempotency-key", "oa-usage").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("POST", "/usage_events", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("POST", "/usage_events", `{"events":[]}`, "Content-Type", "text/csv").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.callWithKey("", "POST", "/usage_events", batch).wantError(t, 401, "INVALID_API_KEY", "")

			list := e.ok(t, b.call("GET", "/usage_events?customer_id="+custID+"&meter=oa_kwh&billed=false&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", nil), "list usage")
			if n := len(list.body["data"].([]any)); n != 3 {
				t.Fatalf("listed %d kWh events: %s", n, list.raw)
			}
			e.ok(t, b.call("GET", "/usage_events?limit=2", nil), "list usage page")
			b.call("GET", "/usage_events?billed=maybe", nil).wantError(t, 400, "API_VALIDATION_ERROR", "billed")
			b.call("GET", "/usage_events?from=yesterday", nil).wantError(t, 400, "API_VALIDATION_ERROR", "from")
			b.callWithKey("", "GET", "/usage_events", nil).wantError(t, 401, "INVALID_API_KEY", "")
		},
		calls: [][3]string{
			{"POST", "/meters", `{"code":"x"}`},
			{"GET", "/meters", ""},
			{"GET", "/meters/mtr-00000000-0000-7000-8000-000000000000", ""},
			{"PATCH", "/meters/mtr-00000000-0000-7000-8000-000000000000", `{"name":"x"}`},
			{"POST", "/usage_events", `{"events":[]}`},
			{"GET", "/usage_events", ""},
		},
	})
}
