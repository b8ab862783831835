package sandbox

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing/providers"
)

// Failure codes of Xendit's test amounts: a payment of exactly one of these
// amounts fails with the code (SPEC §6.2).
var testAmounts = []struct {
	amount decimal.Decimal
	code   string
}{
	{decimal.NewFromInt(21110), "INSUFFICIENT_BALANCE"},
	{decimal.NewFromInt(21103), "ACCOUNT_ACCESS_BLOCKED"},
	{decimal.NewFromInt(21106), "INVALID_ACCOUNT_DETAILS"},
	{decimal.NewFromInt(21107), "MAXIMUM_LIMIT_REACHED"},
}

// amountFailure returns the failure code of a test amount, or "".
func amountFailure(amount decimal.Decimal) string {
	for _, t := range testAmounts {
		if amount.Equal(t.amount) {
			return t.code
		}
	}
	return ""
}

// Scripted behaviours a token can carry in metadata.sandbox_behavior.
const (
	behaviorAlwaysFail         = "always_fail"
	behaviorFailUntil          = "fail_until:"
	behaviorPendingThenSucceed = "pending_then_succeed"
	behaviorTimeoutOnce        = "timeout_once"
)

// behaviorFailureCode is the failure code of always_fail and fail_until:
// the customer's account has no money (yet).
const behaviorFailureCode = "INSUFFICIENT_BALANCE"

// behaviorField is where callers set a token's behaviour.
const behaviorField = "metadata.sandbox_behavior"

// parseBehavior reads metadata.sandbox_behavior: absent (""), or one of
// always_fail, fail_until:<RFC 3339>, pending_then_succeed, timeout_once.
func parseBehavior(metadata map[string]json.RawMessage) (string, error) {
	raw, ok := metadata["sandbox_behavior"]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidBehavior("must be a string")
	}
	switch {
	case s == behaviorAlwaysFail, s == behaviorPendingThenSucceed, s == behaviorTimeoutOnce:
		return s, nil
	case strings.HasPrefix(s, behaviorFailUntil):
		if _, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(s, behaviorFailUntil)); err != nil {
			return "", invalidBehavior("fail_until needs an RFC 3339 time, such as fail_until:2026-03-01T00:00:00Z")
		}
		return s, nil
	}
	return "", invalidBehavior("must be always_fail, fail_until:<RFC 3339 time>, pending_then_succeed or timeout_once")
}

func invalidBehavior(msg string) error {
	e := providers.Invalid(providers.Sandbox, "INVALID_SANDBOX_BEHAVIOR", behaviorField+" "+msg)
	e.Field = behaviorField
	return e
}

// chargeOutcome decides a charge of a token with behaviour b at now (the
// business clock): the behaviour first (always_fail, fail_until before its
// time), then the test amounts; anything else succeeds. It returns the
// failure code, or "" for success.
func chargeOutcome(b string, amount decimal.Decimal, now time.Time) string {
	switch {
	case b == behaviorAlwaysFail:
		return behaviorFailureCode
	case strings.HasPrefix(b, behaviorFailUntil):
		until, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(b, behaviorFailUntil))
		if err == nil && now.Before(until) {
			return behaviorFailureCode
		}
	}
	return amountFailure(amount)
}
