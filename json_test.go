package billing_test

import (
	"strings"
	"testing"

	"github.com/tagihan/billing"
)

type sample struct {
	Name   string         `json:"name"`
	Amount billing.Number `json:"amount"`
	Count  int            `json:"count"`
	Nested struct {
		Flag bool `json:"flag"`
	} `json:"nested"`
	Email billing.Optional[string] `json:"email"`
}

func TestDecodeJSONNamesTheField(t *testing.T) {
	tests := []struct {
		body   string
		strict bool
		field  string
		msg    string
	}{
		{``, false, "body", "must be a JSON object"},
		{`[1]`, false, "body", "must be a JSON object"},
		{`{"name": "x"`, false, "body", "ends too early"},
		{`{"name": "x",}`, false, "body", "is not valid JSON"},
		{`{"name": 5}`, false, "name", "must be a string"},
		{`{"count": "5"}`, false, "count", "must be an integer"},
		{`{"count": 1.5}`, false, "count", "must be an integer"},
		{`{"amount": "ten"}`, false, "amount", "must be a number"},
		{`{"amount": 1e999999}`, false, "amount", "exponent too large"},
		{`{"nested": {"flag": "yes"}}`, false, "nested.flag", "must be true or false"},
		{`{"nested": []}`, false, "nested", "must be an object"},
		{`{"email": 7}`, false, "email", "must be a string"},
		{`{"extra": 1}`, true, "extra", "is not a known field"},
		{`{} {}`, false, "body", "exactly one JSON object"},
	}
	for _, tt := range tests {
		var v sample
		err := billing.DecodeJSON([]byte(tt.body), &v, tt.strict)
		e, ok := billing.AsError(err)
		if !ok || e.Reason != billing.ReasonValidation || len(e.Fields) != 1 {
			t.Errorf("%s: err = %v, want a validation error", tt.body, err)
			continue
		}
		if e.Fields[0].Field != tt.field || !strings.Contains(e.Fields[0].Message, tt.msg) {
			t.Errorf("%s: got %s %q, want %s containing %q", tt.body, e.Fields[0].Field, e.Fields[0].Message, tt.field, tt.msg)
		}
	}
}

func TestDecodeJSONLenientAndOptional(t *testing.T) {
	var v sample
	if err := billing.DecodeJSON([]byte(` {"name":"a","extra":{"x":1},"amount":"10.5","email":null} `), &v, false); err != nil {
		t.Fatal(err)
	}
	if v.Name != "a" || v.Amount.String() != "10.5" || !v.Email.Set || !v.Email.Null {
		t.Fatalf("decoded %+v", v)
	}
	var w sample
	if err := billing.DecodeJSON([]byte(`{"email":"a@b.co"}`), &w, true); err != nil || !w.Email.Set || w.Email.Null || w.Email.Value != "a@b.co" {
		t.Fatalf("decoded %+v, %v", w, err)
	}
	var absent sample
	_ = billing.DecodeJSON([]byte(`{}`), &absent, true)
	if absent.Email.Set {
		t.Fatal("absent field marked Set")
	}
}
