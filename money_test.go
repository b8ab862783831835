package billing_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestCurrencyExponents(t *testing.T) {
	want := map[billing.Currency]int32{"IDR": 0, "VND": 0, "PHP": 2, "THB": 2, "MYR": 2, "SGD": 2, "USD": 2}
	for c, e := range want {
		if got := c.Exponent(); got != e {
			t.Errorf("%s exponent = %d, want %d", c, got, e)
		}
	}
	if len(billing.Currencies()) != len(want) {
		t.Errorf("Currencies() = %v, want %d entries", billing.Currencies(), len(want))
	}
	for _, bad := range []string{"", "idr", "EUR", "IDR ", "XXX"} {
		if _, err := billing.ParseCurrency("currency", bad); err == nil {
			t.Errorf("ParseCurrency(%q) accepted", bad)
		} else if e, _ := billing.AsError(err); e.Fields[0].Field != "currency" {
			t.Errorf("ParseCurrency(%q) error names %q", bad, e.Fields[0].Field)
		}
	}
}

func TestRoundHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		cur      billing.Currency
		in, want string
	}{
		{"IDR", "2.5", "3"},
		{"IDR", "-2.5", "-3"},
		{"IDR", "2.4999999999", "2"},
		{"IDR", "3.5", "4"}, // not banker's rounding
		{"IDR", "0.5", "1"},
		{"IDR", "-0.5", "-1"},
		{"IDR", "-0.4", "0"},
		{"IDR", "149999.5", "150000"},
		{"VND", "12345.500000000001", "12346"},
		{"PHP", "0.005", "0.01"},
		{"PHP", "-0.005", "-0.01"},
		{"PHP", "0.004999", "0"},
		{"PHP", "10000.015", "10000.02"},
		{"PHP", "10000.025", "10000.03"},
		{"USD", "1.445", "1.45"},
		{"USD", "2.675", "2.68"}, // 2.675 is exact here, unlike float64
		{"THB", "100", "100"},
		{"SGD", "0.000000000001", "0"},
		{"MYR", "99.995", "100"},
	}
	for _, tt := range tests {
		got := tt.cur.Round(dec(tt.in))
		if !got.Equal(dec(tt.want)) {
			t.Errorf("%s Round(%s) = %s, want %s", tt.cur, tt.in, got, tt.want)
		}
	}
}

func TestRoundedLinesAddUpExactly(t *testing.T) {
	// Three lines of one third each: the total is the sum of the rounded
	// lines, never the rounding of the unrounded sum.
	third := dec("100").Div(dec("3")) // 33.3333…
	cur := billing.Currency("PHP")
	total := billing.Money{Amount: decimal.Zero, Currency: cur}
	for i := 0; i < 3; i++ {
		line := billing.Money{Amount: third, Currency: cur}.Round()
		var err error
		if total, err = total.Add(line); err != nil {
			t.Fatal(err)
		}
	}
	if !total.Amount.Equal(dec("99.99")) {
		t.Fatalf("total = %s, want 99.99", total)
	}
}

func TestMoneyArithmetic(t *testing.T) {
	a := billing.Money{Amount: dec("10000.01"), Currency: "PHP"}
	b := billing.Money{Amount: dec("0.99"), Currency: "PHP"}
	sum, err := a.Add(b)
	if err != nil || !sum.Equal(billing.Money{Amount: dec("10001"), Currency: "PHP"}) {
		t.Fatalf("Add = %v, %v", sum, err)
	}
	diff, err := b.Sub(a)
	if err != nil || !diff.Amount.Equal(dec("-9999.02")) {
		t.Fatalf("Sub = %v, %v", diff, err)
	}
	idr := billing.Money{Amount: dec("1"), Currency: "IDR"}
	if _, err := a.Add(idr); !errors.Is(err, billing.ErrCurrencyMismatch) {
		t.Fatalf("Add across currencies: err = %v", err)
	}
	if _, err := a.Sub(idr); !errors.Is(err, billing.ErrCurrencyMismatch) {
		t.Fatalf("Sub across currencies: err = %v", err)
	}
	if got := (billing.Money{Amount: dec("10000.1"), Currency: "PHP"}).String(); got != "PHP 10000.10" {
		t.Errorf("String = %q", got)
	}
	if got := (billing.Money{Amount: dec("150000"), Currency: "IDR"}).String(); got != "IDR 150000" {
		t.Errorf("String = %q", got)
	}
}

func TestNewMoneyPrecision(t *testing.T) {
	tests := []struct {
		cur billing.Currency
		in  string
		ok  bool
	}{
		{"IDR", "150000", true},
		{"IDR", "150000.0", true}, // value has no decimals
		{"IDR", "150000.5", false},
		{"VND", "1.000", true},
		{"PHP", "10000.01", true},
		{"PHP", "10000.010", true},
		{"PHP", "10000.001", false},
		{"USD", "0.1", true},
		{"EUR", "1", false},
	}
	for _, tt := range tests {
		_, err := billing.NewMoney("amount", dec(tt.in), tt.cur)
		if (err == nil) != tt.ok {
			t.Errorf("NewMoney(%s %s) err = %v, want ok=%v", tt.cur, tt.in, err, tt.ok)
		}
		if err != nil {
			e, _ := billing.AsError(err)
			if e == nil || e.Fields[0].Field != "amount" || e.Code != billing.EINVALID {
				t.Errorf("NewMoney(%s %s) error = %#v, want a validation error on amount", tt.cur, tt.in, err)
			}
		}
	}
}

func TestDecimalPlaces(t *testing.T) {
	for in, want := range map[string]int32{
		"0": 0, "150000": 0, "1e3": 0, "1.50": 1, "10000.01": 2, "0.000000000001": 12, "-2.5": 1, "1.0000": 0,
	} {
		if got := billing.DecimalPlaces(dec(in)); got != want {
			t.Errorf("DecimalPlaces(%s) = %d, want %d", in, got, want)
		}
	}
}
