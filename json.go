package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// DecodeJSON decodes body, which must hold exactly one JSON object, into v.
// With strict, a field v does not declare is an error (engine-only
// resources); without, it is ignored (Xendit-shaped resources, whose SDKs
// send extra fields). Every failure is an API_VALIDATION_ERROR naming the
// field when there is one: {"field": "amount", "message": "must be a number"}.
func DecodeJSON(body []byte, v any, strict bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Invalid("body", "must be a JSON object")
	}
	if trimmed[0] != '{' {
		return Invalid("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("body", "must hold exactly one JSON object; found more data after it")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Invalid("body", fmt.Sprintf("is not valid JSON (at byte %d: %s)", syn.Offset, strings.TrimPrefix(syn.Error(), "json: ")))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("body", "is not valid JSON (it ends too early)")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		if typ.Type == NumberType {
			return Invalid(field, typ.Value)
		}
		return Invalid(field, "must be "+describeType(typ.Type))
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if name = strings.Trim(name, `"`); name == "" {
			return Invalid("body", "has a field with an empty name")
		}
		return Invalid(name, "is not a known field")
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Invalid("body", "could not be read: "+strings.TrimPrefix(msg, "json: "))
}

// describeType names a Go type the way a JSON author thinks of it.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value of another type"
}

// Optional is a field of a PATCH body: Set says whether the field was sent,
// Null whether it was sent as null (clear it), Value what was sent otherwise.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON records that the field was present.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}
