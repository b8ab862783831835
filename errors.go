package billing

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorCode is the generic category of an Error. The HTTP layer maps each
// code to a status in one table; nothing else depends on HTTP.
type ErrorCode string

// Error codes.
const (
	EINVALID      ErrorCode = "invalid"      // the input is wrong (400)
	EUNAUTHORIZED ErrorCode = "unauthorized" // no or bad credentials (401)
	EFORBIDDEN    ErrorCode = "forbidden"    // not allowed in this state or mode (403)
	ENOTFOUND     ErrorCode = "not_found"    // no such thing for this business (404)
	ECONFLICT     ErrorCode = "conflict"     // clashes with stored state (409)
	ETOOLARGE     ErrorCode = "too_large"    // body over the limit (413)
	EUNSUPPORTED  ErrorCode = "unsupported"  // content type not accepted (415)
	ERATELIMIT    ErrorCode = "rate_limit"   // too many requests (429)
	EINTERNAL     ErrorCode = "internal"     // anything else; details only in logs (500)
)

// Reasons: the stable API error_code values (SPEC §3), Xendit's names.
const (
	ReasonValidation         = "API_VALIDATION_ERROR"
	ReasonInvalidValue       = "INVALID_VALUE_ERROR"
	ReasonInvalidAPIKey      = "INVALID_API_KEY"
	ReasonForbidden          = "REQUEST_FORBIDDEN_ERROR"
	ReasonIneligibleCycle    = "INELIGIBLE_CYCLE_REQUEST"
	ReasonNotFound           = "DATA_NOT_FOUND"
	ReasonDuplicate          = "DUPLICATE_ERROR"
	ReasonIdempotency        = "IDEMPOTENCY_ERROR"
	ReasonTooLarge           = "REQUEST_TOO_LARGE"
	ReasonUnsupportedContent = "UNSUPPORTED_CONTENT_TYPE"
	ReasonRateLimit          = "RATE_LIMIT_EXCEEDED"
	ReasonServer             = "SERVER_ERROR"
)

// Error is an error the engine means to show: Code is its category, Reason
// the API's error_code, Message a sentence safe to show to the caller, and
// Fields the inputs at fault (for validation errors). Any other error that
// reaches the API is reported as SERVER_ERROR and only logged.
type Error struct {
	Code    ErrorCode
	Reason  string
	Message string
	Fields  []FieldError
}

// FieldError names one bad input: Field is its JSON path
// ("schedule.interval", "events[3].quantity"), Message what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Reason + ": " + e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return e.Reason + ": " + e.Message + " (" + strings.Join(parts, "; ") + ")"
}

// Errorf returns an *Error with a formatted message.
func Errorf(code ErrorCode, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an API_VALIDATION_ERROR for one field.
func Invalid(field, message string) *Error {
	return &Error{
		Code:    EINVALID,
		Reason:  ReasonValidation,
		Message: field + " " + message,
		Fields:  []FieldError{{Field: field, Message: message}},
	}
}

// NotFound returns a DATA_NOT_FOUND error for a kind of thing ("customer").
func NotFound(what string) *Error {
	return &Error{Code: ENOTFOUND, Reason: ReasonNotFound, Message: what + " not found"}
}

// AsError returns the *Error inside err, if there is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CodeOf returns err's ErrorCode: EINTERNAL for an error that is not an
// *Error, "" for nil.
func CodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	if e, ok := AsError(err); ok {
		return e.Code
	}
	return EINTERNAL
}

// Validation collects the field errors of one input so that a caller gets
// all of them at once. The zero value is ready to use.
type Validation struct {
	fields []FieldError
}

// Add records that field is wrong.
func (v *Validation) Add(field, message string) {
	v.fields = append(v.fields, FieldError{Field: field, Message: message})
}

// Check records message for field when ok is false, and returns ok.
func (v *Validation) Check(ok bool, field, message string) bool {
	if !ok {
		v.Add(field, message)
	}
	return ok
}

// Merge adds the field errors of err, which must be a validation *Error; any
// other non-nil error is added under field.
func (v *Validation) Merge(field string, err error) {
	if err == nil {
		return
	}
	if e, ok := AsError(err); ok && len(e.Fields) > 0 {
		v.fields = append(v.fields, e.Fields...)
		return
	}
	v.Add(field, err.Error())
}

// Err returns nil when nothing was recorded, else an API_VALIDATION_ERROR
// listing every field.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	msg := v.fields[0].Field + " " + v.fields[0].Message
	if n := len(v.fields); n > 1 {
		msg = fmt.Sprintf("%s (and %d more)", msg, n-1)
	}
	return &Error{Code: EINVALID, Reason: ReasonValidation, Message: msg, Fields: append([]FieldError(nil), v.fields...)}
}
