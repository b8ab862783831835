package billing_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

func TestParseDecimal(t *testing.T) {
	good := map[string]string{
		`150000`:                           "150000",
		`10000.01`:                         "10000.01",
		`"10000.01"`:                       "10000.01",
		`-2.5`:                             "-2.5",
		`0`:                                "0",
		`1.5e3`:                            "1500",
		`1E-2`:                             "0.01",
		`"0.000000000001"`:                 "0.000000000001",
		`9007199254740993`:                 "9007199254740993", // not representable in float64
		`0.1`:                              "0.1",
		`123456789012345.67`:               "123456789012345.67",
		`"-0"`:                             "0",
		`1e29`:                             "100000000000000000000000000000",
		`0.100000000000000000000000000000`: "0.1",
	}
	for in, want := range good {
		d, err := billing.ParseDecimal([]byte(in))
		if err != nil {
			t.Errorf("ParseDecimal(%s): %v", in, err)
			continue
		}
		if !d.Equal(decimal.RequireFromString(want)) {
			t.Errorf("ParseDecimal(%s) = %s, want %s", in, d, want)
		}
	}
	bad := []string{
		``, `""`, `"abc"`, `NaN`, `"NaN"`, `Infinity`, `0x10`, `"0x10"`, `1.`, `.5`, `"+1"`, `+1`,
		`01`, `1e`, `1e+`, `"1 "`, `" 1"`, `--1`, `1.2.3`, `true`, `null`, `[1]`, `{}`, `1e999999999`,
		`1e-999999999`, `"1e31"`, `1e30`, strings.Repeat("9", 31), "0." + strings.Repeat("0", 30) + "1",
		strings.Repeat("1", 65), `"1,000"`, `"١"`, `"0.1E70"`, `0.0001e35`, `100e-33`,
	}
	for _, in := range bad {
		if d, err := billing.ParseDecimal([]byte(in)); err == nil {
			t.Errorf("ParseDecimal(%s) = %s, want an error", in, d)
		}
	}
}

func TestNumberJSON(t *testing.T) {
	var v struct {
		Amount billing.Number `json:"amount"`
	}
	if err := json.Unmarshal([]byte(`{"amount": 10000.01}`), &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"amount":10000.01}` {
		t.Fatalf("round trip = %s", out)
	}
	if err := json.Unmarshal([]byte(`{"amount": "9007199254740993.5"}`), &v); err != nil {
		t.Fatal(err)
	}
	out, _ = json.Marshal(v)
	if string(out) != `{"amount":9007199254740993.5}` {
		t.Fatalf("string input round trip = %s", out)
	}
	err := json.Unmarshal([]byte(`{"amount": "ten"}`), &v)
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "amount" || te.Type != billing.NumberType {
		t.Fatalf("error = %#v, want an UnmarshalTypeError naming amount", err)
	}
}

// FuzzParseDecimal checks that the parser never panics, never accepts what
// is not a JSON number, and that what it accepts survives a round trip
// through the engine's JSON writer unchanged.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{`150000`, `10000.01`, `"10000.01"`, `-2.5`, `1e5`, `1E-30`, `"abc"`, `0x1`, `1e999999`, `"0.000000000001"`, `-0`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := billing.ParseDecimal(in)
		if err != nil {
			return
		}
		lit := in
		if len(lit) >= 2 && lit[0] == '"' {
			lit = lit[1 : len(lit)-1]
		}
		if !json.Valid(lit) {
			t.Fatalf("accepted %q, which is not a JSON number", in)
		}
		out, err := billing.NumberOf(d).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := billing.ParseDecimal(out)
		if err != nil || !again.Equal(d) {
			t.Fatalf("round trip of %q: wrote %s, read %s (%v)", in, out, again, err)
		}
		if billing.DecimalPlaces(d) > 30 {
			t.Fatalf("accepted %q with %d decimal places", in, billing.DecimalPlaces(d))
		}
	})
}

// FuzzMoney checks that amounts accepted for a currency have at most its
// decimal places and that rounding is idempotent and moves by at most half a
// minor unit.
func FuzzMoney(f *testing.F) {
	f.Add([]byte(`10000.015`), uint8(2))
	f.Add([]byte(`-2.5`), uint8(0))
	f.Add([]byte(`"150000"`), uint8(1))
	cs := billing.Currencies()
	f.Fuzz(func(t *testing.T, in []byte, ci uint8) {
		c := cs[int(ci)%len(cs)]
		d, err := billing.ParseDecimal(in)
		if err != nil {
			return
		}
		r := c.Round(d)
		if !c.Round(r).Equal(r) {
			t.Fatalf("Round not idempotent for %s %s", c, d)
		}
		half := decimal.New(5, -c.Exponent()-1)
		if r.Sub(d).Abs().GreaterThan(half) {
			t.Fatalf("Round(%s %s) = %s moved more than half a unit", c, d, r)
		}
		if _, err := billing.NewMoney("amount", r, c); err != nil {
			t.Fatalf("rounded amount %s %s rejected: %v", c, r, err)
		}
		m, err := billing.NewMoney("amount", d, c)
		if err == nil && !m.Amount.Equal(r) {
			t.Fatalf("accepted %s %s, which rounding changes to %s", c, d, r)
		}
	})
}
