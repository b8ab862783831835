package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/shopspring/decimal"
)

// Limits on the decimals the API accepts. They keep a hostile input such as
// 1e999999999 from turning into a huge allocation, and are far above any
// amount, price or quantity a utility bills.
const (
	maxNumberLength   = 64 // characters of the literal, sign and exponent included
	maxIntegerDigits  = 30 // digits before the decimal point, after applying the exponent
	maxFractionDigits = 30 // digits after the decimal point, after applying the exponent
)

var errNotANumber = errors.New("must be a number, written as a JSON number or a numeric string such as \"10000.01\"")

// ParseDecimal parses a decimal from a JSON token: a number (150000,
// 10000.01, 1.5e3) or a string holding one ("10000.01"). It never goes
// through float64, so every digit written is kept. Strings accept the same
// grammar as JSON numbers; anything else (NaN, hex, spaces, an empty string)
// is an error.
func ParseDecimal(token []byte) (decimal.Decimal, error) {
	lit := token
	if len(lit) >= 2 && lit[0] == '"' && lit[len(lit)-1] == '"' {
		lit = lit[1 : len(lit)-1]
	}
	return parseDecimalLiteral(lit)
}

// ParseDecimalString parses a decimal written as a JSON number literal
// without quotes ("10000.01"), as ParseDecimal does for a string token.
func ParseDecimalString(s string) (decimal.Decimal, error) {
	return parseDecimalLiteral([]byte(s))
}

func parseDecimalLiteral(lit []byte) (decimal.Decimal, error) {
	if len(lit) == 0 || len(lit) > maxNumberLength || !isJSONNumber(lit) {
		return decimal.Decimal{}, errNotANumber
	}
	// Bound the magnitude before decimal builds it: count the digits the
	// value has on each side of the point once the exponent is applied.
	mant, exp := lit, 0
	if i := bytes.IndexAny(lit, "eE"); i >= 0 {
		mant = lit[:i]
		e, ok := smallInt(lit[i+1:])
		if !ok {
			return decimal.Decimal{}, fmt.Errorf("exponent too large")
		}
		exp = e
	}
	mant = bytes.TrimPrefix(mant, []byte("-"))
	intPart, fracPart := mant, []byte(nil)
	if i := bytes.IndexByte(mant, '.'); i >= 0 {
		intPart, fracPart = mant[:i], mant[i+1:]
	}
	// In all = intPart+fracPart the decimal point sits at index point once
	// the exponent is applied; the significant digits run from first to last.
	all := append(append([]byte{}, intPart...), fracPart...)
	point := len(intPart) + exp
	first := bytes.IndexFunc(all, func(r rune) bool { return r != '0' })
	if first >= 0 {
		last := bytes.LastIndexFunc(all, func(r rune) bool { return r != '0' })
		if point-first > maxIntegerDigits {
			return decimal.Decimal{}, fmt.Errorf("too large: at most %d digits before the decimal point", maxIntegerDigits)
		}
		if last+1-point > maxFractionDigits {
			return decimal.Decimal{}, fmt.Errorf("too many decimal places: at most %d", maxFractionDigits)
		}
	}
	d, err := decimal.NewFromString(string(lit))
	if err != nil {
		return decimal.Decimal{}, errNotANumber
	}
	return d, nil
}

// smallInt parses an optionally signed run of digits whose value is at most
// 1000 in magnitude.
func smallInt(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
		if n > 1000 {
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// isJSONNumber reports whether b is exactly a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Number is a decimal as the API reads and writes it: written as a bare
// JSON number with every digit kept (150000, 10000.01), read from a JSON
// number or a numeric string. Use it for amounts, prices and quantities in
// request and response bodies; the domain works on decimal.Decimal.
type Number struct{ decimal.Decimal }

// NumberOf wraps d.
func NumberOf(d decimal.Decimal) Number { return Number{d} }

// MarshalJSON writes the exact decimal as a JSON number.
func (n Number) MarshalJSON() ([]byte, error) {
	return []byte(n.Decimal.String()), nil
}

// NumberType is the reflect.Type of Number. A decoding error for a Number
// is a *json.UnmarshalTypeError with this Type whose Value is the reason
// ("too many decimal places: at most 30"), so that encoding/json fills in the
// field's path and the API can name it.
var NumberType = reflect.TypeFor[Number]()

// UnmarshalJSON reads a JSON number or numeric string exactly (see
// ParseDecimal). JSON null leaves n unchanged.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	d, err := ParseDecimal(b)
	if err != nil {
		return &json.UnmarshalTypeError{Value: err.Error(), Type: NumberType}
	}
	n.Decimal = d
	return nil
}
