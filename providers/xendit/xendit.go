// Package xendit is the adapter to Xendit's Payments API v3 (SPEC §6.3):
// payment requests (PAY_AND_SAVE linking, PAY with a saved
// payment_token_id, PAY redirects for payment links), payment token
// cancellation, and the payment and payment token webhooks, verified by
// x-callback-token. Requests carry the business's secret key as the HTTP
// Basic user name and the engine's idempotency key in idempotency-key;
// reference_id is the engine's payment request id, so that webhooks find
// their request even when Xendit's answer to the create call was lost.
package xendit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
)

// DefaultBaseURL is Xendit's API.
const DefaultBaseURL = "https://api.xendit.co"

// APIVersion is the Payments API version the adapter speaks (api-version
// header).
const APIVersion = "2024-11-11"

// Config configures the adapter.
type Config struct {
	// BaseURL is Xendit's API address. Defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a client with a 30-second
	// timeout.
	HTTPClient *http.Client
}

// Provider is the Xendit adapter.
type Provider struct {
	base string
	hc   *http.Client
}

// New returns the adapter.
func New(cfg Config) *Provider {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Provider{base: strings.TrimRight(cfg.BaseURL, "/"), hc: cfg.HTTPClient}
}

// Name returns providers.Xendit.
func (p *Provider) Name() providers.Name { return providers.Xendit }

// customer is Xendit's inline customer object.
type customer struct {
	ReferenceID      string            `json:"reference_id"`
	Type             string            `json:"type"`
	IndividualDetail *individualDetail `json:"individual_detail,omitempty"`
	BusinessDetail   *businessDetail   `json:"business_detail,omitempty"`
	Email            string            `json:"email,omitempty"`
	MobileNumber     string            `json:"mobile_number,omitempty"`
}

type individualDetail struct {
	GivenNames string `json:"given_names"`
	Surname    string `json:"surname,omitempty"`
}

type businessDetail struct {
	BusinessName string `json:"business_name"`
}

func customerOf(c providers.Customer) *customer {
	out := &customer{ReferenceID: c.ID, Type: c.Type, Email: c.Email, MobileNumber: c.MobileNumber}
	if c.Type == "BUSINESS" {
		out.BusinessDetail = &businessDetail{BusinessName: c.BusinessName}
	} else {
		out.Type = "INDIVIDUAL"
		out.IndividualDetail = &individualDetail{GivenNames: c.GivenNames, Surname: c.Surname}
	}
	return out
}

// item is Xendit's item basket entry.
type item struct {
	ReferenceID   string         `json:"reference_id"`
	Type          string         `json:"type"`
	Name          string         `json:"name"`
	NetUnitAmount billing.Number `json:"net_unit_amount"`
	Quantity      int64          `json:"quantity"`
	Category      string         `json:"category"`
}

// createRequest is the body of POST /v3/payment_requests.
type createRequest struct {
	ReferenceID       string                     `json:"reference_id"`
	Customer          *customer                  `json:"customer,omitempty"`
	Type              string                     `json:"type"`
	PaymentTokenID    string                     `json:"payment_token_id,omitempty"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     billing.Number             `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties,omitempty"`
	Items             []item                     `json:"items,omitempty"`
	Description       string                     `json:"description,omitempty"`
	Metadata          map[string]json.RawMessage `json:"metadata,omitempty"`
}

// paymentRequest is Xendit's payment request object, as far as the
// engine reads it.
type paymentRequest struct {
	PaymentRequestID string             `json:"payment_request_id"`
	ReferenceID      string             `json:"reference_id"`
	PaymentTokenID   *string            `json:"payment_token_id"`
	LatestPaymentID  *string            `json:"latest_payment_id"`
	ChannelCode      string             `json:"channel_code"`
	Status           string             `json:"status"`
	FailureCode      *string            `json:"failure_code"`
	Actions          []providers.Action `json:"actions"`
}

// status maps Xendit's payment request statuses onto the engine's.
func status(s string) (providers.Status, bool) {
	switch s {
	case "REQUIRES_ACTION":
		return providers.StatusRequiresAction, true
	case "PENDING", "ACCEPTING_PAYMENTS", "AUTHORIZED":
		return providers.StatusPending, true
	case "SUCCEEDED":
		return providers.StatusSucceeded, true
	case "FAILED":
		return providers.StatusFailed, true
	case "CANCELED":
		return providers.StatusCanceled, true
	case "EXPIRED":
		return providers.StatusExpired, true
	}
	return "", false
}

func (pr *paymentRequest) result() (providers.Result, error) {
	st, ok := status(pr.Status)
	if !ok {
		return providers.Result{}, providers.Transient(providers.Xendit, fmt.Errorf("unknown payment request status %q", pr.Status))
	}
	r := providers.Result{Status: st, ProviderRef: pr.PaymentRequestID, Actions: pr.Actions, ChannelCode: pr.ChannelCode}
	if pr.LatestPaymentID != nil {
		r.PaymentRef = *pr.LatestPaymentID
	}
	if pr.PaymentTokenID != nil && st == providers.StatusSucceeded {
		r.TokenRef = *pr.PaymentTokenID
	}
	if pr.FailureCode != nil {
		r.FailureCode = *pr.FailureCode
	}
	return r, nil
}

// StartLinking creates a PAY_AND_SAVE payment request with the customer
// inline (Xendit's reference_id for the customer is the engine's id).
func (p *Provider) StartLinking(ctx context.Context, cfg providers.Config, req providers.LinkRequest) (providers.Result, error) {
	props := map[string]json.RawMessage{}
	for k, v := range req.ChannelProperties {
		props[k] = v
	}
	setURL(props, "success_return_url", req.SuccessReturnURL)
	setURL(props, "failure_return_url", req.FailureReturnURL)
	body := createRequest{
		ReferenceID: req.Reference, Customer: customerOf(req.Customer), Type: "PAY_AND_SAVE", Country: req.Country,
		Currency: string(req.Amount.Currency), RequestAmount: billing.NumberOf(req.Amount.Amount), CaptureMethod: "AUTOMATIC",
		ChannelCode: req.ChannelCode, ChannelProperties: props, Description: req.Description, Metadata: req.Metadata,
	}
	return p.create(ctx, cfg, req.IdempotencyKey, body)
}

func setURL(props map[string]json.RawMessage, name, value string) {
	if value != "" {
		raw, _ := json.Marshal(value)
		props[name] = raw
	}
}

// Charge creates a PAY payment request with the saved payment_token_id
// (merchant-initiated; cards are charged as recurring card-on-file).
func (p *Provider) Charge(ctx context.Context, cfg providers.Config, req providers.ChargeRequest) (providers.Result, error) {
	body := createRequest{
		ReferenceID: req.Reference, Type: "PAY", PaymentTokenID: req.TokenRef, Country: req.Country,
		Currency: string(req.Amount.Currency), RequestAmount: billing.NumberOf(req.Amount.Amount), CaptureMethod: "AUTOMATIC",
		ChannelCode: req.ChannelCode, Description: req.Description, Metadata: req.Metadata,
	}
	if req.ChannelCode == "CARDS" {
		body.ChannelProperties = map[string]json.RawMessage{"skip_three_ds": json.RawMessage(`true`), "card_on_file_type": json.RawMessage(`"RECURRING"`)}
	}
	return p.create(ctx, cfg, req.IdempotencyKey, body)
}

// CreatePaymentLink creates a PAY payment request that redirects the
// customer to the channel's page (Xendit's links go to one channel, which
// the request must name).
func (p *Provider) CreatePaymentLink(ctx context.Context, cfg providers.Config, req providers.PaymentLinkRequest) (providers.Result, error) {
	if req.ChannelCode == "" {
		return providers.Result{}, providers.Invalid(providers.Xendit, "API_VALIDATION_ERROR", "a Xendit payment link needs the channel to pay with")
	}
	props := map[string]json.RawMessage{}
	setURL(props, "success_return_url", req.SuccessURL)
	setURL(props, "failure_return_url", req.CancelURL)
	body := createRequest{
		ReferenceID: req.Reference, Customer: customerOf(req.Customer), Type: "PAY", Country: req.Country,
		Currency: string(req.Amount.Currency), RequestAmount: billing.NumberOf(req.Amount.Amount), CaptureMethod: "AUTOMATIC",
		ChannelCode: req.ChannelCode, ChannelProperties: props, Description: req.Description,
	}
	for i, it := range req.LineItems {
		body.Items = append(body.Items, item{ReferenceID: strconv.Itoa(i + 1), Type: "DIGITAL_SERVICE", Name: it.Name,
			NetUnitAmount: billing.NumberOf(it.UnitAmount.Amount), Quantity: it.Quantity, Category: "UTILITIES"})
	}
	return p.create(ctx, cfg, req.IdempotencyKey, body)
}

func (p *Provider) create(ctx context.Context, cfg providers.Config, key string, body createRequest) (providers.Result, error) {
	var out paymentRequest
	if err := p.do(ctx, cfg, http.MethodPost, "/v3/payment_requests", key, body, &out); err != nil {
		return providers.Result{}, err
	}
	return out.result()
}

// GetPayment fetches the payment request by Xendit's id. Xendit cannot be
// asked by idempotency key; without an id it answers ErrNotFound, and the
// engine sends the original request again with its key instead (Xendit
// answers a repeated key with the first answer).
func (p *Provider) GetPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) (providers.Result, error) {
	if ref.ProviderRef == "" {
		return providers.Result{}, providers.ErrNotFound
	}
	var out paymentRequest
	if err := p.do(ctx, cfg, http.MethodGet, "/v3/payment_requests/"+url.PathEscape(ref.ProviderRef), "", nil, &out); err != nil {
		return providers.Result{}, err
	}
	return out.result()
}

// CancelPayment cancels a payment request waiting for the customer.
func (p *Provider) CancelPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) error {
	if ref.ProviderRef == "" {
		return providers.Invalid(providers.Xendit, "DATA_NOT_FOUND", "Xendit never acknowledged the payment request")
	}
	var out paymentRequest
	if err := p.do(ctx, cfg, http.MethodPost, "/v3/payment_requests/"+url.PathEscape(ref.ProviderRef)+"/cancel", "cancel/"+ref.IdempotencyKey, nil, &out); err != nil {
		return err
	}
	if out.Status != "CANCELED" {
		return providers.Invalid(providers.Xendit, "INVALID_STATUS", "the payment request is "+out.Status)
	}
	return nil
}

// token is Xendit's payment token object, as far as the engine reads it.
type token struct {
	PaymentTokenID string `json:"payment_token_id"`
	Status         string `json:"status"`
}

// CancelToken cancels a saved payment token.
func (p *Provider) CancelToken(ctx context.Context, cfg providers.Config, tokenRef string) error {
	var out token
	if err := p.do(ctx, cfg, http.MethodPost, "/v3/payment_tokens/"+url.PathEscape(tokenRef)+"/cancel", "", nil, &out); err != nil {
		return err
	}
	if out.Status != "CANCELED" {
		return providers.Invalid(providers.Xendit, "INVALID_STATUS", "the payment token is "+out.Status)
	}
	return nil
}

// maxResponse bounds what the adapter reads of a response.
const maxResponse = 1 << 20

// do sends one API request and decodes a 2xx answer into out; any other
// answer becomes a classified *providers.Error.
func (p *Provider) do(ctx context.Context, cfg providers.Config, method, path, key string, body, out any) error {
	if cfg.Xendit == nil || cfg.Xendit.SecretKey == "" {
		return providers.Invalid(providers.Xendit, "INVALID_API_KEY", "the business has no Xendit secret key configured")
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return providers.Invalid(providers.Xendit, "", err.Error())
	}
	req.SetBasicAuth(cfg.Xendit.SecretKey, "")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("api-version", APIVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("idempotency-key", key)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return providers.Transient(providers.Xendit, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return providers.Transient(providers.Xendit, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return providers.Transient(providers.Xendit, fmt.Errorf("read %s %s answer: %w", method, path, err))
		}
		return nil
	}
	return classify(method, resp.StatusCode, raw)
}

// declineCodes are Xendit error codes that describe the payer's account
// or token rather than the request: the payment request fails with them.
var declineCodes = map[string]bool{
	"INSUFFICIENT_BALANCE": true, "ACCOUNT_ACCESS_BLOCKED": true, "INVALID_ACCOUNT_DETAILS": true,
	"MAXIMUM_LIMIT_REACHED": true, "INVALID_TOKEN": true, "CARD_DECLINED": true, "CARD_EXPIRED": true,
	"EXPIRED_CARD": true, "INVALID_PAYMENT_DETAILS": true, "USER_DID_NOT_AUTHORIZE": true, "ACCOUNT_NOT_ACTIVATED": true,
}

// errorBody is Xendit's error shape; SDKs also read error/errorCode and
// error_message.
type errorBody struct {
	ErrorCode    string `json:"error_code"`
	Error        string `json:"error"`
	ErrorCamel   string `json:"errorCode"`
	Message      string `json:"message"`
	ErrorMessage string `json:"error_message"`
}

// classify turns an error answer into a *providers.Error: 429 and 5xx are
// transient, payer codes are declines, a 404 on a read is ErrNotFound, and
// everything else (validation, credentials, idempotency conflicts) is
// invalid.
func classify(method string, status int, raw []byte) error {
	var b errorBody
	_ = json.Unmarshal(raw, &b)
	code := firstOf(b.ErrorCode, b.ErrorCamel, b.Error)
	msg := firstOf(b.Message, b.ErrorMessage, http.StatusText(status))
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return providers.Transient(providers.Xendit, fmt.Errorf("HTTP %d %s: %s", status, code, msg))
	case declineCodes[code]:
		return providers.Declined(providers.Xendit, code, msg)
	case status == http.StatusNotFound && method == http.MethodGet:
		return fmt.Errorf("%w: %s", providers.ErrNotFound, msg)
	}
	if code == "" {
		code = "HTTP_" + strconv.Itoa(status)
	}
	return providers.Invalid(providers.Xendit, code, msg)
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
