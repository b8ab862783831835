package api_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
)

func TestCustomerLifecycle(t *testing.T) {
	b := setup(t)
	body := map[string]any{
		"reference_id":      "PLN-5300123456",
		"type":              "INDIVIDUAL",
		"individual_detail": map[string]any{"given_names": "Siti", "surname": "Rahayu", "gender": "FEMALE", "date_of_birth": "1990-02-28", "nationality": "ID"},
		"email":             "siti@example.co.id",
		"mobile_number":     "+6281234567890",
		"addresses": []any{
			map[string]any{"country_code": "ID", "line_1": "Jl. Merdeka 1", "city": "Bandung", "postal_code": "40111", "is_primary": true},
			map[string]any{"country": "ID", "street_line1": "Jl. Asia Afrika 8", "city": "Bandung"},
		},
		"metadata":          map[string]any{"meter_id": "5300123456", "tariff": "R-1/1300VA"},
		"unknown_sdk_field": "ignored on Xendit-shaped resources",
	}
	r := b.call("POST", "/customers", body)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id, _ := r.body["id"].(string)
	if !billing.ValidID(billing.PrefixCustomer, id) || r.body["service_status"] != "ACTIVE" ||
		r.body["created"] != "2026-01-31T23:59:59.000Z" || r.body["business_detail"] != nil {
		t.Fatalf("created customer: %s", r.raw)
	}
	addrs := r.body["addresses"].([]any)
	first := addrs[0].(map[string]any)
	if first["country"] != "ID" || first["street_line1"] != "Jl. Merdeka 1" || first["is_primary"] != true {
		t.Fatalf("address not normalised: %v", first)
	}

	got := b.call("GET", "/customers/"+id, nil)
	if got.status != 200 || string(got.raw) != string(r.raw) {
		t.Fatalf("get: %d %s", got.status, got.raw)
	}
	list := b.call("GET", "/customers?reference_id=PLN-5300123456", nil)
	data := list.body["data"].([]any)
	if list.status != 200 || len(data) != 1 || data[0].(map[string]any)["id"] != id || list.body["has_more"] != false {
		t.Fatalf("by reference: %s", list.raw)
	}
	if none := b.call("GET", "/customers?reference_id=nope", nil); len(none.body["data"].([]any)) != 0 {
		t.Fatalf("unknown reference: %s", none.raw)
	}

	// PATCH replaces what is sent, clears what is null, keeps the rest.
	b.clock.Advance(0)
	p := b.call("PATCH", "/customers/"+id, map[string]any{"email": "siti.rahayu@example.co.id", "mobile_number": nil, "description": "moved to Jakarta"})
	if p.status != 200 || p.body["email"] != "siti.rahayu@example.co.id" || p.body["mobile_number"] != nil ||
		p.body["description"] != "moved to Jakarta" || p.body["reference_id"] != "PLN-5300123456" ||
		p.body["individual_detail"].(map[string]any)["surname"] != "Rahayu" {
		t.Fatalf("patch: %d %s", p.status, p.raw)
	}
	b.call("PATCH", "/customers/"+id, map[string]any{"type": "BUSINESS"}).wantError(t, 400, "API_VALIDATION_ERROR", "type")
	b.call("PATCH", "/customers/"+id, map[string]any{"individual_detail": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "individual_detail")
	b.call("PATCH", "/customers/"+id, map[string]any{"reference_id": nil}).wantError(t, 400, "API_VALIDATION_ERROR", "reference_id")
	b.call("PATCH", "/customers/"+id, `{"email": 5}`).wantError(t, 400, "API_VALIDATION_ERROR", "email")
	if again := b.call("GET", "/customers/"+id, nil); string(again.raw) != string(p.raw) {
		t.Fatalf("rejected patches changed the customer: %s", again.raw)
	}

	// reference_id is unique per business.
	b.call("POST", "/customers", body).wantError(t, 409, "DUPLICATE_ERROR", "reference_id")
	other := b.call("POST", "/customers", map[string]any{"reference_id": "PLN-2", "type": "BUSINESS", "business_detail": map[string]any{"business_name": "PT Maju"}})
	if other.status != 200 {
		t.Fatalf("business customer: %d %s", other.status, other.raw)
	}
	b.call("PATCH", "/customers/"+other.body["id"].(string), map[string]any{"reference_id": "PLN-5300123456"}).wantError(t, 409, "DUPLICATE_ERROR", "reference_id")
	if b.count("customers") != 2 {
		t.Fatalf("%d customers", b.count("customers"))
	}
}

func TestCustomerTypeInferredFromDetail(t *testing.T) {
	b := setup(t)
	r := b.call("POST", "/customers", map[string]any{"reference_id": "x", "business_detail": map[string]any{"business_name": "PT Air Bersih"}})
	if r.status != 200 || r.body["type"] != "BUSINESS" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

func TestCustomerValidation(t *testing.T) {
	b := setup(t)
	base := func() map[string]any {
		return map[string]any{"reference_id": "r-1", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Siti"}}
	}
	with := func(k string, v any) map[string]any {
		m := base()
		m[k] = v
		return m
	}
	cases := []struct {
		body  any
		field string
	}{
		{with("reference_id", ""), "reference_id"},
		{with("reference_id", strings.Repeat("r", 256)), "reference_id"},
		{with("type", "PERSON"), "type"},
		{map[string]any{"reference_id": "r"}, "type"},
		{with("individual_detail", nil), "individual_detail"},
		{with("individual_detail", map[string]any{"surname": "Only"}), "individual_detail.given_names"},
		{with("individual_detail", map[string]any{"given_names": "S", "gender": "F"}), "individual_detail.gender"},
		{with("individual_detail", map[string]any{"given_names": "S", "date_of_birth": "1990-02-30"}), "individual_detail.date_of_birth"},
		{with("individual_detail", map[string]any{"given_names": "S", "nationality": "IDN"}), "individual_detail.nationality"},
		{with("business_detail", map[string]any{"business_name": "PT"}), "business_detail"},
		{with("email", "siti"), "email"},
		{with("email", "Siti <siti@example.com>"), "email"},
		{with("email", "siti@localhost"), "email"},
		{with("mobile_number", "081234567890"), "mobile_number"},
		{with("mobile_number", "+62 812 3456 7890"), "mobile_number"},
		{with("mobile_number", "+0812345678"), "mobile_number"},
		{with("mobile_number", "+1234567890123456"), "mobile_number"},
		{with("phone_number", "021-500-1234"), "phone_number"},
		{with("description", strings.Repeat("d", 1001)), "description"},
		{with("addresses", []any{map[string]any{"city": "Bandung"}}), "addresses[0].country"},
		{with("addresses", []any{map[string]any{"country": "Indonesia"}}), "addresses[0].country"},
		{with("addresses", []any{map[string]any{"country": "ID", "is_primary": true}, map[string]any{"country": "ID", "is_primary": true}}), "addresses"},
		{with("addresses", "Jl. Merdeka"), "addresses"},
		{with("identity_accounts", []any{"x"}), "identity_accounts[0]"},
		{with("metadata", map[string]any{strings.Repeat("k", 41): "v"}), "metadata"},
		{with("metadata", map[string]any{"k": strings.Repeat("v", 501)}), "metadata.k"},
		{with("metadata", []any{1}), "metadata"},
		{with("reference_id", "tab\x00"), "reference_id"},
	}
	for _, c := range cases {
		r := b.call("POST", "/customers", c.body)
		if r.status != 400 {
			t.Errorf("%v: got %d %s, want 400 naming %s", c.body, r.status, r.raw, c.field)
			continue
		}
		r.wantError(t, 400, "API_VALIDATION_ERROR", c.field)
	}
	// Every problem is reported at once.
	r := b.call("POST", "/customers", map[string]any{"reference_id": "", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "S"}, "email": "x", "mobile_number": "1"})
	if errs := r.body["errors"].([]any); len(errs) != 3 {
		t.Fatalf("want 3 field errors: %s", r.raw)
	}
	many := map[string]any{}
	for i := 0; i < 51; i++ {
		many[strings.Repeat("k", 1+i%40)+string(rune('a'+i%26))+string(rune('a'+i/26))] = i
	}
	b.call("POST", "/customers", with("metadata", many)).wantError(t, 400, "API_VALIDATION_ERROR", "metadata")
	if b.count("customers") != 0 {
		t.Fatal("invalid customers were stored")
	}
}

func TestCustomerTenantIsolation(t *testing.T) {
	b := setup(t)
	mine := b.call("POST", "/customers", siti)
	id := mine.body["id"].(string)
	_, otherKey := b.newBusiness(business.ModeLive)

	b.callWithKey(otherKey, "GET", "/customers/"+id, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "PATCH", "/customers/"+id, map[string]any{"email": "x@evil.example"}).wantError(t, 404, "DATA_NOT_FOUND", "")
	if r := b.callWithKey(otherKey, "GET", "/customers?reference_id=meter-001", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business's reference_id is visible: %s", r.raw)
	}
	if r := b.callWithKey(otherKey, "GET", "/customers", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another business's customers are listed: %s", r.raw)
	}
	// The same reference_id is free in another business.
	if r := b.callWithKey(otherKey, "POST", "/customers", siti); r.status != 200 || r.body["id"] == id {
		t.Fatalf("same reference in another business: %d %s", r.status, r.raw)
	}
	if r := b.call("GET", "/customers/"+id, nil); r.body["email"] != "siti@example.co.id" {
		t.Fatalf("customer changed by another business: %s", r.raw)
	}
	for _, bad := range []string{"cust-nope", "cust-" + strings.Repeat("0", 36), "mtr-01a1fd36-2c2d-7a15-8d5d-fafa8b5021a2", "%27%3B--"} {
		b.call("GET", "/customers/"+bad, nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	}
}

func TestCustomerListPaging(t *testing.T) {
	b := setup(t)
	var ids []string
	for i := 0; i < 5; i++ {
		r := b.call("POST", "/customers", map[string]any{"reference_id": "p-" + string(rune('a'+i)), "individual_detail": map[string]any{"given_names": "N"}})
		ids = append(ids, r.body["id"].(string))
	}
	page := func(q string) ([]string, bool) {
		r := b.call("GET", "/customers?"+q, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", q, r.status, r.raw)
		}
		var out []string
		for _, c := range r.body["data"].([]any) {
			out = append(out, c.(map[string]any)["id"].(string))
		}
		return out, r.body["has_more"].(bool)
	}
	p1, more := page("limit=2")
	if len(p1) != 2 || p1[0] != ids[4] || p1[1] != ids[3] || !more {
		t.Fatalf("page 1: %v %v", p1, more)
	}
	p2, more := page("limit=2&after_id=" + p1[1])
	if len(p2) != 2 || p2[0] != ids[2] || p2[1] != ids[1] || !more {
		t.Fatalf("page 2: %v %v", p2, more)
	}
	p3, more := page("limit=2&after_id=" + p2[1])
	if len(p3) != 1 || p3[0] != ids[0] || more {
		t.Fatalf("page 3: %v %v", p3, more)
	}
	back, more := page("limit=2&before_id=" + p3[0])
	if len(back) != 2 || back[0] != ids[2] || back[1] != ids[1] || !more {
		t.Fatalf("before: %v %v", back, more)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "after_id=a&before_id=b"} {
		r := b.call("GET", "/customers?"+q, nil)
		if r.status != 400 {
			t.Fatalf("%s: %d", q, r.status)
		}
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	b := setup(t, func(o *options) {
		o.logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	b.call("POST", "/customers", siti, "idempotency-key", "k1")
	b.callWithKey(b.key+"wrong", "GET", "/customers", nil)
	out := logs.String()
	if !strings.Contains(out, `"route":"POST /customers"`) || !strings.Contains(out, b.biz.ID) || !strings.Contains(out, `"request_id":"req_`) {
		t.Fatalf("request log lines missing: %s", out)
	}
	for _, secret := range []string{b.key, b.key[8:20], "siti@example.co.id", "+6281234567890"} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs contain %q:\n%s", secret, out)
		}
	}
}
