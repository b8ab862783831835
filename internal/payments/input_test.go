package payments

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
)

const validSave = `{"reference_id":"link-1","type":"PAY_AND_SAVE","customer_id":"cust-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a",
"country":"ID","currency":"IDR","request_amount":150000,"channel_code":"DANA",
"channel_properties":{"success_return_url":"https://u.example/ok","failure_return_url":"https://u.example/fail"}}`

const validPay = `{"reference_id":"c-1","type":"PAY","payment_token_id":"pt-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a","country":"PH","currency":"PHP","request_amount":"10000.01"}`

// edit returns body with the top-level fields changed (nil removes one).
func edit(t *testing.T, body string, changes map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

func TestDecodeCreateAccepts(t *testing.T) {
	p, err := DecodeCreate([]byte(validSave))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Amount.Equal(billing.Money{Amount: p.RequestAmount.Decimal, Currency: "IDR"}) || p.NewCustomer != nil {
		t.Fatalf("%+v", p)
	}
	p, err = DecodeCreate([]byte(validPay))
	if err != nil || p.Amount.String() != "PHP 10000.01" {
		t.Fatalf("%+v %v", p, err)
	}
	// Trailing zeros within the currency's precision, exponents, unknown
	// fields (SDKs send them), and an inline customer.
	for _, changes := range []map[string]any{
		{"request_amount": json.RawMessage(`1.5e5`)},
		{"country": "PH", "currency": "PHP", "channel_code": "MAYA", "request_amount": "10000.010"},
		{"items": []any{}, "shipping_information": map[string]any{"country": "ID"}, "sdk_field": true},
		{"customer_id": nil, "customer": map[string]any{"reference_id": "m-1", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "Siti"}}},
		{"capture_method": "AUTOMATIC", "description": "Meter 1", "metadata": map[string]any{"sandbox_behavior": "always_fail"}},
	} {
		if _, err := DecodeCreate(edit(t, validSave, changes)); err != nil {
			t.Errorf("%v: %v", changes, err)
		}
	}
}

func TestDecodeCreateRejects(t *testing.T) {
	longURL := "https://u.example/" + strings.Repeat("a", 2100)
	for _, tc := range []struct {
		base    string
		changes map[string]any
		field   string
	}{
		{validSave, map[string]any{"channel_code": "BITCOIN"}, "channel_code"},
		{validSave, map[string]any{"channel_code": "MAYA"}, "channel_code"}, // a PH channel in ID
		{validSave, map[string]any{"channel_code": nil}, "channel_code"},
		{validPay, map[string]any{"channel_code": "DANA"}, "channel_code"},
		{validSave, map[string]any{"currency": "PHP"}, "currency"},
		{validSave, map[string]any{"currency": "EUR"}, "currency"},
		{validSave, map[string]any{"currency": "idr"}, "currency"},
		{validSave, map[string]any{"currency": nil}, "currency"},
		{validSave, map[string]any{"country": "HK"}, "country"},
		{validSave, map[string]any{"country": nil}, "country"},
		{validSave, map[string]any{"request_amount": json.RawMessage(`150000.5`)}, "request_amount"},
		{validPay, map[string]any{"request_amount": "10000.001"}, "request_amount"},
		{validSave, map[string]any{"request_amount": -1}, "request_amount"},
		{validSave, map[string]any{"request_amount": 0}, "request_amount"},
		{validSave, map[string]any{"request_amount": nil}, "request_amount"},
		{validSave, map[string]any{"request_amount": "NaN"}, "request_amount"},
		{validSave, map[string]any{"request_amount": true}, "request_amount"},
		{validSave, map[string]any{"type": nil}, "type"},
		{validSave, map[string]any{"type": "REUSABLE_PAYMENT_CODE"}, "type"},
		{validSave, map[string]any{"reference_id": nil}, "reference_id"},
		{validSave, map[string]any{"reference_id": strings.Repeat("r", 256)}, "reference_id"},
		{validSave, map[string]any{"capture_method": "MANUAL"}, "capture_method"},
		{validSave, map[string]any{"customer_id": nil}, "customer_id"},
		{validSave, map[string]any{"customer": map[string]any{"reference_id": "x", "individual_detail": map[string]any{"given_names": "A"}}}, "customer"},
		{validSave, map[string]any{"customer_id": nil, "customer": map[string]any{"reference_id": "x", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "A"}, "email": "nope"}}, "customer.email"},
		{validSave, map[string]any{"customer_id": nil, "customer": "siti"}, "customer"},
		{validSave, map[string]any{"payment_token_id": "pt-x"}, "payment_token_id"},
		{validSave, map[string]any{"channel_properties": nil}, "channel_properties"},
		{validSave, map[string]any{"channel_properties": map[string]any{"success_return_url": "https://u.example"}}, "channel_properties.failure_return_url"},
		{validSave, map[string]any{"channel_properties": map[string]any{"success_return_url": "ftp://x", "failure_return_url": "https://u.example"}}, "channel_properties.success_return_url"},
		{validSave, map[string]any{"channel_properties": map[string]any{"success_return_url": longURL, "failure_return_url": "https://u.example"}}, "channel_properties.success_return_url"},
		{validSave, map[string]any{"channel_properties": map[string]any{"big": strings.Repeat("x", 5000)}}, "channel_properties"},
		{validSave, map[string]any{"description": ""}, "description"},
		{validSave, map[string]any{"metadata": map[string]any{"k": strings.Repeat("v", 600)}}, "metadata.k"},
		{validPay, map[string]any{"payment_token_id": nil}, "payment_token_id"},
		{validPay, map[string]any{"customer": map[string]any{"reference_id": "x"}}, "customer"},
	} {
		_, err := DecodeCreate(edit(t, tc.base, tc.changes))
		e, ok := billing.AsError(err)
		if !ok || e.Reason != billing.ReasonValidation || !slices.ContainsFunc(e.Fields, func(f billing.FieldError) bool { return f.Field == tc.field }) {
			t.Errorf("%v: got %v, want a validation error naming %s", tc.changes, err, tc.field)
		}
	}
	for _, body := range []string{``, `[]`, `"x"`, `{`, `{"type":"PAY"} {}`, `{"request_amount":1e999999}`} {
		if _, err := DecodeCreate([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
}

func TestDecodeSimulate(t *testing.T) {
	for body, ok := range map[string]bool{``: true, `{}`: true, `{"amount":21110}`: true, `{"amount":"21110"}`: true,
		`{"amount":0}`: false, `{"amount":-5}`: false, `{"amount":"x"}`: false, `[]`: false} {
		if _, err := DecodeSimulate([]byte(body)); (err == nil) != ok {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// FuzzDecodeCreate: the decoder never panics, and whatever it accepts is
// a well-formed request: a positive amount within its currency's
// precision, the country's currency, and for PAY_AND_SAVE a channel of the
// country and exactly one customer.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{validSave, validPay, `{}`, `{"type":"PAY_AND_SAVE","request_amount":"1e3"}`,
		`{"reference_id":"x","type":"PAY","payment_token_id":"p","country":"VN","currency":"VND","request_amount":0.5}`,
		`{"type":"PAY_AND_SAVE","customer":{"reference_id":"a","individual_detail":{"given_names":"b"}},"customer_id":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodeCreate(body)
		if err != nil {
			if _, ok := billing.AsError(err); !ok {
				t.Fatalf("%q: error without a field: %v", body, err)
			}
			return
		}
		want, ok := providers.CurrencyOf(p.Country)
		if !ok || p.Amount.Currency != want || p.Amount.Amount.Sign() <= 0 || billing.DecimalPlaces(p.Amount.Amount) > want.Exponent() {
			t.Fatalf("%q accepted as %+v", body, p)
		}
		switch p.Type {
		case TypePayAndSave:
			hasID := p.CustomerID != nil && *p.CustomerID != ""
			if !slices.Contains(providers.Channels(p.Country), p.ChannelCode) || hasID == (p.NewCustomer != nil) {
				t.Fatalf("%q accepted as %+v", body, p)
			}
		case TypePay:
			if p.PaymentTokenID == nil || *p.PaymentTokenID == "" {
				t.Fatalf("%q accepted without a token", body)
			}
		default:
			t.Fatalf("%q accepted with type %q", body, p.Type)
		}
	})
}
