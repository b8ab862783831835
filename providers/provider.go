// Package providers defines what the engine needs from a payment provider
// (SPEC §6.1): start a Pay-and-Save linking, charge a saved token, look a
// payment up, create a hosted payment link, cancel, and verify and parse
// the provider's callbacks. The adapters live in its subpackages (sandbox,
// xendit, wooshpay); only cmd/billing imports them. This package imports
// only the standard library, decimal and the root package.
package providers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/tagihan/billing"
)

// Name identifies a provider adapter.
type Name string

// The providers the engine knows.
const (
	Sandbox  Name = "sandbox"
	Xendit   Name = "xendit"
	WooshPay Name = "wooshpay"
)

// Names lists every provider, in the order the documentation gives them.
var Names = []Name{Sandbox, Xendit, WooshPay}

// Status is the state of a payment request at the provider, in the
// engine's (Xendit's) vocabulary. Adapters translate their provider's
// statuses into these.
type Status string

// Statuses.
const (
	StatusRequiresAction Status = "REQUIRES_ACTION" // waiting for the customer (follow Actions)
	StatusPending        Status = "PENDING"         // accepted, the outcome comes later
	StatusSucceeded      Status = "SUCCEEDED"       // the money was captured
	StatusFailed         Status = "FAILED"          // declined; FailureCode says why
	StatusCanceled       Status = "CANCELED"        // cancelled before the customer paid
	StatusExpired        Status = "EXPIRED"         // the customer did not act in time
)

// Action is something the customer must do to complete a payment request
// (Xendit's actions[] item), such as following a redirect.
type Action struct {
	Type       string `json:"type"`       // REDIRECT_CUSTOMER, PRESENT_TO_CUSTOMER, …
	Descriptor string `json:"descriptor"` // WEB_URL, DEEPLINK_URL, …
	Value      string `json:"value"`
}

// Customer is what a provider may need to know about the payer.
type Customer struct {
	// ID is the engine's customer id ("cust-…"); adapters send it as the
	// customer's reference at the provider.
	ID           string
	Type         string // INDIVIDUAL or BUSINESS
	GivenNames   string
	Surname      string
	BusinessName string
	Email        string
	MobileNumber string
}

// LinkRequest starts a Pay-and-Save: a first payment that, when it
// succeeds, also saves the payer's payment method as a token.
type LinkRequest struct {
	BusinessID string
	// IdempotencyKey makes the call safe to repeat: the same key always
	// names the same linking at the provider.
	IdempotencyKey string
	// Reference is the engine's id of the payment request ("pr-…"). Adapters
	// send it so that it comes back in callbacks.
	Reference         string
	Customer          Customer
	Country           string
	Amount            billing.Money
	ChannelCode       string
	SuccessReturnURL  string
	FailureReturnURL  string
	ChannelProperties map[string]json.RawMessage
	Description       string
	// Metadata is the caller's; the saved token inherits it.
	Metadata map[string]json.RawMessage
	// Now is the business clock's reading. Real providers use their own
	// clocks; the sandbox judges time by this one.
	Now time.Time
}

// ChargeRequest charges a saved token without the customer present
// (merchant-initiated).
type ChargeRequest struct {
	BusinessID     string
	IdempotencyKey string
	Reference      string
	// TokenRef is the provider's id of the token to charge.
	TokenRef    string
	Country     string
	Amount      billing.Money
	ChannelCode string
	Description string
	Metadata    map[string]json.RawMessage
	Now         time.Time
}

// PaymentLinkRequest asks for a hosted page where the customer pays an
// amount owed (an invoice) while present.
type PaymentLinkRequest struct {
	BusinessID     string
	IdempotencyKey string
	Reference      string
	Customer       Customer
	Country        string
	Amount         billing.Money
	// ChannelCode is the channel to pay with, for providers whose links go
	// straight to one channel (Xendit). Others ignore it.
	ChannelCode string
	Description string
	// LineItems describe what is paid for, for providers that show them
	// (WooshPay's Checkout Session). Their total must equal Amount.
	LineItems  []LineItem
	SuccessURL string
	CancelURL  string
	Now        time.Time
}

// LineItem is one line of what a payment link pays for.
type LineItem struct {
	Name       string
	UnitAmount billing.Money
	Quantity   int64
}

// PaymentRef names a payment request at the provider for a look-up or a
// cancellation: by the idempotency key it was created with and, when the
// engine recorded it, the provider's own id.
type PaymentRef struct {
	BusinessID     string
	IdempotencyKey string
	ProviderRef    string
	Now            time.Time
}

// Result is what a provider says about a payment request.
type Result struct {
	Status Status
	// ProviderRef is the provider's id of the payment request.
	ProviderRef string
	// PaymentRef is the provider's id of the payment, once there is one.
	PaymentRef string
	// TokenRef is the provider's id of the token a succeeded Pay-and-Save
	// saved.
	TokenRef string
	// FailureCode says why a FAILED request failed (INSUFFICIENT_BALANCE, …).
	FailureCode string
	// Actions are what the customer must do, for REQUIRES_ACTION.
	Actions []Action
	// ChannelCode is the channel the provider chose, when the request did
	// not name one (payment links).
	ChannelCode string
	// ExpiresAt is when a payment link stops working, when the provider says.
	ExpiresAt *time.Time
}

// CallbackInput is a callback as it arrived over HTTP.
type CallbackInput struct {
	Header http.Header
	Query  url.Values
	Body   []byte
}

// NotificationKind says what a verified callback is about.
type NotificationKind string

// Notification kinds.
const (
	// NotifyPayment reports the state of a payment request (Result).
	NotifyPayment NotificationKind = "payment"
	// NotifyTokenActivated reports that a token became usable.
	NotifyTokenActivated NotificationKind = "token_activated"
	// NotifyTokenExpired reports that a token can no longer be charged.
	NotifyTokenExpired NotificationKind = "token_expired"
	// NotifyIgnored is an event the engine does not act on.
	NotifyIgnored NotificationKind = "ignored"
)

// Notification is a verified, parsed callback.
type Notification struct {
	// DedupeKey identifies the callback: the provider's event id when it
	// sends one, else a hash of the body. The same callback delivered twice
	// has the same key.
	DedupeKey string
	// EventType is the provider's name for the event (payment.capture,
	// payment_intent.succeeded, …).
	EventType string
	Kind      NotificationKind
	// Reference is the engine's id echoed back ("pr-…"), when present.
	Reference string
	// Result is the payment request's state, for NotifyPayment.
	Result Result
	// TokenRef is the provider's token id, for token notifications.
	TokenRef string
}

// Provider is one payment provider. Every method takes the business's
// configuration, so one adapter serves every business. Errors are *Error
// values whose Kind tells the caller what to do (see Error); GetPayment
// returns ErrNotFound when the provider has no such payment, and
// ParseCallback returns errors wrapping ErrUnverified or ErrMalformed.
type Provider interface {
	// Name returns the provider's name.
	Name() Name
	// StartLinking starts a Pay-and-Save. The result is usually
	// REQUIRES_ACTION with a redirect for the customer; the outcome comes
	// by callback.
	StartLinking(ctx context.Context, cfg Config, req LinkRequest) (Result, error)
	// Charge charges a saved token. The same idempotency key never
	// charges twice: repeating a call returns the first call's outcome.
	Charge(ctx context.Context, cfg Config, req ChargeRequest) (Result, error)
	// GetPayment asks what became of a payment request.
	GetPayment(ctx context.Context, cfg Config, ref PaymentRef) (Result, error)
	// CreatePaymentLink creates a hosted payment page for an amount owed.
	CreatePaymentLink(ctx context.Context, cfg Config, req PaymentLinkRequest) (Result, error)
	// CancelPayment cancels a payment request that waits for the customer.
	CancelPayment(ctx context.Context, cfg Config, ref PaymentRef) error
	// CancelToken makes a saved token unusable.
	CancelToken(ctx context.Context, cfg Config, tokenRef string) error
	// ParseCallback verifies a callback with the business's configuration
	// (now is the system clock, for signature tolerances) and parses it.
	ParseCallback(cfg Config, in CallbackInput, now time.Time) (Notification, error)
}

// BatchCharger is implemented by providers that can charge many saved
// tokens in one call (the sandbox, whose books are rows in the engine's
// database: one transaction for the lot instead of one per charge). The
// answer for reqs[i] is results[i] or errs[i], exactly what Charge(reqs[i])
// would have answered: the same idempotency rules, outcomes and errors, and
// no charge made for a request whose answer is an error Charge would have
// made none for. The engine charges through ChargeBatch when a provider
// has it and through Charge, concurrently, when it does not.
type BatchCharger interface {
	ChargeBatch(ctx context.Context, cfg Config, reqs []ChargeRequest) (results []Result, errs []error)
}

// Simulator is implemented by providers that can play the customer's part
// in test mode (the sandbox): complete a REQUIRES_ACTION payment request
// as if the customer paid amount. The outcome arrives by callback.
type Simulator interface {
	Simulate(ctx context.Context, cfg Config, ref PaymentRef, amount billing.Money) error
}

// CallbackSource is implemented by providers whose callbacks are rows in
// the engine's database (the sandbox), delivered by the engine's own jobs
// rather than over HTTP.
type CallbackSource interface {
	// DeliverDue hands the callbacks of the business due at or before
	// upTo to receive, in time order, in batches of at most max (one
	// when max < 1), and marks a batch delivered once receive returns nil
	// for it. It returns how many were delivered.
	DeliverDue(ctx context.Context, businessID string, upTo time.Time, max int, receive func(context.Context, []CallbackInput) error) (int, error)
	// DueBusinesses lists the businesses that have callbacks due by their
	// own clocks.
	DueBusinesses(ctx context.Context) ([]string, error)
	// NextDue returns when the business's earliest undelivered callback is
	// due; ok is false when it has none.
	NextDue(ctx context.Context, businessID string) (t time.Time, ok bool, err error)
}

// WebhookRegistrar is implemented by providers whose webhook endpoints are
// registered through their API (WooshPay). It returns the endpoint's id
// and its signing secret, which the provider shows only once.
type WebhookRegistrar interface {
	RegisterWebhook(ctx context.Context, cfg Config, url string) (endpointID, secret string, err error)
}
