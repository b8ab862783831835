// Package wooshpay is the adapter to WooshPay's Stripe-like API (SPEC
// §6.4) for Indonesian bank transfer (bank_transfer_id, IDR): payment links
// for amounts owed, as a PaymentIntent confirmed at once (confirm: true,
// the customer redirected to next_action.bank_transfer_id_handle_redirect)
// or as a Checkout Session listing line items; webhook endpoint
// registration; and webhooks verified by Wooshpay-Signature.
//
// Bank transfer is customer-present: the customer pays each time, nothing
// can be saved and charged later (and it has no refunds). So StartLinking
// and Charge refuse with KindInvalid; the engine uses WooshPay for payment
// links only, never for automatic cycle charges.
//
// Amounts are sent in the currency's minor unit, two decimals for IDR
// (Rp 10,000 is 1000000), as Stripe-like APIs count them; WooshPay's
// documentation says bank transfer's minimum is "1.00 IDR".
package wooshpay

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

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers"
)

// WooshPay's hosts: test keys (sk_test_…) go to the test host.
const (
	DefaultBaseURL     = "https://api.wooshpay.com"
	DefaultTestBaseURL = "https://apitest.wooshpay.com"
)

// Config configures the adapter.
type Config struct {
	// BaseURL, when set, is used for every key instead of WooshPay's hosts.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a client with a 30-second
	// timeout.
	HTTPClient *http.Client
}

// Provider is the WooshPay adapter.
type Provider struct {
	base string
	hc   *http.Client
}

// New returns the adapter.
func New(cfg Config) *Provider {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Provider{base: strings.TrimRight(cfg.BaseURL, "/"), hc: cfg.HTTPClient}
}

// Name returns providers.WooshPay.
func (p *Provider) Name() providers.Name { return providers.WooshPay }

// ChannelCode is the channel of WooshPay payment links.
const ChannelCode = "BANK_TRANSFER_ID"

// paymentMethodType is WooshPay's name for Indonesian bank transfer.
const paymentMethodType = "bank_transfer_id"

var errCustomerPresent = providers.Invalid(providers.WooshPay, "UNSUPPORTED_OPERATION",
	"WooshPay bank transfer (bank_transfer_id) is customer-present: it cannot save a payment method or charge one without the customer; use it for payment links for amounts owed")

// StartLinking refuses: bank transfer saves nothing.
func (p *Provider) StartLinking(ctx context.Context, cfg providers.Config, req providers.LinkRequest) (providers.Result, error) {
	return providers.Result{}, errCustomerPresent
}

// Charge refuses: bank transfer needs the customer each time.
func (p *Provider) Charge(ctx context.Context, cfg providers.Config, req providers.ChargeRequest) (providers.Result, error) {
	return providers.Result{}, errCustomerPresent
}

// CancelToken refuses: WooshPay bank transfer has no tokens.
func (p *Provider) CancelToken(ctx context.Context, cfg providers.Config, tokenRef string) error {
	return errCustomerPresent
}

// minor converts an amount to WooshPay's integer minor units.
func minor(field string, m billing.Money) (int64, error) {
	if m.Currency != "IDR" {
		return 0, providers.Invalid(providers.WooshPay, "INVALID_CURRENCY", "WooshPay bank transfer processes IDR only, not "+string(m.Currency))
	}
	v := m.Amount.Mul(decimal.NewFromInt(100))
	if !v.IsInteger() || v.Sign() <= 0 || v.GreaterThan(decimal.NewFromInt(1<<53)) {
		return 0, providers.Invalid(providers.WooshPay, "INVALID_AMOUNT", field+" must be a positive IDR amount")
	}
	return v.IntPart(), nil
}

// fromMinor converts WooshPay's minor units back.
func fromMinor(v int64) decimal.Decimal { return decimal.New(v, -2) }

// metadata is what the engine stores on WooshPay objects: the idempotency
// key as the merchant's order id (searchable) and the engine's payment
// request id (echoed in webhooks).
func metadata(key, reference string) map[string]string {
	return map[string]string{"merchant_order_id": key, "payment_request_id": reference}
}

type paymentMethodData struct {
	Type string `json:"type"`
}

// intentRequest is the body of POST /v1/payment_intents.
type intentRequest struct {
	Amount            int64             `json:"amount"`
	Currency          string            `json:"currency"`
	Confirm           bool              `json:"confirm"`
	PaymentMethodData paymentMethodData `json:"payment_method_data"`
	ReturnURL         string            `json:"return_url,omitempty"`
	Description       string            `json:"description,omitempty"`
	Metadata          map[string]string `json:"metadata"`
}

// intent is a PaymentIntent, as far as the engine reads it.
type intent struct {
	ID         string            `json:"id"`
	Object     string            `json:"object"`
	Amount     int64             `json:"amount"`
	Currency   string            `json:"currency"`
	Status     string            `json:"status"`
	Metadata   map[string]string `json:"metadata"`
	NextAction *struct {
		Type     string `json:"type"`
		Redirect *struct {
			URL string `json:"url"`
		} `json:"bank_transfer_id_handle_redirect"`
	} `json:"next_action"`
	LastPaymentError *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"last_payment_error"`
}

func (in *intent) result() (providers.Result, error) {
	r := providers.Result{ProviderRef: in.ID, ChannelCode: ChannelCode}
	switch in.Status {
	case "requires_action", "requires_payment_method", "requires_confirmation":
		r.Status = providers.StatusRequiresAction
		if in.NextAction != nil && in.NextAction.Redirect != nil && in.NextAction.Redirect.URL != "" {
			r.Actions = []providers.Action{{Type: "REDIRECT_CUSTOMER", Descriptor: "WEB_URL", Value: in.NextAction.Redirect.URL}}
		}
	case "processing", "requires_capture":
		r.Status = providers.StatusPending
	case "succeeded":
		r.Status, r.PaymentRef = providers.StatusSucceeded, in.ID
	case "canceled":
		r.Status = providers.StatusCanceled
	default:
		return r, providers.Transient(providers.WooshPay, fmt.Errorf("unknown PaymentIntent status %q", in.Status))
	}
	return r, nil
}

type productData struct {
	Name string `json:"name"`
}

type priceData struct {
	Currency    string      `json:"currency"`
	UnitAmount  int64       `json:"unit_amount"`
	ProductData productData `json:"product_data"`
}

type lineItem struct {
	PriceData priceData `json:"price_data"`
	Quantity  int64     `json:"quantity"`
}

type intentData struct {
	Metadata map[string]string `json:"metadata"`
}

// sessionRequest is the body of POST /v1/checkout/sessions.
type sessionRequest struct {
	Mode               string            `json:"mode"`
	SuccessURL         string            `json:"success_url"`
	CancelURL          string            `json:"cancel_url"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	LineItems          []lineItem        `json:"line_items"`
	Metadata           map[string]string `json:"metadata"`
	PaymentIntentData  intentData        `json:"payment_intent_data"`
}

// session is a Checkout Session, as far as the engine reads it.
type session struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Status        string            `json:"status"`
	PaymentStatus string            `json:"payment_status"`
	URL           string            `json:"url"`
	PaymentIntent string            `json:"payment_intent"`
	ExpiresAt     int64             `json:"expires_at"` // milliseconds
	Metadata      map[string]string `json:"metadata"`
}

func (s *session) result() (providers.Result, error) {
	r := providers.Result{ProviderRef: s.ID, ChannelCode: ChannelCode}
	if s.ExpiresAt > 0 {
		t := time.UnixMilli(s.ExpiresAt).UTC()
		r.ExpiresAt = &t
	}
	switch {
	case s.PaymentStatus == "paid":
		r.Status, r.PaymentRef = providers.StatusSucceeded, s.PaymentIntent
	case s.Status == "open":
		r.Status = providers.StatusRequiresAction
		r.Actions = []providers.Action{{Type: "REDIRECT_CUSTOMER", Descriptor: "WEB_URL", Value: s.URL}}
	case s.Status == "complete":
		r.Status = providers.StatusPending
	case s.Status == "expired":
		r.Status = providers.StatusExpired
	default:
		return r, providers.Transient(providers.WooshPay, fmt.Errorf("unknown Checkout Session status %q", s.Status))
	}
	return r, nil
}

// CreatePaymentLink creates a Checkout Session listing the line items when
// there are any, else a PaymentIntent confirmed at once whose redirect
// takes the customer straight to bank transfer. IDR only.
func (p *Provider) CreatePaymentLink(ctx context.Context, cfg providers.Config, req providers.PaymentLinkRequest) (providers.Result, error) {
	amount, err := minor("amount", req.Amount)
	if err != nil {
		return providers.Result{}, err
	}
	meta := metadata(req.IdempotencyKey, req.Reference)
	if len(req.LineItems) == 0 {
		body := intentRequest{Amount: amount, Currency: "IDR", Confirm: true, PaymentMethodData: paymentMethodData{Type: paymentMethodType},
			ReturnURL: req.SuccessURL, Description: req.Description, Metadata: meta}
		var out intent
		if err := p.do(ctx, cfg, http.MethodPost, "/v1/payment_intents", req.IdempotencyKey, body, &out); err != nil {
			return providers.Result{}, err
		}
		return out.result()
	}
	body := sessionRequest{Mode: "payment", SuccessURL: req.SuccessURL, CancelURL: req.CancelURL,
		PaymentMethodTypes: []string{paymentMethodType}, Metadata: meta, PaymentIntentData: intentData{Metadata: meta}}
	for i, it := range req.LineItems {
		unit, err := minor(fmt.Sprintf("line_items[%d].unit_amount", i), it.UnitAmount)
		if err != nil {
			return providers.Result{}, err
		}
		body.LineItems = append(body.LineItems, lineItem{PriceData: priceData{Currency: "IDR", UnitAmount: unit,
			ProductData: productData{Name: it.Name}}, Quantity: it.Quantity})
	}
	var out session
	if err := p.do(ctx, cfg, http.MethodPost, "/v1/checkout/sessions", req.IdempotencyKey, body, &out); err != nil {
		return providers.Result{}, err
	}
	return out.result()
}

// GetPayment fetches the link by its id (a PaymentIntent pi_… or a
// Checkout Session cs_…), or without one searches PaymentIntents by the
// idempotency key, which is their merchant_order_id.
func (p *Provider) GetPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) (providers.Result, error) {
	switch {
	case strings.HasPrefix(ref.ProviderRef, "cs_"):
		var out session
		if err := p.do(ctx, cfg, http.MethodGet, "/v1/checkout/sessions/"+url.PathEscape(ref.ProviderRef), "", nil, &out); err != nil {
			return providers.Result{}, err
		}
		return out.result()
	case ref.ProviderRef != "":
		var out intent
		if err := p.do(ctx, cfg, http.MethodGet, "/v1/payment_intents/"+url.PathEscape(ref.ProviderRef), "", nil, &out); err != nil {
			return providers.Result{}, err
		}
		return out.result()
	}
	var out struct {
		Data []intent `json:"data"`
	}
	q := url.Values{"query": {"merchant_order_id:'" + strings.ReplaceAll(ref.IdempotencyKey, "'", "\\'") + "'"}}
	if err := p.do(ctx, cfg, http.MethodGet, "/v1/payment_intents/search?"+q.Encode(), "", nil, &out); err != nil {
		return providers.Result{}, err
	}
	if len(out.Data) == 0 {
		return providers.Result{}, providers.ErrNotFound
	}
	return out.Data[0].result()
}

// CancelPayment cancels a PaymentIntent (reason abandoned) or expires a
// Checkout Session (whose PaymentIntent cannot be cancelled directly).
func (p *Provider) CancelPayment(ctx context.Context, cfg providers.Config, ref providers.PaymentRef) error {
	if ref.ProviderRef == "" {
		return providers.Invalid(providers.WooshPay, "DATA_NOT_FOUND", "WooshPay never acknowledged the payment link")
	}
	key := "cancel/" + ref.IdempotencyKey
	if strings.HasPrefix(ref.ProviderRef, "cs_") {
		var out session
		return p.do(ctx, cfg, http.MethodPost, "/v1/checkout/sessions/"+url.PathEscape(ref.ProviderRef)+"/expire", key, struct{}{}, &out)
	}
	var out intent
	return p.do(ctx, cfg, http.MethodPost, "/v1/payment_intents/"+url.PathEscape(ref.ProviderRef)+"/cancel", key,
		map[string]string{"cancellation_reason": "abandoned"}, &out)
}

// WebhookEvents are the events the engine subscribes its endpoint to.
var WebhookEvents = []string{"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
	"payment_intent.processing", "checkout.session.completed", "checkout.session.expired"}

// RegisterWebhook registers url as a webhook endpoint for WebhookEvents
// and returns its id and signing secret (shown only now).
func (p *Provider) RegisterWebhook(ctx context.Context, cfg providers.Config, endpoint string) (string, string, error) {
	body := map[string]any{"url": endpoint, "enabled_events": WebhookEvents, "description": "billing engine payment callbacks"}
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := p.do(ctx, cfg, http.MethodPost, "/v1/webhook_endpoints", "", body, &out); err != nil {
		return "", "", err
	}
	if out.ID == "" || out.Secret == "" {
		return "", "", providers.Transient(providers.WooshPay, fmt.Errorf("the webhook endpoint answer has no id or secret"))
	}
	return out.ID, out.Secret, nil
}

func (p *Provider) baseFor(key string) string {
	switch {
	case p.base != "":
		return p.base
	case strings.HasPrefix(key, "sk_test_"):
		return DefaultTestBaseURL
	}
	return DefaultBaseURL
}

// maxResponse bounds what the adapter reads of a response.
const maxResponse = 1 << 20

func (p *Provider) do(ctx context.Context, cfg providers.Config, method, path, key string, body, out any) error {
	if cfg.WooshPay == nil || cfg.WooshPay.SecretKey == "" {
		return providers.Invalid(providers.WooshPay, "INVALID_API_KEY", "the business has no WooshPay secret key configured")
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.baseFor(cfg.WooshPay.SecretKey)+path, rd)
	if err != nil {
		return providers.Invalid(providers.WooshPay, "", err.Error())
	}
	req.SetBasicAuth(cfg.WooshPay.SecretKey, "")
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return providers.Transient(providers.WooshPay, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return providers.Transient(providers.WooshPay, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return providers.Transient(providers.WooshPay, fmt.Errorf("read %s %s answer: %w", method, path, err))
		}
		return nil
	}
	return classify(method, resp.StatusCode, raw)
}

// apiError is WooshPay's error object, alone or under "error".
type apiError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify: 429 and 5xx are transient; card errors (402) are declines; a
// 404 on a read is ErrNotFound; the rest is invalid.
func classify(method string, status int, raw []byte) error {
	var wrapped struct {
		Error *apiError `json:"error"`
	}
	var e apiError
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Error != nil {
		e = *wrapped.Error
	} else {
		_ = json.Unmarshal(raw, &e)
	}
	code := strings.ToUpper(e.Code)
	if code == "" {
		code = strings.ToUpper(e.Type)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return providers.Transient(providers.WooshPay, fmt.Errorf("HTTP %d %s: %s", status, code, msg))
	case status == http.StatusPaymentRequired || e.Type == "card_error":
		return providers.Declined(providers.WooshPay, code, msg)
	case status == http.StatusNotFound && method == http.MethodGet:
		return fmt.Errorf("%w: %s", providers.ErrNotFound, msg)
	}
	if code == "" {
		code = "HTTP_" + strconv.Itoa(status)
	}
	return providers.Invalid(providers.WooshPay, code, msg)
}
