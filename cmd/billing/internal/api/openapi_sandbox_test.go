package api_test

import (
	"strings"
	"testing"
)

func init() {
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "sandbox clock",
		run: func(t *testing.T, e *openAPIEnv) {
			b := e.b
			// The sandbox clock.
			if r := e.ok(t, b.call("GET", "/sandbox/clock", nil), "clock"); r.body["now"] != "2026-01-31T23:59:59.000Z" {
				t.Fatalf("clock: %s", r.raw)
			}
			b.callWithKey(e.liveKey, "GET", "/sandbox/clock", nil).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
			b.callWithKey("", "GET", "/sandbox/clock", nil).wantError(t, 401, "INVALID_API_KEY", "")
			if r := e.ok(t, b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "30d"}), "advance by days"); r.body["now"] != "2026-03-02T23:59:59.000Z" {
				t.Fatalf("advance 30d: %s", r.raw)
			}
			e.ok(t, b.call("POST", "/sandbox/clock/advance", map[string]any{"to": "2026-03-10T07:00:00+07:00"}), "advance to")
			e.ok(t, b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "720h"}, "idempotency-key", "oa-advance"), "advance by hours")
			if r := e.ok(t, b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "720h"}, "idempotency-key", "oa-advance"), "advance replay"); r.header.Get("idempotent-replayed") != "true" {
				t.Fatal("advance replay not marked")
			}
			b.call("POST", "/sandbox/clock/advance", map[string]any{"to": "2026-01-01T00:00:00Z"}).wantError(t, 400, "API_VALIDATION_ERROR", "to")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "-1h"}).wantError(t, 400, "API_VALIDATION_ERROR", "by")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "a month"}).wantError(t, 400, "API_VALIDATION_ERROR", "by")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1h", "until": "later"}).wantError(t, 400, "API_VALIDATION_ERROR", "until")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1h", "to": "2027-01-01T00:00:00Z"}).wantError(t, 400, "API_VALIDATION_ERROR", "to")
			b.call("POST", "/sandbox/clock/advance", map[string]any{}).wantError(t, 400, "API_VALIDATION_ERROR", "to")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1h"}, "idempotency-key", strings.Repeat("k", 101)).wantError(t, 400, "API_VALIDATION_ERROR", "idempotency-key")
			b.callWithKey(e.liveKey, "POST", "/sandbox/clock/advance", map[string]any{"by": "1h"}).wantError(t, 403, "REQUEST_FORBIDDEN_ERROR", "")
			b.call("POST", "/sandbox/clock/advance", map[string]any{"by": "1h"}, "idempotency-key", "oa-advance").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("POST", "/sandbox/clock/advance", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("POST", "/sandbox/clock/advance", `{"by":"1h"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.callWithKey("", "POST", "/sandbox/clock/advance", map[string]any{"by": "1h"}).wantError(t, 401, "INVALID_API_KEY", "")

		},
		calls: [][3]string{
			{"GET", "/sandbox/clock", ""},
			{"POST", "/sandbox/clock/advance", `{"by":"1h"}`},
		},
	})
}
