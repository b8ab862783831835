package engine

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tagihan/billing"
)

// FuzzDecodeInvoiceInput feeds the decoders of the invoice actions'
// bodies arbitrary bytes: they never panic, every refusal is a validation
// error naming fields, and what they accept has what the service relies on
// (an amount, a reason and a note within their limits).
func FuzzDecodeInvoiceInput(f *testing.F) {
	for _, seed := range []string{
		`{}`, ``, `null`, `[]`, `{"note": "checked the meter photo"}`, `{"note": 1}`, `{"note": "a", "x": 1}`,
		`{"amount": -25000, "reason": "goodwill credit"}`, `{"amount": "671.06", "reason": "fee", "note": "n"}`,
		`{"amount": 1e400, "reason": "x"}`, `{"amount": 10, "reason": "  "}`, `{"amount": 10, "reason": "a\u0000b"}`,
		`{"amount": 75750, "reason": "meter misread"}`, `{"reason": "no amount"}`,
	} {
		f.Add([]byte(seed))
	}
	named := func(t *testing.T, what string, err error) {
		e, ok := billing.AsError(err)
		if !ok || e.Code != billing.EINVALID || len(e.Fields) == 0 {
			t.Fatalf("%s: refusal %v is not a validation error naming a field", what, err)
		}
	}
	within := func(t *testing.T, what string, s *string, required bool) {
		if s == nil {
			if required {
				t.Fatalf("%s: accepted without it", what)
			}
			return
		}
		if (required && strings.TrimSpace(*s) == "") || !utf8.ValidString(*s) || utf8.RuneCountInString(*s) > maxNote {
			t.Fatalf("%s: accepted %q", what, *s)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if p, err := DecodeInvoiceAction(body); err != nil {
			named(t, "action", err)
		} else {
			within(t, "note", p.Note, false)
		}
		if p, err := DecodeAdjustment(body); err != nil {
			named(t, "adjustment", err)
		} else {
			if p.Amount == nil {
				t.Fatal("adjustment accepted without an amount")
			}
			within(t, "reason", &p.Reason, true)
			within(t, "note", p.Note, false)
		}
		if p, err := DecodeCreditNote(body); err != nil {
			named(t, "credit note", err)
		} else {
			if p.Amount == nil {
				t.Fatal("credit note accepted without an amount")
			}
			within(t, "reason", &p.Reason, true)
		}
	})
}
