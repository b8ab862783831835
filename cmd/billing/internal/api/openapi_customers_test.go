package api_test

import (
	"strings"
	"testing"
)

func init() {
	openAPIScenarios = append(openAPIScenarios, openAPIScenario{
		name: "customers",
		run: func(t *testing.T, e *openAPIEnv) {
			b := e.b
			// POST /customers.
			siti := map[string]any{
				"reference_id":      "oa-meter-001",
				"type":              "INDIVIDUAL",
				"individual_detail": map[string]any{"given_names": "Siti", "surname": "Rahayu", "gender": "FEMALE", "date_of_birth": "1990-04-17", "nationality": "ID", "employment": map[string]any{"employer_name": "PLN"}},
				"email":             "siti@example.co.id",
				"mobile_number":     "+6281234567890",
				"phone_number":      "+622150001234",
				"description":       "Household, Bandung",
				"addresses":         []any{map[string]any{"country": "ID", "street_line1": "Jl. Merdeka No. 1", "city": "Bandung", "postal_code": "40111", "is_primary": true}},
				"identity_accounts": []any{map[string]any{"type": "BANK_ACCOUNT", "company": "BCA"}},
				"kyc_documents":     []any{},
				"metadata":          map[string]any{"tariff": "R1-1300VA", "phase": 1},
			}
			created := e.ok(t, b.call("POST", "/customers", siti, "idempotency-key", "oa-create-siti"), "create siti")
			sitiID, _ := created.body["id"].(string)
			if r := e.ok(t, b.call("POST", "/customers", siti, "idempotency-key", "oa-create-siti"), "replay"); r.header.Get("idempotent-replayed") != "true" {
				t.Fatalf("replay not marked: %v", r.header)
			}
			// Xendit's newer address names, the type left out, and a field the
			// engine does not know.
			company := map[string]any{
				"reference_id":    "oa-meter-B-042",
				"business_detail": map[string]any{"business_name": "PT Maju Jaya", "business_type": "CORPORATION", "business_domicile": "ID", "date_of_registration": "2015-08-01"},
				"addresses":       []any{map[string]any{"country_code": "ID", "line_1": "Jl. Sudirman Kav. 52", "line_2": "Lt. 3", "city": "Jakarta Selatan"}},
				"sdk_extra_field": "ignored",
			}
			r := e.ok(t, b.call("POST", "/customers", company), "create company")
			companyID, _ := r.body["id"].(string)
			if a := r.body["addresses"].([]any)[0].(map[string]any); a["country"] != "ID" || a["street_line1"] != "Jl. Sudirman Kav. 52" {
				t.Fatalf("newer address names not stored as country/street_line1: %s", r.raw)
			}
			// The least a customer can be: every optional field null.
			r = e.ok(t, b.call("POST", "/customers", map[string]any{"reference_id": "oa-meter-003", "individual_detail": map[string]any{"given_names": "Budi"}}), "create minimal")
			for _, f := range []string{"business_detail", "email", "mobile_number", "phone_number", "description", "metadata"} {
				if v, present := r.body[f]; !present || v != nil {
					t.Fatalf("minimal customer: %s = %v, want null: %s", f, v, r.raw)
				}
			}
			b.call("POST", "/customers", map[string]any{"reference_id": "oa-bad", "type": "PERSON", "email": "nope", "mobile_number": "0812"}).wantError(t, 400, "API_VALIDATION_ERROR", "email")
			b.call("POST", "/customers", `[]`).wantError(t, 400, "API_VALIDATION_ERROR", "body")
			b.call("POST", "/customers", nil).wantError(t, 400, "API_VALIDATION_ERROR", "body")
			b.call("POST", "/customers", siti, "idempotency-key", strings.Repeat("k", 101)).wantError(t, 400, "API_VALIDATION_ERROR", "idempotency-key")
			b.call("POST", "/customers", siti).wantError(t, 409, "DUPLICATE_ERROR", "reference_id")
			b.call("POST", "/customers", company, "idempotency-key", "oa-create-siti").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("POST", "/customers", e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("POST", "/customers", `{"reference_id":"a"}`, "Content-Type", "text/plain").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.callWithKey("", "POST", "/customers", siti).wantError(t, 401, "INVALID_API_KEY", "")

			// GET /customers.
			r = e.ok(t, b.call("GET", "/customers", nil), "list")
			if n := len(r.body["data"].([]any)); n != 3 || r.body["has_more"] != false {
				t.Fatalf("list: %d customers: %s", n, r.raw)
			}
			r = e.ok(t, b.call("GET", "/customers?limit=1", nil), "list page 1")
			if r.body["has_more"] != true {
				t.Fatalf("page 1: %s", r.raw)
			}
			last := r.body["data"].([]any)[0].(map[string]any)["id"].(string)
			e.ok(t, b.call("GET", "/customers?limit=2&after_id="+last, nil), "list page 2")
			e.ok(t, b.call("GET", "/customers?limit=100&before_id="+sitiID, nil), "list before")
			if r := e.ok(t, b.call("GET", "/customers?reference_id=oa-meter-001", nil), "by reference"); len(r.body["data"].([]any)) != 1 {
				t.Fatalf("by reference: %s", r.raw)
			}
			e.ok(t, b.call("GET", "/customers?reference_id=nobody", nil), "by unknown reference")
			b.call("GET", "/customers?limit=0", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
			b.call("GET", "/customers?limit=many", nil).wantError(t, 400, "API_VALIDATION_ERROR", "limit")
			b.call("GET", "/customers?after_id="+sitiID+"&before_id="+companyID, nil).wantError(t, 400, "API_VALIDATION_ERROR", "before_id")
			b.callWithKey("sk_test_wrong", "GET", "/customers", nil).wantError(t, 401, "INVALID_API_KEY", "")
			b.callWithKey("", "GET", "/customers", nil, "Authorization", "Bearer sk_live_wrong").wantError(t, 401, "INVALID_API_KEY", "")

			// GET /customers/{id}.
			e.ok(t, b.call("GET", "/customers/"+sitiID, nil), "get")
			e.ok(t, b.callWithKey("", "GET", "/customers/"+companyID, nil, "Authorization", "Bearer "+b.key), "get with bearer")
			b.call("GET", "/customers/cust-00000000-0000-7000-8000-000000000000", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.call("GET", "/customers/not-an-id", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.callWithKey(e.otherKey, "GET", "/customers/"+sitiID, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.callWithKey("", "GET", "/customers/"+sitiID, nil).wantError(t, 401, "INVALID_API_KEY", "")

			// PATCH /customers/{id}.
			patch := map[string]any{
				"type":        "INDIVIDUAL",
				"email":       "siti.rahayu@example.co.id",
				"description": nil,
				"addresses":   []any{map[string]any{"country_code": "ID", "line_1": "Jl. Asia Afrika 8", "city": "Bandung"}},
				"metadata":    map[string]any{"tariff": "R1-2200VA"},
				"sdk_extra":   true,
			}
			r = e.ok(t, b.call("PATCH", "/customers/"+sitiID, patch, "idempotency-key", "oa-patch-siti"), "patch")
			if r.body["description"] != nil || r.body["email"] != "siti.rahayu@example.co.id" {
				t.Fatalf("patch: %s", r.raw)
			}
			if r := e.ok(t, b.call("PATCH", "/customers/"+sitiID, patch, "idempotency-key", "oa-patch-siti"), "patch replay"); r.header.Get("idempotent-replayed") != "true" {
				t.Fatal("patch replay not marked")
			}
			e.ok(t, b.call("PATCH", "/customers/"+companyID, map[string]any{"business_detail": map[string]any{"business_name": "PT Maju Jaya Tbk"}, "metadata": nil, "addresses": nil}), "patch company")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{"type": "BUSINESS"}).wantError(t, 400, "API_VALIDATION_ERROR", "type")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{"email": "nope", "reference_id": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "reference_id")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{"individual_detail": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "individual_detail")
			b.call("PATCH", "/customers/cust-00000000-0000-7000-8000-000000000000", patch).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.callWithKey(e.otherKey, "PATCH", "/customers/"+sitiID, patch).wantError(t, 404, "DATA_NOT_FOUND", "")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{"reference_id": "oa-meter-B-042"}).wantError(t, 409, "DUPLICATE_ERROR", "reference_id")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{"email": "x@example.com"}, "idempotency-key", "oa-patch-siti").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("PATCH", "/customers/"+sitiID, map[string]any{}, "idempotency-key", "oa-create-siti").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
			b.call("PATCH", "/customers/"+sitiID, e.big).wantError(t, 413, "REQUEST_TOO_LARGE", "")
			b.call("PATCH", "/customers/"+sitiID, `{"email":"a@example.com"}`, "Content-Type", "application/xml").wantError(t, 415, "UNSUPPORTED_CONTENT_TYPE", "")
			b.call("PATCH", "/customers/"+sitiID, patch, "idempotency-key", strings.Repeat("k", 101)).wantError(t, 400, "API_VALIDATION_ERROR", "idempotency-key")
			b.callWithKey("", "PATCH", "/customers/"+sitiID, patch).wantError(t, 401, "INVALID_API_KEY", "")

		},
		calls: [][3]string{
			{"POST", "/customers", `{"reference_id":"x"}`},
			{"GET", "/customers", ""},
			{"GET", "/customers/cust-00000000-0000-7000-8000-000000000000", ""},
			{"PATCH", "/customers/cust-00000000-0000-7000-8000-000000000000", `{"email":"a@example.com"}`},
		},
	})
}
