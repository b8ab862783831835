package payments

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// Payment request types.
const (
	TypePay        = "PAY"
	TypePayAndSave = "PAY_AND_SAVE"
)

// Payment request statuses (SPEC §4.2). StatusSending is internal: the
// request and its provider idempotency key are committed but the provider's
// answer is not; the API shows it as PENDING.
const (
	StatusSending        = "SENDING"
	StatusRequiresAction = "REQUIRES_ACTION"
	StatusPending        = "PENDING"
	StatusSucceeded      = "SUCCEEDED"
	StatusFailed         = "FAILED"
	StatusCanceled       = "CANCELED"
	StatusExpired        = "EXPIRED"
)

// Payment token statuses used by the engine (SPEC §4.2 also lists
// REQUIRES_ACTION, PENDING and FAILED, which a token saved by a successful
// Pay and Save never has).
const (
	TokenActive   = "ACTIVE"
	TokenCanceled = "CANCELED"
	TokenExpired  = "EXPIRED"
)

// captureMethodAutomatic is the only capture method: the payment is
// captured when authorized.
const captureMethodAutomatic = "AUTOMATIC"

// prefixCapture starts the ids of captures in payment events (Xendit's).
const prefixCapture = "cap-"

// PaymentRequest is a request to collect a payment: Pay and Save (which
// saves the payment method), or a charge of a saved token.
type PaymentRequest struct {
	bun.BaseModel `bun:"table:payment_requests"`

	ID                string                     `bun:"id,pk"`
	BusinessID        string                     `bun:"business_id"`
	CustomerID        string                     `bun:"customer_id"`
	Type              string                     `bun:"type"`
	ReferenceID       string                     `bun:"reference_id"`
	Country           string                     `bun:"country"`
	Currency          string                     `bun:"currency"`
	RequestAmount     decimal.Decimal            `bun:"request_amount,type:numeric"`
	CaptureMethod     string                     `bun:"capture_method"`
	ChannelCode       string                     `bun:"channel_code"`
	ChannelProperties map[string]json.RawMessage `bun:"channel_properties,type:jsonb"`
	Description       *string                    `bun:"description"`
	Metadata          map[string]json.RawMessage `bun:"metadata,type:jsonb"`
	// PaymentTokenID is the token charged (PAY) or the token saved
	// (PAY_AND_SAVE, once it succeeded).
	PaymentTokenID  *string            `bun:"payment_token_id"`
	Status          string             `bun:"status"`
	FailureCode     *string            `bun:"failure_code"`
	Actions         []providers.Action `bun:"actions,type:jsonb"`
	LatestPaymentID *string            `bun:"latest_payment_id"`
	// PaymentLink marks a request made by CreatePaymentLink (the customer
	// pays on a hosted page; nothing is saved).
	PaymentLink bool   `bun:"payment_link"`
	Provider    string `bun:"provider"`
	// ProviderKey is the idempotency key sent to the provider, committed
	// before the provider is first called.
	ProviderKey string `bun:"provider_key"`
	// ProviderRef is the provider's id of the request, once known.
	ProviderRef *string `bun:"provider_ref"`
	// IdempotencyKey, RequestHash and IdempotencyExpiresAt tie the request
	// to the API request (idempotency-key header) that created it, so that
	// a retry of that request resumes it.
	IdempotencyKey       *string    `bun:"idempotency_key"`
	RequestHash          []byte     `bun:"request_hash"`
	IdempotencyExpiresAt *time.Time `bun:"idempotency_expires_at"`
	// NextCheckAt is when the reconciler next asks the provider (business
	// clock); nil once the request is final. Checks counts its questions.
	NextCheckAt *time.Time `bun:"next_check_at"`
	Checks      int        `bun:"checks"`
	// ExpiresAt is when a payment link stops working, when its provider
	// said (nil otherwise).
	ExpiresAt *time.Time `bun:"expires_at"`
	Created   time.Time  `bun:"created"`
	Updated   time.Time  `bun:"updated"`
}

// Amount returns the requested amount.
func (pr *PaymentRequest) Amount() billing.Money {
	return billing.Money{Amount: pr.RequestAmount, Currency: billing.Currency(pr.Currency)}
}

// Final reports whether the request's status can no longer change, except
// to SUCCEEDED when a provider reports money captured late.
func (pr *PaymentRequest) Final() bool {
	return pr.Status == StatusSucceeded || pr.Status == StatusFailed || pr.Status == StatusCanceled || pr.Status == StatusExpired
}

// APIStatus is the status the API shows: SENDING is PENDING.
func (pr *PaymentRequest) APIStatus() string {
	if pr.Status == StatusSending {
		return StatusPending
	}
	return pr.Status
}

type requestView struct {
	BusinessID        string                     `json:"business_id"`
	ReferenceID       string                     `json:"reference_id"`
	PaymentRequestID  string                     `json:"payment_request_id"`
	PaymentTokenID    *string                    `json:"payment_token_id"`
	CustomerID        string                     `json:"customer_id"`
	LatestPaymentID   *string                    `json:"latest_payment_id"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     billing.Number             `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties"`
	Actions           []providers.Action         `json:"actions"`
	Status            string                     `json:"status"`
	FailureCode       *string                    `json:"failure_code"`
	Description       *string                    `json:"description"`
	Metadata          map[string]json.RawMessage `json:"metadata"`
	Created           string                     `json:"created"`
	Updated           string                     `json:"updated"`
}

// MarshalJSON writes the request in Xendit's v3 payment request shape.
func (pr *PaymentRequest) MarshalJSON() ([]byte, error) {
	actions := pr.Actions
	if actions == nil {
		actions = []providers.Action{}
	}
	return json.Marshal(requestView{
		BusinessID: pr.BusinessID, ReferenceID: pr.ReferenceID, PaymentRequestID: pr.ID, PaymentTokenID: pr.PaymentTokenID,
		CustomerID: pr.CustomerID, LatestPaymentID: pr.LatestPaymentID, Type: pr.Type, Country: pr.Country, Currency: pr.Currency,
		RequestAmount: billing.NumberOf(pr.RequestAmount), CaptureMethod: pr.CaptureMethod, ChannelCode: pr.ChannelCode,
		ChannelProperties: pr.ChannelProperties, Actions: actions, Status: pr.APIStatus(), FailureCode: pr.FailureCode,
		Description: pr.Description, Metadata: pr.Metadata, Created: billing.FormatTime(pr.Created), Updated: billing.FormatTime(pr.Updated),
	})
}

// PaymentToken is a saved payment method of a customer, with the record
// of the customer's consent.
type PaymentToken struct {
	bun.BaseModel `bun:"table:payment_tokens"`

	ID               string                     `bun:"id,pk"`
	BusinessID       string                     `bun:"business_id"`
	CustomerID       string                     `bun:"customer_id"`
	ReferenceID      string                     `bun:"reference_id"`
	Provider         string                     `bun:"provider"`
	ProviderTokenRef string                     `bun:"provider_token_ref"`
	Country          string                     `bun:"country"`
	Currency         string                     `bun:"currency"`
	ChannelCode      string                     `bun:"channel_code"`
	Status           string                     `bun:"status"`
	Description      *string                    `bun:"description"`
	Metadata         map[string]json.RawMessage `bun:"metadata,type:jsonb"`
	// ConsentedAt is when the customer completed the Pay and Save that
	// saved the token, by the business clock; ConsentChannelCode and
	// ConsentPaymentRequestID say for which channel and through which request.
	ConsentedAt             time.Time `bun:"consented_at"`
	ConsentChannelCode      string    `bun:"consent_channel_code"`
	ConsentPaymentRequestID string    `bun:"consent_payment_request_id"`
	Created                 time.Time `bun:"created"`
	Updated                 time.Time `bun:"updated"`
}

type consentView struct {
	CustomerID       string `json:"customer_id"`
	ConsentedAt      string `json:"consented_at"`
	ChannelCode      string `json:"channel_code"`
	PaymentRequestID string `json:"payment_request_id"`
}

type tokenView struct {
	PaymentTokenID    string                     `json:"payment_token_id"`
	BusinessID        string                     `json:"business_id"`
	CustomerID        string                     `json:"customer_id"`
	ReferenceID       string                     `json:"reference_id"`
	ChannelCode       string                     `json:"channel_code"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties"`
	Actions           []providers.Action         `json:"actions"`
	Status            string                     `json:"status"`
	TokenDetails      map[string]json.RawMessage `json:"token_details"`
	FailureCode       *string                    `json:"failure_code"`
	Description       *string                    `json:"description"`
	Metadata          map[string]json.RawMessage `json:"metadata"`
	Consent           consentView                `json:"consent"`
	Created           string                     `json:"created"`
	Updated           string                     `json:"updated"`
}

// MarshalJSON writes the token in Xendit's payment token shape, plus the
// engine's consent record.
func (t *PaymentToken) MarshalJSON() ([]byte, error) {
	return json.Marshal(tokenView{
		PaymentTokenID: t.ID, BusinessID: t.BusinessID, CustomerID: t.CustomerID, ReferenceID: t.ReferenceID,
		ChannelCode: t.ChannelCode, Country: t.Country, Currency: t.Currency, Actions: []providers.Action{}, Status: t.Status,
		Description: t.Description, Metadata: t.Metadata,
		Consent: consentView{CustomerID: t.CustomerID, ConsentedAt: billing.FormatTime(t.ConsentedAt),
			ChannelCode: t.ConsentChannelCode, PaymentRequestID: t.ConsentPaymentRequestID},
		Created: billing.FormatTime(t.Created), Updated: billing.FormatTime(t.Updated),
	})
}

// Payment is the outcome of a payment request at its provider: one per
// request, SUCCEEDED (captured) or FAILED.
type Payment struct {
	bun.BaseModel `bun:"table:payments"`

	ID                 string          `bun:"id,pk"`
	BusinessID         string          `bun:"business_id"`
	PaymentRequestID   string          `bun:"payment_request_id"`
	CustomerID         string          `bun:"customer_id"`
	PaymentTokenID     *string         `bun:"payment_token_id"`
	Status             string          `bun:"status"`
	FailureCode        *string         `bun:"failure_code"`
	Currency           string          `bun:"currency"`
	Amount             decimal.Decimal `bun:"amount,type:numeric"`
	ChannelCode        string          `bun:"channel_code"`
	ProviderPaymentRef *string         `bun:"provider_payment_ref"`
	CaptureID          *string         `bun:"capture_id"`
	CapturedAt         *time.Time      `bun:"captured_at"`
	Created            time.Time       `bun:"created"`
	Updated            time.Time       `bun:"updated"`
}

type captureView struct {
	CaptureID        string         `json:"capture_id"`
	CaptureTimestamp string         `json:"capture_timestamp"`
	CaptureAmount    billing.Number `json:"capture_amount"`
}

// paymentEvent is the data of payment.capture and payment.failure events:
// Xendit's payment object.
type paymentEvent struct {
	PaymentID         string                     `json:"payment_id"`
	BusinessID        string                     `json:"business_id"`
	ReferenceID       string                     `json:"reference_id"`
	PaymentRequestID  string                     `json:"payment_request_id"`
	PaymentTokenID    *string                    `json:"payment_token_id"`
	CustomerID        string                     `json:"customer_id"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     billing.Number             `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties"`
	Captures          []captureView              `json:"captures"`
	Status            string                     `json:"status"`
	FailureCode       *string                    `json:"failure_code"`
	Metadata          map[string]json.RawMessage `json:"metadata"`
	Created           string                     `json:"created"`
	Updated           string                     `json:"updated"`
}

func newPaymentEvent(pr *PaymentRequest, py *Payment) paymentEvent {
	ev := paymentEvent{
		PaymentID: py.ID, BusinessID: pr.BusinessID, ReferenceID: pr.ReferenceID, PaymentRequestID: pr.ID,
		PaymentTokenID: py.PaymentTokenID, CustomerID: pr.CustomerID, Type: pr.Type, Country: pr.Country, Currency: pr.Currency,
		RequestAmount: billing.NumberOf(pr.RequestAmount), CaptureMethod: pr.CaptureMethod, ChannelCode: pr.ChannelCode,
		ChannelProperties: pr.ChannelProperties, Captures: []captureView{}, Status: py.Status, FailureCode: py.FailureCode,
		Metadata: pr.Metadata, Created: billing.FormatTime(py.Created), Updated: billing.FormatTime(py.Updated),
	}
	if py.CaptureID != nil && py.CapturedAt != nil {
		ev.Captures = append(ev.Captures, captureView{CaptureID: *py.CaptureID, CaptureTimestamp: billing.FormatTime(*py.CapturedAt),
			CaptureAmount: billing.NumberOf(py.Amount)})
	}
	return ev
}
