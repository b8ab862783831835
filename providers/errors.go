package providers

import (
	"errors"
	"fmt"
)

// Kind classifies a provider error by what the caller should do about it.
type Kind string

// Error kinds.
const (
	// KindDeclined: the provider refused the payment for a reason of the
	// payer's (Code says which: INSUFFICIENT_BALANCE, INVALID_TOKEN, …). The
	// payment request is FAILED; retrying the same call gives the same answer.
	KindDeclined Kind = "declined"
	// KindTransient: the call may or may not have reached the provider
	// (timeout, 5xx, rate limit). Retrying it with the same idempotency key
	// is safe and is the way to find out.
	KindTransient Kind = "transient"
	// KindInvalid: the provider rejected the call itself (bad credentials,
	// an unsupported operation, a malformed request). Never retry it as is.
	KindInvalid Kind = "invalid"
)

// Error is an error from a provider.
type Error struct {
	Provider Name
	Kind     Kind
	// Code is the provider's error or failure code, when it gave one.
	Code string
	// Message is safe to show to the engine's API callers.
	Message string
	// Field names the request field at fault, when one is (Invalid only).
	Field string
	// Err is the underlying error, for logs.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Provider, e.Kind)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Declined returns a KindDeclined error with the failure code.
func Declined(p Name, code, message string) *Error {
	return &Error{Provider: p, Kind: KindDeclined, Code: code, Message: message}
}

// Transient returns a KindTransient error wrapping err.
func Transient(p Name, err error) *Error {
	return &Error{Provider: p, Kind: KindTransient, Message: "the provider did not answer in time", Err: err}
}

// Invalid returns a KindInvalid error.
func Invalid(p Name, code, message string) *Error {
	return &Error{Provider: p, Kind: KindInvalid, Code: code, Message: message}
}

// KindOf returns the kind of err. An error that is not an *Error (a bug
// in an adapter, a network error it did not wrap) counts as transient:
// nothing tells that the call did not reach the provider.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// AsError returns the *Error inside err, if there is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// ErrNotFound is returned by GetPayment when the provider has no payment
// request by that reference.
var ErrNotFound = errors.New("providers: no such payment request at the provider")

// ErrUnverified is wrapped by ParseCallback's error when a callback does not
// prove that it comes from the provider (a wrong or missing token, a bad or
// stale signature). Such a callback must change nothing.
var ErrUnverified = errors.New("callback could not be verified")

// ErrMalformed is wrapped by ParseCallback's error when a verified callback
// cannot be read.
var ErrMalformed = errors.New("callback body could not be read")
