package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// activePlan creates the source document's plan with a token and returns
// the plan's and cycle 1's ids and the customer.
func (b *bundle) activePlan() (planID, cycleID, custID string) {
	b.t.Helper()
	custID = b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	r := b.call("POST", "/recurring/plans", sourcePlan(custID, tokenID))
	if r.status != 200 || r.body["status"] != "ACTIVE" {
		b.t.Fatalf("plan: %d %s", r.status, r.raw)
	}
	planID = r.body["id"].(string)
	return planID, b.only(planID)["id"].(string), custID
}

// TestPlanPatch: what a plan PATCH changes and when it applies.
func TestPlanPatch(t *testing.T) {
	b := setup(t)
	planID, cycleID, custID := b.activePlan()
	path := "/recurring/plans/" + planID
	cyclePath := path + "/cycles/" + cycleID

	// The base amount applies to the cycle whose amount is not fixed.
	r := b.call("PATCH", path, map[string]any{"amount": 150000, "description": "Tariff R-1/900 VA", "notification_config": nil,
		"review_policy": "MANUAL", "failed_cycle_action": "RESUME", "metadata": map[string]any{"tariff": "R-1"}})
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	want(t, "patched", r.body, "amount", 150000, "description", "Tariff R-1/900 VA", "notification_config", nil, "failed_cycle_action", "RESUME",
		"review_policy", map[string]any{"mode": "MANUAL", "max_total": nil, "usage_factor": 3}, "metadata", map[string]any{"tariff": "R-1"},
		"status", "ACTIVE", "updated", "2026-01-31T23:59:59.000Z")
	want(t, "cycle", b.call("GET", cyclePath, nil).body, "amount", 150000)
	// An override beats the base amount until it is removed.
	b.call("PATCH", cyclePath, map[string]any{"amount": 175000})
	b.call("PATCH", path, map[string]any{"amount": 160000})
	want(t, "overridden", b.call("GET", cyclePath, nil).body, "amount", 175000)
	want(t, "override removed", b.call("PATCH", cyclePath, map[string]any{"amount": nil}).body, "amount", 160000)

	// A new lead time moves the fix time of the cycle whose fix time has
	// not passed, and the window's end with it.
	want(t, "lead 3", b.call("PATCH", path, map[string]any{"amount_lead_days": 3}).body, "amount_lead_days", 3)
	want(t, "retimed cycle", b.call("GET", cyclePath, nil).body, "fix_at", "2026-02-12T00:00:00.000Z",
		"usage_window", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-02-12T00:00:00.000Z"})
	var nextAt time.Time
	if err := b.db.Bun.NewRaw("SELECT next_action_at FROM recurring_cycles WHERE id = ?", cycleID).Scan(context.Background(), &nextAt); err != nil ||
		!nextAt.Equal(time.Date(2026, 2, 12, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next_action_at %v (%v)", nextAt, err)
	}
	b.advance("2026-02-12T00:00:00Z")
	b.call("PATCH", path, map[string]any{"amount_lead_days": 1})
	want(t, "fix time passed: unchanged", b.call("GET", cyclePath, nil).body, "fix_at", "2026-02-12T00:00:00.000Z")

	// Usage charges: a new price, and a meter that does not exist.
	b.call("POST", "/meters", map[string]any{"code": "water_m3", "name": "Water", "unit": "m3", "aggregation": "SUM"})
	charges := []any{map[string]any{"meter": "water_m3", "price": map[string]any{"model": "PER_UNIT", "unit_amount": "1444.70"}, "minimum_amount": 5000}}
	r = b.call("PATCH", path, map[string]any{"usage_charges": charges})
	want(t, "usage charges", r.body, "usage_charges", []any{map[string]any{"meter": "water_m3", "description": nil,
		"price": map[string]any{"model": "PER_UNIT", "unit_amount": 1444.7}, "minimum_amount": 5000}})
	b.call("PATCH", path, map[string]any{"usage_charges": []any{map[string]any{"meter": "gas", "price": map[string]any{"model": "PER_UNIT", "unit_amount": 1}}}}).
		wantError(t, 400, "API_VALIDATION_ERROR", "usage_charges[0].meter")

	// Payment methods: the customer's tokens only, and an ACTIVE plan keeps
	// an ACTIVE one.
	neighbour := b.call("POST", "/customers", map[string]any{"reference_id": "n", "individual_detail": map[string]any{"given_names": "N"}}).body["id"].(string)
	b.call("PATCH", path, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": b.tokenOf(neighbour, "ID", "IDR"), "rank": 1}}}).
		wantError(t, 400, "API_VALIDATION_ERROR", "payment_methods[0].payment_token_id")
	b.call("PATCH", path, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": b.tokenOf(custID, "PH", "PHP"), "rank": 1}}}).
		wantError(t, 400, "API_VALIDATION_ERROR", "payment_methods[0].payment_token_id")
	b.call("PATCH", path, map[string]any{"payment_methods": []any{}}).wantError(t, 400, "API_VALIDATION_ERROR", "payment_methods")
	second := b.tokenOf(custID, "ID", "IDR")
	first := b.call("GET", path, nil).body["payment_methods"].([]any)[0].(map[string]any)["payment_token_id"]
	r = b.call("PATCH", path, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": first, "rank": 2}, map[string]any{"payment_token_id": second, "rank": 1}}})
	want(t, "ranked", r.body, "payment_methods", []any{map[string]any{"payment_token_id": second, "rank": 1}, map[string]any{"payment_token_id": first, "rank": 2}})

	// What a plan keeps for life, and the rules of the fields.
	for field, v := range map[string]any{"currency": "PHP", "customer_id": custID, "schedule": map[string]any{}, "reference_id": "x", "immediate_action_type": "FULL_AMOUNT"} {
		b.call("PATCH", path, map[string]any{field: v}).wantError(t, 400, "API_VALIDATION_ERROR", field)
	}
	for field, v := range map[string]any{"amount": nil, "amount_lead_days": 29, "failed_cycle_action": "PAUSE", "description": 5} {
		b.call("PATCH", path, map[string]any{field: v}).wantError(t, 400, "API_VALIDATION_ERROR", field)
	}
	b.call("PATCH", path, map[string]any{"items": []any{map[string]any{"type": "FEE", "name": "x", "net_unit_amount": 1, "quantity": 1}}}).
		wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	items := []any{map[string]any{"type": "FEE", "name": "Base", "net_unit_amount": 80000, "quantity": 2}}
	want(t, "items", b.call("PATCH", path, map[string]any{"items": items}).body, "amount", 160000)
	b.call("PATCH", path, map[string]any{"amount": 1}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	want(t, "items cleared", b.call("PATCH", path, map[string]any{"items": nil, "amount": 1}).body, "items", nil, "amount", 1)

	// A REQUIRES_ACTION plan activates when it gets an ACTIVE token.
	waiting := b.call("POST", "/recurring/plans", withField(sourcePlan(custID), "reference_id", "waiting")).body["id"].(string)
	r = b.call("PATCH", "/recurring/plans/"+waiting, map[string]any{"payment_methods": []any{map[string]any{"payment_token_id": second}}})
	want(t, "activated by PATCH", r.body, "status", "ACTIVE", "activated_at", "2026-02-12T00:00:00.000Z", "recurring_cycle_count", 1, "actions", []any{})
	want(t, "its cycle", b.only(waiting), "scheduled_timestamp", "2026-02-15T16:23:52.000Z", "fix_at", "2026-02-14T00:00:00.000Z")
	if n := b.countWhere("events", "type = 'recurring.plan.activated' AND data->>'id' = '"+waiting+"'"); n != 1 {
		t.Fatalf("%d activation events", n)
	}
}

// TestDeactivate: INACTIVE, waiting cycles cancelled, one event, and the
// plan can never change or activate again.
func TestDeactivate(t *testing.T) {
	b := setup(t)
	planID, cycleID, custID := b.activePlan()
	path := "/recurring/plans/" + planID
	r := b.call("POST", path+"/deactivate", nil, "idempotency-key", "stop-1")
	want(t, "deactivated", r.body, "status", "INACTIVE", "updated", "2026-01-31T23:59:59.000Z")
	want(t, "its cycle", b.call("GET", path+"/cycles/"+cycleID, nil).body, "status", "CANCELLED")
	if n := b.countWhere("recurring_cycles", "next_action IS NOT NULL"); n != 0 {
		t.Fatalf("%d cycles still have a next action", n)
	}
	if again := b.call("POST", path+"/deactivate", map[string]any{}); again.status != 200 || again.body["status"] != "INACTIVE" {
		t.Fatalf("again: %d %s", again.status, again.raw)
	}
	if n := b.countWhere("events", "type = 'recurring.plan.inactivated'"); n != 1 {
		t.Fatalf("%d inactivated events", n)
	}
	want(t, "event", b.eventData("recurring.plan.inactivated")[0], "id", planID, "status", "INACTIVE")
	b.call("PATCH", path, map[string]any{"amount": 1}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.call("PATCH", path+"/cycles/"+cycleID, map[string]any{"amount": 1}).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("POST", path+"/cycles/"+cycleID+"/cancel", nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	if plans := b.call("GET", "/customers/"+custID+"/usage", nil).body["plans"].([]any); len(plans) != 0 {
		t.Fatalf("usage shows an inactive plan: %v", plans)
	}
	b.call("POST", "/recurring/plans/repl-00000000-0000-7000-8000-000000000000/deactivate", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
}

// TestCyclesAndSchedule: cancelling a cycle creates the next one, which
// follows the schedule as it now is; the last cycle ends the plan;
// cursor paging; the cycle PATCH rules.
func TestCyclesAndSchedule(t *testing.T) {
	b := setup(t)
	planID, cycleID, _ := b.activePlan()
	path := "/recurring/plans/" + planID
	schedID := b.call("GET", path, nil).body["schedule_id"].(string)

	// A schedule change applies from the next cycle that is not created.
	s := b.call("PATCH", "/recurring/schedules/"+schedID, map[string]any{"anchor_date": "2026-03-20T08:00:00+07:00", "total_recurrence": 3, "total_retry": nil,
		"failed_attempt_notifications": []any{1}})
	want(t, "schedule", s.body, "anchor_date", "2026-03-20T01:00:00.000Z", "total_recurrence", 3, "total_retry", nil, "retry_interval", nil,
		"retry_interval_count", nil, "failed_attempt_notifications", []any{1}, "updated", "2026-01-31T23:59:59.000Z")
	want(t, "cycle 1 stays", b.only(planID), "scheduled_timestamp", "2026-02-15T16:23:52.000Z")
	c := b.call("POST", path+"/cycles/"+cycleID+"/cancel", nil)
	want(t, "cancelled", c.body, "status", "CANCELLED")
	list := b.call("GET", path+"/cycles", nil).body["data"].([]any)
	if len(list) != 2 {
		t.Fatalf("cycles after a cancel: %v", list)
	}
	// Cycle 2: the first slot of the changed schedule after cycle 1's
	// timestamp; cycle 1's usage, never billed, rolls into its window.
	cycle2 := list[0].(map[string]any)
	want(t, "cycle 2", cycle2, "cycle_number", 2, "status", "SCHEDULED", "scheduled_timestamp", "2026-03-20T01:00:00.000Z",
		"fix_at", "2026-03-19T00:00:00.000Z", "usage_window", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-03-19T00:00:00.000Z"})
	want(t, "plan", b.call("GET", path, nil).body, "recurring_cycle_count", 2)
	c2 := path + "/cycles/" + cycle2["id"].(string)

	// Cycle PATCH rules.
	b.call("PATCH", c2, map[string]any{"currency": "PHP"}).wantError(t, 400, "API_VALIDATION_ERROR", "currency")
	b.call("PATCH", c2, map[string]any{"amount": 10.5}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("PATCH", c2, map[string]any{"amount": -1}).wantError(t, 400, "API_VALIDATION_ERROR", "amount")
	b.call("PATCH", c2, map[string]any{"scheduled_timestamp": "2026-01-31T23:59:59Z"}).wantError(t, 400, "API_VALIDATION_ERROR", "scheduled_timestamp")
	b.call("PATCH", c2, map[string]any{"scheduled_timestamp": "soon"}).wantError(t, 400, "API_VALIDATION_ERROR", "scheduled_timestamp")
	b.call("PATCH", c2, map[string]any{"scheduled_timestamp": "2026-02-15T16:00:00Z"}).wantError(t, 400, "API_VALIDATION_ERROR", "scheduled_timestamp")
	b.call("PATCH", c2, map[string]any{"metadata": map[string]any{strings.Repeat("k", 41): 1}}).wantError(t, 400, "API_VALIDATION_ERROR", "metadata")
	b.call("PATCH", c2, `{"amount": `).wantError(t, 400, "API_VALIDATION_ERROR", "body")
	moved := b.call("PATCH", c2, map[string]any{"scheduled_timestamp": "2026-02-20T10:00:00Z", "currency": "IDR", "sdk": 1})
	want(t, "moved", moved.body, "scheduled_timestamp", "2026-02-20T10:00:00.000Z", "fix_at", "2026-02-19T00:00:00.000Z",
		"usage_window", map[string]any{"start": "2026-01-31T23:59:59.000Z", "end": "2026-02-19T00:00:00.000Z"})
	b.call("POST", c2+"/cancel", nil)
	b.call("POST", path+"/cycles/"+cycleID+"/cancel", nil).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("PATCH", path+"/cycles/"+cycleID, map[string]any{"amount": 1}).wantError(t, 403, "INELIGIBLE_CYCLE_REQUEST", "")
	b.call("GET", path+"/cycles/recy-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("PATCH", path+"/cycles/recy-00000000-0000-7000-8000-000000000000", map[string]any{}).wantError(t, 404, "DATA_NOT_FOUND", "")

	// The schedule's rules, against its plans.
	sp := "/recurring/schedules/" + schedID
	b.call("PATCH", sp, map[string]any{"total_recurrence": 1}).wantError(t, 400, "API_VALIDATION_ERROR", "total_recurrence")
	b.call("PATCH", path, map[string]any{"amount_lead_days": 5})
	b.call("PATCH", sp, map[string]any{"interval": "DAY"}).wantError(t, 400, "API_VALIDATION_ERROR", "interval_count")
	b.call("PATCH", sp, map[string]any{"interval": "YEAR"}).wantError(t, 400, "API_VALIDATION_ERROR", "interval")
	b.call("PATCH", sp, map[string]any{"anchor_date": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "anchor_date")
	b.call("PATCH", sp, map[string]any{"failed_attempt_notifications": []any{2}}).wantError(t, 400, "API_VALIDATION_ERROR", "failed_attempt_notifications[0]")
	b.call("PATCH", sp, map[string]any{"retry_interval_count": 2}).wantError(t, 400, "API_VALIDATION_ERROR", "retry_interval_count")
	want(t, "retries again", b.call("PATCH", sp, map[string]any{"total_retry": 2, "failed_attempt_notifications": []any{3, 1}}).body,
		"total_retry", 2, "retry_interval", "DAY", "retry_interval_count", 1, "failed_attempt_notifications", []any{1, 3})
	b.call("PATCH", sp, map[string]any{"total_retry": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "failed_attempt_notifications[1]")
	b.call("GET", "/recurring/schedules/resc-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")

	// Cycle 3 is the last (total_recurrence 3): cancelling it ends the plan.
	list = b.call("GET", path+"/cycles", nil).body["data"].([]any)
	cycle3 := list[0].(map[string]any)
	want(t, "cycle 3", cycle3, "cycle_number", 3, "scheduled_timestamp", "2026-03-20T01:00:00.000Z")
	b.call("POST", path+"/cycles/"+cycle3["id"].(string)+"/cancel", nil)
	want(t, "ended", b.call("GET", path, nil).body, "status", "INACTIVE", "recurring_cycle_count", 3)
	if got := b.eventTypes(); !slices.Equal(got[len(got)-5:], []string{"recurring.cycle.created", "recurring.cycle.created", "recurring.cycle.created",
		"recurring.plan.activated", "recurring.plan.inactivated"}) {
		t.Fatalf("events: %v", got)
	}

	// Paging, newest first.
	page := b.call("GET", path+"/cycles?limit=2", nil)
	data := page.body["data"].([]any)
	if len(data) != 2 || page.body["has_more"] != true || data[0].(map[string]any)["cycle_number"] != json.Number("3") {
		t.Fatalf("page 1: %s", page.raw)
	}
	page = b.call("GET", path+"/cycles?limit=2&after_id="+data[1].(map[string]any)["id"].(string), nil)
	if data = page.body["data"].([]any); len(data) != 1 || page.body["has_more"] != false || data[0].(map[string]any)["id"] != cycleID {
		t.Fatalf("page 2: %s", page.raw)
	}
	b.call("GET", path+"/cycles?limit=0", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
}

// TestConcurrentCycleChanges: concurrent changes of one plan and its cycle
// end in one consistent state.
func TestConcurrentCycleChanges(t *testing.T) {
	b := setup(t)
	planID, cycleID, _ := b.activePlan()
	path := "/recurring/plans/" + planID
	cyclePath := path + "/cycles/" + cycleID

	// Two PATCHes of the cycle held up together (the test holds the
	// cycle's row): one moves the cycle, the other sets amount and
	// metadata. Both apply; neither undoes the other.
	ctx := context.Background()
	hold, err := b.db.Bun.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.ExecContext(ctx, "SELECT 1 FROM recurring_cycles WHERE id = ? FOR UPDATE", cycleID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	patch := func(body map[string]any) {
		defer wg.Done()
		if r := b.call("PATCH", cyclePath, body); r.status != 200 {
			t.Errorf("patch %v: %d %s", body, r.status, r.raw)
		}
	}
	wg.Add(2)
	go patch(map[string]any{"scheduled_timestamp": "2026-02-20T10:00:00Z"})
	b.waitForLockWaiters(1)
	go patch(map[string]any{"amount": 123456, "metadata": map[string]any{"reading": "A-17"}})
	b.waitForLockWaiters(2)
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want(t, "both PATCHes", b.call("GET", cyclePath, nil).body, "scheduled_timestamp", "2026-02-20T10:00:00.000Z", "fix_at", "2026-02-19T00:00:00.000Z",
		"amount", 123456, "metadata", map[string]any{"reading": "A-17"})

	// Cycle PATCHes that move the cycle, plan PATCHes that change the lead
	// time, and PATCHes of amount and metadata, all at once. Each recomputes
	// the fix time from what the other changed; the fix time, window end
	// and next action must agree with the final timestamp and lead time, and
	// the amount and metadata must come from one request.
	for i := range 12 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			ts := fmt.Sprintf("2026-02-%02dT10:00:00Z", 16+i)
			if r := b.call("PATCH", cyclePath, map[string]any{"scheduled_timestamp": ts}); r.status != 200 {
				t.Errorf("move: %d %s", r.status, r.raw)
			}
		}()
		go func() {
			defer wg.Done()
			if r := b.call("PATCH", path, map[string]any{"amount_lead_days": 1 + i%5}); r.status != 200 {
				t.Errorf("lead: %d %s", r.status, r.raw)
			}
		}()
		go func() {
			defer wg.Done()
			if r := b.call("PATCH", cyclePath, map[string]any{"amount": 100000 + i, "metadata": map[string]any{"n": 100000 + i}}); r.status != 200 {
				t.Errorf("amount: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	var row struct {
		Scheduled  time.Time `bun:"scheduled_timestamp"`
		FixAt      time.Time `bun:"fix_at"`
		WindowEnd  time.Time `bun:"usage_window_end"`
		NextAt     time.Time `bun:"next_action_at"`
		Override   string    `bun:"amount_override"`
		Meta       string    `bun:"meta"`
		Lead       int       `bun:"amount_lead_days"`
		CycleCount int       `bun:"n"`
	}
	if err := b.db.Bun.NewRaw(`SELECT c.scheduled_timestamp, c.fix_at, c.usage_window_end, c.next_action_at, c.amount_override::text,
		c.metadata->>'n' AS meta, p.amount_lead_days, (SELECT count(*) FROM recurring_cycles WHERE plan_id = p.id) AS n
		FROM recurring_cycles c JOIN recurring_plans p ON p.id = c.plan_id WHERE c.id = ?`, cycleID).Scan(ctx, &row); err != nil {
		t.Fatal(err)
	}
	d := row.Scheduled.UTC()
	fix := time.Date(d.Year(), d.Month(), d.Day()-row.Lead, 0, 0, 0, 0, time.UTC)
	if !row.FixAt.Equal(fix) || !row.WindowEnd.Equal(fix) || !row.NextAt.Equal(fix) || row.Override != row.Meta || row.CycleCount != 1 {
		t.Fatalf("inconsistent: %+v (fix should be %v)", row, fix)
	}

	// A cancel racing PATCHes: the cycle ends CANCELLED (a PATCH that ran
	// first is kept, one that came after is refused), and exactly one next
	// cycle exists.
	results := make(chan int, 11)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- b.call("PATCH", cyclePath, map[string]any{"amount": 200000 + i}).status
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		results <- b.call("POST", cyclePath+"/cancel", nil).status
	}()
	wg.Wait()
	close(results)
	for status := range results {
		if status != 200 && status != 403 {
			t.Fatalf("status %d", status)
		}
	}
	want(t, "cancelled", b.call("GET", cyclePath, nil).body, "status", "CANCELLED")
	if n := b.countWhere("recurring_cycles", "plan_id = '"+planID+"' AND status = 'SCHEDULED'"); n != 1 {
		t.Fatalf("%d scheduled cycles after the cancel", n)
	}
}

// TestActivationRacesDeactivation: the customer completes the AUTH page
// while the utility deactivates the plan. The test holds the plan's row
// so that both wait for it, in one order and then the other: the plan
// ends INACTIVE with nothing scheduled either way, and never becomes
// ACTIVE after its deactivation.
func TestActivationRacesDeactivation(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	ctx := context.Background()
	for i, deactivateFirst := range []bool{true, false, true, false} {
		r := b.call("POST", "/recurring/plans", withField(sourcePlan(custID), "reference_id", fmt.Sprintf("race-%d", i)))
		planID := r.body["id"].(string)
		authURL := r.body["actions"].([]any)[0].(map[string]any)["url"].(string)
		b.browse("POST", authURL, url.Values{"channel_code": {"DANA"}})
		b.browse("POST", authURL+"/simulate", url.Values{"outcome": {"complete"}})

		hold, err := b.db.Bun.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hold.ExecContext(ctx, "SELECT 1 FROM recurring_plans WHERE id = ? FOR UPDATE", planID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		deactivate := func() {
			defer wg.Done()
			if r := b.call("POST", "/recurring/plans/"+planID+"/deactivate", nil); r.status != 200 {
				t.Errorf("deactivate: %d %s", r.status, r.raw)
			}
		}
		activate := func() {
			defer wg.Done()
			if _, err := b.api.PaymentsForTest().DeliverDueSandboxCallbacks(ctx, b.biz.ID); err != nil {
				t.Error(err)
			}
		}
		first, second := activate, deactivate
		if deactivateFirst {
			first, second = deactivate, activate
		}
		wg.Add(2)
		go first()
		b.waitForLockWaiters(1)
		go second()
		b.waitForLockWaiters(2)
		if err := hold.Rollback(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()

		plan := b.call("GET", "/recurring/plans/"+planID, nil)
		if plan.body["status"] != "INACTIVE" {
			t.Fatalf("race %d: %s", i, plan.raw)
		}
		if n := b.countWhere("recurring_cycles", "plan_id = '"+planID+"' AND status <> 'CANCELLED'"); n != 0 {
			t.Fatalf("race %d: %d live cycles", i, n)
		}
		var types []string
		if err := b.db.Bun.NewRaw("SELECT type FROM events WHERE business_id = ? AND data->>'id' = ? ORDER BY id", b.biz.ID, planID).
			Scan(ctx, &types); err != nil {
			t.Fatal(err)
		}
		wantTypes := []string{"recurring.plan.activated", "recurring.plan.inactivated"}
		if deactivateFirst {
			wantTypes = wantTypes[1:]
		}
		if !slices.Equal(types, wantTypes) {
			t.Fatalf("race %d (deactivate first: %v): plan events %v, want %v", i, deactivateFirst, types, wantTypes)
		}
	}
}

// waitForLockWaiters waits until n sessions of the test database wait
// for a lock.
func (b *bundle) waitForLockWaiters(n int) {
	b.t.Helper()
	eventually(b.t, fmt.Sprintf("%d sessions waiting for a lock", n), func() bool {
		var waiting int
		if err := b.db.Bun.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").
			Scan(context.Background(), &waiting); err != nil {
			b.t.Fatal(err)
		}
		return waiting >= n
	})
}
