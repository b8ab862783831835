package api_test

import (
	"testing"

	"github.com/tagihan/billing/internal/business"
)

func TestSandboxClock(t *testing.T) {
	b := setup(t)
	if r := b.call("GET", "/sandbox/clock", nil); r.status != 200 || r.body["now"] != "2026-01-31T23:59:59.000Z" {
		t.Fatalf("clock: %d %s", r.status, r.raw)
	}
	// One second takes it across the month end, and it stays there.
	if r := b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1s"}); r.status != 200 || r.body["now"] != "2026-02-01T00:00:00.000Z" {
		t.Fatalf("advance by 1s: %d %s", r.status, r.raw)
	}
	if r := b.call("GET", "/sandbox/clock", nil); r.body["now"] != "2026-02-01T00:00:00.000Z" {
		t.Fatalf("clock after advance: %s", r.raw)
	}
	// Customers are dated by the sandbox clock, not the system clock.
	if r := b.call("POST", "/customers", siti); r.body["created"] != "2026-02-01T00:00:00.000Z" {
		t.Fatalf("customer created at %v", r.body["created"])
	}
	if r := b.call("POST", "/sandbox/clock/advance", map[string]any{"to": "2028-03-01T07:00:00+07:00"}); r.status != 200 || r.body["now"] != "2028-03-01T00:00:00.000Z" {
		t.Fatalf("advance to: %d %s", r.status, r.raw)
	}
	if r := b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "30d"}); r.body["now"] != "2028-03-31T00:00:00.000Z" {
		t.Fatalf("advance by 30d: %s", r.raw)
	}
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"to": "2028-03-30T23:59:59Z"}, "to"},
		{map[string]any{"to": "tomorrow"}, "to"},
		{map[string]any{"by": "-1h"}, "by"},
		{map[string]any{"by": "a month"}, "by"},
		{map[string]any{"by": "87840h1s"}, "by"},
		{map[string]any{"by": "1h", "to": "2029-01-01T00:00:00Z"}, "to"},
		{map[string]any{}, "to"},
		{map[string]any{"by": "1h", "dry_run": true}, "dry_run"},
		{map[string]any{"by": 3600}, "by"},
	} {
		b.call("POST", "/sandbox/clock/advance", c.body).wantError(t, 400, "API_VALIDATION_ERROR", c.field)
	}
	if r := b.call("GET", "/sandbox/clock", nil); r.body["now"] != "2028-03-31T00:00:00.000Z" {
		t.Fatalf("rejected advances moved the clock: %s", r.raw)
	}

	_, liveKey := b.newBusiness(business.ModeLive)
	b.callWithKey(liveKey, "GET", "/sandbox/clock", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
	b.callWithKey(liveKey, "POST", "/sandbox/clock/advance", map[string]any{"by": "1h"}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
}
