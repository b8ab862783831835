package metering

import (
	"bytes"
	"encoding/json"

	"github.com/shopspring/decimal"
)

// sameContent reports whether two events with one event_id say the same
// thing: the same customer, meter, quantity (1.5 = 1.50), timestamp,
// correction, and properties equal as JSON values (key order, spacing and
// the writing of numbers aside). It is the slow path behind a hash
// mismatch, which a resend of the same bytes never reaches.
func sameContent(a, b *event) bool {
	return a.customerID == b.customerID && a.meterCode == b.meterCode && a.quantity.Equal(b.quantity) &&
		a.timestamp.Equal(b.timestamp) && a.correctionOf == b.correctionOf && sameJSON(a.properties, b.properties)
}

// sameJSON compares two JSON objects by value; nil is the empty object.
func sameJSON(a, b []byte) bool {
	va, okA := decodeValue(a)
	vb, okB := decodeValue(b)
	return okA && okB && equalValues(va, vb)
}

func decodeValue(raw []byte) (any, bool) {
	if raw == nil {
		return map[string]any{}, true
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

func equalValues(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		dx, errX := decimal.NewFromString(string(x))
		dy, errY := decimal.NewFromString(string(y))
		if errX != nil || errY != nil {
			return x == y
		}
		return dx.Equal(dy)
	default:
		return a == b
	}
}
