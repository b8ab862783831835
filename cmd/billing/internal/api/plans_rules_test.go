package api_test

import (
	"strings"
	"testing"

	"github.com/tagihan/billing/internal/business"
)

// change returns a copy of m with the value at path (dots between keys,
// numbers for list items) set to v; v "(absent)" deletes it.
func change(m map[string]any, path string, v any) map[string]any {
	out := deepCopy(m).(map[string]any)
	keys := strings.Split(path, ".")
	var cur any = out
	for i, k := range keys {
		last := i == len(keys)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if v == "(absent)" {
					delete(c, k)
				} else {
					c[k] = v
				}
				return out
			}
			cur = c[k]
		case []any:
			n := 0
			for _, d := range k {
				n = n*10 + int(d-'0')
			}
			if last {
				c[n] = v
				return out
			}
			cur = c[n]
		}
	}
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, vv := range t {
			out[k] = deepCopy(vv)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, vv := range t {
			out[i] = deepCopy(vv)
		}
		return out
	}
	return v
}

// TestPlanValidation: every rule of a plan gets a 400 naming the field,
// and a refused plan leaves nothing behind.
func TestPlanValidation(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	other := b.call("POST", "/customers", map[string]any{"reference_id": "neighbour", "individual_detail": map[string]any{"given_names": "Budi"}}).body["id"].(string)
	othersToken := b.tokenOf(other, "ID", "IDR")
	phpToken := b.tokenOf(custID, "PH", "PHP")
	base := sourcePlan(custID, tokenID)
	tier := func(upTo any, unit any) map[string]any { return map[string]any{"up_to": upTo, "unit_amount": unit} }
	tooMany := map[string]any{}
	for i := range 51 {
		tooMany[strings.Repeat("k", i+1)] = i
	}
	cases := []struct {
		path  string
		value any
		field string
	}{
		{"reference_id", "(absent)", "reference_id"},
		{"reference_id", strings.Repeat("r", 256), "reference_id"},
		{"customer_id", "(absent)", "customer_id"},
		{"customer_id", "Honey", "customer_id"},
		{"recurring_action", "REFUND", "recurring_action"},
		{"currency", "(absent)", "currency"},
		{"currency", "EUR", "currency"},
		{"currency", "USD", "currency"},
		{"currency", "PHP", "currency"}, // the token charges IDR
		{"amount", "(absent)", "amount"},
		{"amount", -1, "amount"},
		{"amount", 100000.5, "amount"},
		{"amount", "lots", "amount"},
		{"schedule", "(absent)", "schedule"},
		{"schedule_id", "resc-00000000-0000-7000-8000-000000000000", "schedule_id"},
		{"schedule.reference_id", "(absent)", "schedule.reference_id"},
		{"schedule.interval", "YEAR", "schedule.interval"},
		{"schedule.interval", "(absent)", "schedule.interval"},
		{"schedule.interval_count", 0, "schedule.interval_count"},
		{"schedule.interval_count", 366, "schedule.interval_count"},
		{"schedule.interval_count", "(absent)", "schedule.interval_count"},
		{"schedule.interval_count", 1.5, "schedule.interval_count"},
		{"schedule.total_recurrence", 0, "schedule.total_recurrence"},
		{"schedule.total_recurrence", 32001, "schedule.total_recurrence"},
		{"schedule.anchor_date", "(absent)", "schedule.anchor_date"},
		{"schedule.anchor_date", "15/02/2026", "schedule.anchor_date"},
		{"schedule.anchor_date", "1999-12-31T23:59:59Z", "schedule.anchor_date"},
		{"schedule.retry_interval", "WEEK", "schedule.retry_interval"},
		{"schedule.retry_interval_count", 0, "schedule.retry_interval_count"},
		{"schedule.retry_interval_count", 366, "schedule.retry_interval_count"},
		{"schedule.total_retry", 0, "schedule.total_retry"},
		{"schedule.total_retry", 11, "schedule.total_retry"},
		{"schedule.total_retry", "(absent)", "schedule.retry_interval_count"}, // retries without total_retry
		{"schedule.failed_attempt_notifications", []any{1, 5}, "schedule.failed_attempt_notifications[1]"},
		{"schedule.failed_attempt_notifications", []any{0}, "schedule.failed_attempt_notifications[0]"},
		{"schedule.failed_attempt_notifications", []any{2, 2}, "schedule.failed_attempt_notifications[1]"},
		{"payment_methods", []any{map[string]any{"payment_token_id": "pt-1", "rank": 1}}, "payment_methods[0].payment_token_id"},
		{"payment_methods", []any{map[string]any{"payment_token_id": tokenID, "rank": 0}}, "payment_methods[0].rank"},
		{"payment_methods", []any{map[string]any{"payment_token_id": tokenID, "rank": 1}, map[string]any{"payment_token_id": tokenID, "rank": 2}}, "payment_methods[1].payment_token_id"},
		{"payment_methods", []any{map[string]any{"payment_token_id": tokenID, "rank": 1}, map[string]any{"payment_token_id": phpToken, "rank": 1}}, "payment_methods[1].rank"},
		{"payment_methods", []any{map[string]any{"payment_token_id": tokenID}, map[string]any{"payment_token_id": othersToken}}, "payment_methods[1].payment_token_id"},
		{"payment_methods", []any{map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}}, "payment_methods"},
		{"immediate_action_type", "HALF_AMOUNT", "immediate_action_type"},
		{"notification_config.recurring_failed", []any{"PIGEON"}, "notification_config.recurring_failed[0]"},
		{"notification_config.recurring_created", []any{"EMAIL", "EMAIL"}, "notification_config.recurring_created[1]"},
		{"notification_config.locale", "fr", "notification_config.locale"},
		{"failed_cycle_action", "RETRY", "failed_cycle_action"},
		{"metadata", tooMany, "metadata"},
		{"description", strings.Repeat("d", 1001), "description"},
		{"success_return_url", "ftp://example.com/ok", "success_return_url"},
		{"failure_return_url", "/relative", "failure_return_url"},
		{"items", []any{map[string]any{"type": "FEE", "name": "Base fee", "net_unit_amount": 50000, "quantity": 1}}, "amount"},
		{"items", []any{map[string]any{"type": "GIFT", "name": "x", "net_unit_amount": 100000, "quantity": 1}}, "items[0].type"},
		{"items", []any{map[string]any{"type": "FEE", "name": "x", "net_unit_amount": 100000, "quantity": 0}}, "items[0].quantity"},
		{"items", []any{map[string]any{"type": "FEE", "name": "x", "quantity": 1}}, "items[0].net_unit_amount"},
		{"items", []any{map[string]any{"type": "FEE", "net_unit_amount": 100000, "quantity": 1}}, "items[0].name"},
		{"usage_charges.0.meter", "gas_m3", "usage_charges[0].meter"},
		{"usage_charges.0.meter", "", "usage_charges[0].meter"},
		{"usage_charges.0.price", "(absent)", "usage_charges[0].price"},
		{"usage_charges.0.price.model", "FLAT", "usage_charges[0].price.model"},
		{"usage_charges.0.price.tiers", []any{tier(200, 1000), tier(100, 1500), tier(nil, 2000)}, "usage_charges[0].price.tiers[1].up_to"},
		{"usage_charges.0.price.tiers", []any{tier(nil, 1000), tier(nil, 1500)}, "usage_charges[0].price.tiers[0].up_to"},
		{"usage_charges.0.price.tiers", []any{tier(100, 1000), tier(200, 1500)}, "usage_charges[0].price.tiers[1].up_to"},
		{"usage_charges.0.price.tiers", []any{tier(100, 1000), map[string]any{"up_to": nil}}, "usage_charges[0].price.tiers[1].unit_amount"},
		{"usage_charges.0.price.tiers", []any{tier(100, -1), tier(nil, 1)}, "usage_charges[0].price.tiers[0].unit_amount"},
		{"usage_charges.0.price", map[string]any{"model": "PER_UNIT"}, "usage_charges[0].price.unit_amount"},
		{"usage_charges.0.price", map[string]any{"model": "PACKAGE", "package_size": 0, "package_amount": 5000, "rounding": "UP"}, "usage_charges[0].price.package_size"},
		{"usage_charges.0.price", map[string]any{"model": "PACKAGE", "package_size": 10, "package_amount": 5000, "rounding": "NEAREST"}, "usage_charges[0].price.rounding"},
		{"usage_charges.0.minimum_amount", 0.5, "usage_charges[0].minimum_amount"},
		{"usage_charges", []any{map[string]any{"meter": "electricity_kwh", "price": map[string]any{"model": "PER_UNIT", "unit_amount": 1}},
			map[string]any{"meter": "electricity_kwh", "price": map[string]any{"model": "PER_UNIT", "unit_amount": 2}}}, "usage_charges[1].meter"},
		{"amount_lead_days", 0, "amount_lead_days"},
		{"amount_lead_days", 29, "amount_lead_days"},
		{"amount_lead_days", 1.5, "amount_lead_days"},
		{"review_policy", "SOMETIMES", "review_policy.mode"},
		{"review_policy", 42, "review_policy"},
		{"review_policy", map[string]any{"mode": "AUTO", "usage_factor": 0.5}, "review_policy.usage_factor"},
		{"review_policy", map[string]any{"mode": "AUTO", "max_total": -1}, "review_policy.max_total"},
	}
	before := [3]int{b.count("recurring_plans"), b.count("recurring_schedules"), b.count("recurring_cycles")}
	for _, tc := range cases {
		body := change(base, tc.path, tc.value)
		if tc.path == "schedule_id" {
			body = change(base, "schedule_id", tc.value) // with schedule too
		}
		r := b.call("POST", "/recurring/plans", body)
		if r.status != 400 {
			t.Errorf("%s = %v: %d %s", tc.path, tc.value, r.status, r.raw)
			continue
		}
		r.wantError(t, 400, "API_VALIDATION_ERROR", tc.field)
	}
	b.call("POST", "/recurring/plans", "not json").wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/recurring/plans", "[]").wantError(t, 400, "API_VALIDATION_ERROR", "body")
	b.call("POST", "/recurring/plans", change(change(base, "schedule", "(absent)"), "schedule_id", "resc-00000000-0000-7000-8000-000000000000")).
		wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/recurring/plans", change(base, "customer_id", "cust-00000000-0000-7000-8000-000000000000")).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("POST", "/recurring/plans", change(base, "payment_methods", []any{map[string]any{"payment_token_id": "pt-00000000-0000-7000-8000-000000000000"}})).
		wantError(t, 404, "DATA_NOT_FOUND", "")
	if after := [3]int{b.count("recurring_plans"), b.count("recurring_schedules"), b.count("recurring_cycles")}; after != before {
		t.Fatalf("refused plans changed rows: %v → %v", before, after)
	}

	// What is accepted: strings for amounts, unknown fields (Xendit's SDKs
	// send them), items adding up, the longest lead a month allows, a bare
	// review mode, Indonesian notifications, and an existing schedule.
	ok := change(base, "amount", "100000")
	ok = change(ok, "sdk_version", "7.0.0")
	ok = change(ok, "items", []any{
		map[string]any{"type": "DIGITAL_SERVICE", "name": "Base fee", "net_unit_amount": 60000, "quantity": 2, "url": "https://pln.example/tariff"},
		map[string]any{"type": "DISCOUNT", "name": "Loyalty", "net_unit_amount": -20000, "quantity": 1}})
	ok = change(ok, "amount_lead_days", 28)
	ok = change(ok, "review_policy", "MANUAL")
	ok = change(ok, "notification_config.locale", "id")
	r := b.call("POST", "/recurring/plans", ok)
	if r.status != 200 {
		t.Fatalf("valid plan: %d %s", r.status, r.raw)
	}
	want(t, "accepted plan", r.body, "amount", 100000, "amount_lead_days", 28,
		"review_policy", map[string]any{"mode": "MANUAL", "max_total": nil, "usage_factor": 3})
	want(t, "its cycle", b.only(r.body["id"].(string)), "fix_at", "2026-01-18T00:00:00.000Z", "scheduled_timestamp", "2026-02-15T16:23:52.000Z",
		"usage_window", map[string]any{"start": "2026-01-18T00:00:00.000Z", "end": "2026-01-18T00:00:00.000Z"})
	shared := change(change(base, "schedule", "(absent)"), "schedule_id", r.body["schedule_id"])
	shared = change(shared, "review_policy", map[string]any{"mode": "AUTO", "max_total": 2000000, "usage_factor": "2.5"})
	s := b.call("POST", "/recurring/plans", shared)
	if s.status != 200 || s.body["schedule_id"] != r.body["schedule_id"] {
		t.Fatalf("plan on an existing schedule: %d %s", s.status, s.raw)
	}
	want(t, "review policy", s.body, "review_policy", map[string]any{"mode": "AUTO", "max_total": 2000000, "usage_factor": 2.5})
	b.call("POST", "/recurring/plans", change(shared, "amount_lead_days", 29)).wantError(t, 400, "API_VALIDATION_ERROR", "amount_lead_days")

	// The least a plan needs: no retries, notifications, charges or tokens.
	least := map[string]any{"reference_id": "least", "customer_id": custID, "currency": "IDR", "amount": 0,
		"schedule": map[string]any{"reference_id": "weekly", "interval": "WEEK", "interval_count": 1, "anchor_date": "2026-02-02T00:00:00Z"}}
	r = b.call("POST", "/recurring/plans", least)
	if r.status != 200 {
		t.Fatalf("least plan: %d %s", r.status, r.raw)
	}
	want(t, "least plan", r.body, "status", "REQUIRES_ACTION", "amount", 0, "recurring_action", "PAYMENT", "failed_cycle_action", "RESUME",
		"notification_config", nil, "items", nil, "metadata", nil, "usage_charges", []any{}, "payment_methods", []any{}, "immediate_action_type", nil)
	want(t, "least schedule", r.body["schedule"].(map[string]any), "total_recurrence", nil, "retry_interval", nil, "retry_interval_count", nil,
		"total_retry", nil, "failed_attempt_notifications", []any{})
	sid := r.body["schedule_id"].(string)
	want(t, "notifications cleared", b.call("PATCH", "/recurring/schedules/"+sid, map[string]any{"failed_attempt_notifications": nil}).body,
		"failed_attempt_notifications", []any{})
}

// TestPlanTenancy: another business's customer, token, plan, schedule and
// cycle are 404, never its data, and never changed.
func TestPlanTenancy(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	plan := b.call("POST", "/recurring/plans", sourcePlan(custID, tokenID)).body
	planID, schedID := plan["id"].(string), plan["schedule_id"].(string)
	cycleID := b.only(planID)["id"].(string)

	_, key := b.newBusiness(business.ModeSandbox)
	theirs := b.callWithKey(key, "POST", "/customers", map[string]any{"reference_id": "theirs", "individual_detail": map[string]any{"given_names": "X"}}).body["id"].(string)
	b.callWithKey(key, "POST", "/meters", map[string]any{"code": "electricity_kwh", "name": "E", "unit": "kWh", "aggregation": "SUM"})

	// Their plan may name neither our customer nor our token nor our schedule.
	b.callWithKey(key, "POST", "/recurring/plans", sourcePlan(custID)).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(key, "POST", "/recurring/plans", sourcePlan(theirs, tokenID)).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(key, "POST", "/recurring/plans", change(change(sourcePlan(theirs), "schedule", "(absent)"), "schedule_id", schedID)).
		wantError(t, 404, "DATA_NOT_FOUND", "")
	// Nor read or change ours.
	for _, c := range [][3]string{
		{"GET", "/recurring/plans/" + planID, ""},
		{"PATCH", "/recurring/plans/" + planID, `{"amount": 1}`},
		{"POST", "/recurring/plans/" + planID + "/deactivate", ""},
		{"GET", "/recurring/plans/" + planID + "/cycles", ""},
		{"GET", "/recurring/plans/" + planID + "/cycles/" + cycleID, ""},
		{"PATCH", "/recurring/plans/" + planID + "/cycles/" + cycleID, `{"amount": 1}`},
		{"POST", "/recurring/plans/" + planID + "/cycles/" + cycleID + "/cancel", ""},
		{"GET", "/recurring/schedules/" + schedID, ""},
		{"PATCH", "/recurring/schedules/" + schedID, `{"interval_count": 2}`},
		{"GET", "/customers/" + custID + "/usage", ""},
		{"GET", "/recurring/plans?customer_id=" + custID, ""},
	} {
		var body any
		if c[2] != "" {
			body = c[2]
		}
		b.callWithKey(key, c[0], c[1], body).wantError(t, 404, "DATA_NOT_FOUND", "")
	}
	if list := b.callWithKey(key, "GET", "/recurring/plans", nil); len(list.body["data"].([]any)) != 0 {
		t.Fatalf("their list shows our plans: %s", list.raw)
	}
	// A cycle is found only under its own plan.
	mine := b.call("POST", "/recurring/plans", withField(sourcePlan(custID, tokenID), "reference_id", "second")).body["id"].(string)
	b.call("GET", "/recurring/plans/"+mine+"/cycles/"+cycleID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("GET", "/recurring/plans/repl-nope", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	want(t, "unchanged", b.call("GET", "/recurring/plans/"+planID, nil).body, "status", "ACTIVE", "amount", 100000)
	want(t, "unchanged cycle", b.only(planID), "status", "SCHEDULED", "amount", 100000)
	want(t, "unchanged schedule", b.call("GET", "/recurring/schedules/"+schedID, nil).body, "interval_count", 1)
}
