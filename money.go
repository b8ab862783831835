// Package billing holds the engine's domain vocabulary that every other package
// shares: money and currencies, the clock, prefixed ids and the error type. It
// imports only the standard library and shopspring/decimal.
package billing

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shopspring/decimal"
)

// Currency is an ISO 4217 currency code the engine supports, in upper case.
type Currency string

// currencyExponents is the one table of supported currencies and the number of
// decimal places (the ISO 4217 minor unit) an amount in each may carry.
var currencyExponents = map[Currency]int32{
	"IDR": 0,
	"VND": 0,
	"PHP": 2,
	"THB": 2,
	"MYR": 2,
	"SGD": 2,
	"USD": 2,
}

// Currencies returns the supported currency codes in alphabetical order.
func Currencies() []Currency {
	out := make([]Currency, 0, len(currencyExponents))
	for c := range currencyExponents {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ParseCurrency returns the Currency for code, which must be one of
// Currencies() written in upper case. field names the input in the error.
func ParseCurrency(field, code string) (Currency, error) {
	c := Currency(code)
	if !c.Valid() {
		return "", Invalid(field, fmt.Sprintf("must be one of %s", joinCurrencies()))
	}
	return c, nil
}

func joinCurrencies() string {
	cs := Currencies()
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// Valid reports whether c is a supported currency.
func (c Currency) Valid() bool {
	_, ok := currencyExponents[c]
	return ok
}

// Exponent returns the number of decimal places an amount in c carries
// (0 for IDR, 2 for PHP). It panics for an unsupported currency, which a
// Currency value that came through ParseCurrency never is.
func (c Currency) Exponent() int32 {
	e, ok := currencyExponents[c]
	if !ok {
		panic(fmt.Sprintf("billing: unsupported currency %q", string(c)))
	}
	return e
}

// Round rounds d to the currency's precision, half away from zero
// (IDR 2.5 → 3, IDR -2.5 → -3, PHP 0.005 → 0.01). It is the engine's only
// rounding rule for money and is applied once, to each invoice line.
func (c Currency) Round(d decimal.Decimal) decimal.Decimal {
	return d.Round(c.Exponent())
}

// Money is an exact amount in one currency.
type Money struct {
	Amount   decimal.Decimal
	Currency Currency
}

// NewMoney returns amount in currency c, or an error naming field when c is
// not supported or amount has more decimal places than c allows.
func NewMoney(field string, amount decimal.Decimal, c Currency) (Money, error) {
	if !c.Valid() {
		return Money{}, Invalid(field, fmt.Sprintf("currency must be one of %s", joinCurrencies()))
	}
	if DecimalPlaces(amount) > c.Exponent() {
		return Money{}, Invalid(field, fmt.Sprintf("%s amounts allow at most %d decimal places", c, c.Exponent()))
	}
	return Money{Amount: amount, Currency: c}, nil
}

// Add returns m + o. It returns an error when the currencies differ.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("add %s to %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	return Money{Amount: m.Amount.Add(o.Amount), Currency: m.Currency}, nil
}

// Sub returns m − o. It returns an error when the currencies differ.
func (m Money) Sub(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("subtract %s from %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	return Money{Amount: m.Amount.Sub(o.Amount), Currency: m.Currency}, nil
}

// Round returns m rounded to its currency's precision (see Currency.Round).
func (m Money) Round() Money {
	return Money{Amount: m.Currency.Round(m.Amount), Currency: m.Currency}
}

// Equal reports whether m and o are the same amount in the same currency;
// 1.50 and 1.5 are equal.
func (m Money) Equal(o Money) bool {
	return m.Currency == o.Currency && m.Amount.Equal(o.Amount)
}

// String formats m with exactly its currency's decimal places, e.g.
// "IDR 150000" or "PHP 10000.10".
func (m Money) String() string {
	if !m.Currency.Valid() {
		return m.Amount.String() + " " + string(m.Currency)
	}
	return string(m.Currency) + " " + m.Amount.StringFixed(m.Currency.Exponent())
}

// ErrCurrencyMismatch is returned (wrapped) by Money arithmetic on two
// different currencies.
var ErrCurrencyMismatch = &Error{Code: EINVALID, Reason: ReasonInvalidValue, Message: "currencies differ"}

// DecimalPlaces returns how many decimal places d needs to be written
// exactly: 0 for 150000 and for 1.0e3, 2 for 10000.01, 1 for 1.50.
func DecimalPlaces(d decimal.Decimal) int32 {
	if d.Exponent() >= 0 {
		return 0
	}
	// Strip trailing zeros of the coefficient: 1.50 is 150e-2 → 15e-1.
	places := -d.Exponent()
	for places > 0 && d.Truncate(places-1).Equal(d) {
		places--
	}
	return places
}
