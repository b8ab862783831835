package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	unknownPlan     = "repl-00000000-0000-7000-8000-000000000000"
	unknownCycle    = "recy-00000000-0000-7000-8000-000000000000"
	unknownSchedule = "resc-00000000-0000-7000-8000-000000000000"
	unknownCustomer = "cust-00000000-0000-7000-8000-000000000000"
	unknownSecret   = "auth_0000000000000000000000000000000000000000000000000000000000000000"
)

func init() {
	cycles := "/recurring/plans/" + unknownPlan + "/cycles"
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "plans",
		run:  openAPIPlans,
		calls: [][3]string{
			{"POST", "/recurring/plans", `{"reference_id":"x"}`},
			{"GET", "/recurring/plans", ""},
			{"GET", "/recurring/plans/" + unknownPlan, ""},
			{"PATCH", "/recurring/plans/" + unknownPlan, `{"amount":1}`},
			{"POST", "/recurring/plans/" + unknownPlan + "/deactivate", `{}`},
			{"GET", cycles, ""},
			{"GET", cycles + "/" + unknownCycle, ""},
			{"PATCH", cycles + "/" + unknownCycle, `{"amount":1}`},
			{"POST", cycles + "/" + unknownCycle + "/cancel", `{}`},
			{"GET", "/recurring/schedules/" + unknownSchedule, ""},
			{"PATCH", "/recurring/schedules/" + unknownSchedule, `{"interval_count":2}`},
			{"GET", "/customers/" + unknownCustomer + "/usage", ""},
		},
		pages: [][3]string{
			{"GET", "/authorize/" + unknownSecret, ""},
			{"POST", "/authorize/" + unknownSecret, "channel_code=DANA"},
			{"POST", "/authorize/" + unknownSecret + "/simulate", "outcome=complete"},
		},
	})
}

// browsePage sends a page request without following redirects and returns
// its status and Location.
func browsePage(t *testing.T, b *bundle, method, target string, form url.Values) (int, string) {
	t.Helper()
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var resp *http.Response
	var err error
	if method == "GET" {
		resp, err = c.Get(target)
	} else {
		resp, err = c.PostForm(target, form)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location")
}

func openAPIPlans(t *testing.T, e *openAPIEnv) {
	b := e.b
	e.ok(t, b.call("POST", "/meters", map[string]any{"code": "oa_plan_kwh", "name": "Electricity", "unit": "kWh", "aggregation": "SUM"}), "meter")
	custID := e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-plan-1", "individual_detail": map[string]any{"given_names": "Siti"}}), "customer").body["id"].(string)
	tokenID := b.tokenOf(custID, "ID", "IDR")
	body := change(sourcePlan(custID, tokenID), "usage_charges.0.meter", "oa_plan_kwh")
	body = change(body, "items", []any{map[string]any{"type": "DIGITAL_SERVICE", "name": "Base fee", "net_unit_amount": "100000", "quantity": 1}})
	body = change(body, "review_policy", map[string]any{"mode": "AUTO", "max_total": 1000000, "usage_factor": 3})
	body = change(body, "metadata", map[string]any{"tariff": "R-1"})

	// POST /recurring/plans.
	plan := e.ok(t, b.call("POST", "/recurring/plans", body, "idempotency-key", "oa-recurring-plan"), "create plan")
	planID, schedID := plan.body["id"].(string), plan.body["schedule_id"].(string)
	if r := e.ok(t, b.call("POST", "/recurring/plans", body, "idempotency-key", "oa-recurring-plan"), "replay"); r.header.Get("idempotent-replayed") != "true" {
		t.Fatal("replay not marked")
	}
	b.call("POST", "/recurring/plans", change(body, "amount", 1), "idempotency-key", "oa-recurring-plan").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", "/recurring/plans", change(body, "currency", "EUR")).wantError(t, 400, "API_VALIDATION_ERROR", "currency")
	b.call("POST", "/recurring/plans", change(body, "customer_id", unknownCustomer)).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/recurring/plans", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", "/recurring/plans", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", "/recurring/plans", body).wantError(t, 401, "INVALID_API_KEY", "")
	waiting := e.ok(t, b.call("POST", "/recurring/plans", change(change(body, "payment_methods", "(absent)"), "reference_id", "oa-waiting")), "plan without a token")
	authURL := waiting.body["actions"].([]any)[0].(map[string]any)["url"].(string)

	// GET /recurring/plans and /recurring/plans/{id}.
	e.ok(t, b.call("GET", "/recurring/plans?customer_id="+custID, nil), "list")
	e.ok(t, b.call("GET", "/recurring/plans?limit=1&after_id="+planID, nil), "list after")
	b.call("GET", "/recurring/plans?limit=0", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
	b.call("GET", "/recurring/plans?customer_id="+unknownCustomer, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/recurring/plans", nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("GET", "/recurring/plans/"+planID, nil), "get")
	b.callWithKey(e.otherKey, "GET", "/recurring/plans/"+planID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/recurring/plans/"+planID, nil).wantError(t, 401, "INVALID_API_KEY", "")

	// PATCH /recurring/plans/{id}.
	path := "/recurring/plans/" + planID
	patch := map[string]any{"amount": 120000, "items": nil, "description": "R-1/900 VA", "review_policy": nil, "notification_config": nil,
		"usage_charges": []any{map[string]any{"meter": "oa_plan_kwh", "price": map[string]any{"model": "VOLUME", "tiers": []any{
			map[string]any{"up_to": "100", "unit_amount": 1000}, map[string]any{"up_to": nil, "unit_amount": 1500}}}}}}
	e.ok(t, b.call("PATCH", path, patch, "idempotency-key", "oa-recurring-plan-patch"), "patch")
	b.call("PATCH", path, map[string]any{"amount": 1}, "idempotency-key", "oa-recurring-plan-patch").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("PATCH", path, map[string]any{"currency": "PHP"}).wantError(t, 400, "API_VALIDATION_ERROR", "currency")
	b.call("PATCH", "/recurring/plans/"+unknownPlan, map[string]any{"amount": 1}).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("PATCH", path, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("PATCH", path, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "PATCH", path, map[string]any{"amount": 1}).wantError(t, 401, "INVALID_API_KEY", "")

	// Cycles.
	cyclesPath := path + "/cycles"
	list := e.ok(t, b.call("GET", cyclesPath, nil), "cycles")
	cycleID := list.body["data"].([]any)[0].(map[string]any)["id"].(string)
	e.ok(t, b.call("GET", cyclesPath+"?limit=1&before_id="+cycleID, nil), "cycles before")
	b.call("GET", cyclesPath+"?after_id=a&before_id=b", nil).wantError(t, 400, "API_VALIDATION_ERROR", "before_id")
	b.call("GET", "/recurring/plans/"+unknownPlan+"/cycles", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", cyclesPath, nil).wantError(t, 401, "INVALID_API_KEY", "")
	cyclePath := cyclesPath + "/" + cycleID
	e.ok(t, b.call("GET", cyclePath, nil), "cycle")
	b.call("GET", cyclesPath+"/"+unknownCycle, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", cyclePath, nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("PATCH", cyclePath, map[string]any{"amount": "150000", "currency": "IDR", "metadata": nil,
		"scheduled_timestamp": "2026-02-16T08:00:00+07:00"}, "idempotency-key", "oa-recurring-cycle"), "patch cycle")
	b.call("PATCH", cyclePath, map[string]any{"amount": 1}, "idempotency-key", "oa-recurring-cycle").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("PATCH", cyclePath, map[string]any{"amount": 0.5}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("PATCH", cyclesPath+"/"+unknownCycle, map[string]any{"amount": 1}).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("PATCH", cyclePath, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("PATCH", cyclePath, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "PATCH", cyclePath, map[string]any{"amount": 1}).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("POST", cyclePath+"/cancel", nil, "idempotency-key", "oa-recurring-cancel"), "cancel cycle")
	b.call("POST", cyclePath+"/cancel", map[string]any{"x": 1}, "idempotency-key", "oa-recurring-cancel").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", cyclePath+"/cancel", nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("PATCH", cyclePath, map[string]any{"amount": 1}).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("POST", cyclePath+"/cancel", "[]").wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", cyclesPath+"/"+unknownCycle+"/cancel", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", cyclePath+"/cancel", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", cyclePath+"/cancel", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", cyclePath+"/cancel", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Schedules.
	schedPath := "/recurring/schedules/" + schedID
	e.ok(t, b.call("GET", schedPath, nil), "schedule")
	b.call("GET", "/recurring/schedules/"+unknownSchedule, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", schedPath, nil).wantError(t, 401, "INVALID_API_KEY", "")
	e.ok(t, b.call("PATCH", schedPath, map[string]any{"interval_count": 2, "total_recurrence": nil, "anchor_date": "2026-03-01T00:00:00Z"},
		"idempotency-key", "oa-recurring-schedule"), "patch schedule")
	b.call("PATCH", schedPath, map[string]any{"interval_count": 3}, "idempotency-key", "oa-recurring-schedule").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("PATCH", schedPath, map[string]any{"interval": "YEAR"}).wantError(t, 400, "API_VALIDATION_ERROR", "interval")
	b.call("PATCH", "/recurring/schedules/"+unknownSchedule, map[string]any{"interval_count": 2}).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("PATCH", schedPath, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("PATCH", schedPath, `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "PATCH", schedPath, map[string]any{"interval_count": 2}).wantError(t, 401, "INVALID_API_KEY", "")

	// GET /customers/{id}/usage.
	e.ok(t, b.call("GET", "/customers/"+custID+"/usage", nil), "usage")
	b.call("GET", "/customers/"+unknownCustomer+"/usage", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey("", "GET", "/customers/"+custID+"/usage", nil).wantError(t, 401, "INVALID_API_KEY", "")

	// Deactivate, then the 403 of a PATCH.
	e.ok(t, b.call("POST", path+"/deactivate", map[string]any{}, "idempotency-key", "oa-recurring-stop"), "deactivate")
	b.call("POST", path+"/deactivate", map[string]any{"x": 1}, "idempotency-key", "oa-recurring-stop").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	b.call("POST", path+"/deactivate", "[]").wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/recurring/plans/"+unknownPlan+"/deactivate", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", path+"/deactivate", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
	b.call("POST", path+"/deactivate", `{}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
	b.callWithKey("", "POST", path+"/deactivate", nil).wantError(t, 401, "INVALID_API_KEY", "")
	b.call("PATCH", path, map[string]any{"amount": 1}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")

	// The AUTH page.
	page := func(method, target string, form url.Values, want int) string {
		t.Helper()
		status, location := browsePage(t, b, method, target, form)
		if status != want {
			t.Fatalf("%s %s: %d, want %d", method, target, status, want)
		}
		return location
	}
	page("GET", authURL, nil, 200)
	page("GET", b.srv.URL+"/authorize/"+unknownSecret, nil, 404)
	page("POST", authURL+"/simulate", url.Values{"outcome": {"complete"}}, 403) // nothing started yet
	page("POST", authURL, url.Values{"channel_code": {"BITCOIN"}}, 400)
	if to := page("POST", authURL, url.Values{"channel_code": {"DANA"}}, 303); to != authURL {
		t.Fatalf("start: to %q", to)
	}
	page("GET", authURL, nil, 200)
	page("POST", authURL+"/simulate", url.Values{"outcome": {"later"}}, 400)
	page("POST", b.srv.URL+"/authorize/"+unknownSecret, url.Values{"channel_code": {"DANA"}}, 404)
	page("POST", b.srv.URL+"/authorize/"+unknownSecret+"/simulate", url.Values{"outcome": {"fail"}}, 404)
	if to := page("POST", authURL+"/simulate", url.Values{"outcome": {"complete"}}, 303); to != authURL {
		t.Fatalf("simulate: to %q", to)
	}
	b.deliver()
	if r := b.call("GET", "/recurring/plans/"+waiting.body["id"].(string), nil); r.body["status"] != "ACTIVE" {
		t.Fatalf("after the AUTH page: %s", r.raw)
	}
	// A live business without a provider cannot start saving.
	liveCust := e.ok(t, b.callWithKey(e.liveKey, "POST", "/customers", map[string]any{"reference_id": "oa-live", "individual_detail": map[string]any{"given_names": "L"}}), "live customer")
	b.callWithKey(e.liveKey, "POST", "/meters", map[string]any{"code": "oa_plan_kwh", "name": "E", "unit": "kWh", "aggregation": "SUM"})
	live := e.ok(t, b.callWithKey(e.liveKey, "POST", "/recurring/plans", change(change(body, "payment_methods", "(absent)"), "customer_id", liveCust.body["id"])), "live plan")
	liveURL := live.body["actions"].([]any)[0].(map[string]any)["url"].(string)
	if !strings.HasPrefix(liveURL, b.srv.URL+"/authorize/") {
		t.Fatalf("live AUTH url %q", liveURL)
	}
	page("POST", liveURL, url.Values{"channel_code": {"DANA"}}, 403)
}
