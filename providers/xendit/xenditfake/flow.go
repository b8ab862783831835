package xenditfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/tagihan/billing"
)

// createBody is what the fake reads of POST /v3/payment_requests.
type createBody struct {
	ReferenceID       string                     `json:"reference_id"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     json.RawMessage            `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties"`
	CustomerID        string                     `json:"customer_id"`
	Customer          *struct {
		ReferenceID string `json:"reference_id"`
		Type        string `json:"type"`
	} `json:"customer"`
	PaymentTokenID string                     `json:"payment_token_id"`
	Description    string                     `json:"description"`
	Metadata       map[string]json.RawMessage `json:"metadata"`
}

var countries = []string{"ID", "PH", "VN", "TH", "SG", "MY", "HK", "MX"}

func (s *Server) create(w http.ResponseWriter, raw []byte) {
	var in createBody
	if err := json.Unmarshal(raw, &in); err != nil {
		xenditError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "Request body is not a valid JSON object")
		return
	}
	amount, err := billing.ParseDecimal(in.RequestAmount)
	switch {
	case in.ReferenceID == "" || len(in.ReferenceID) > 255:
		err = fmt.Errorf("reference_id is required (1 to 255 characters)")
	case in.Type != "PAY" && in.Type != "PAY_AND_SAVE":
		err = fmt.Errorf("type must be PAY, PAY_AND_SAVE or REUSABLE_PAYMENT_CODE")
	case !slices.Contains(countries, in.Country):
		err = fmt.Errorf("country is not supported")
	case in.Currency == "":
		err = fmt.Errorf("currency is required")
	case err != nil || amount.Sign() < 0:
		err = fmt.Errorf("request_amount must be a number of at least 0")
	case in.CaptureMethod != "" && in.CaptureMethod != "AUTOMATIC" && in.CaptureMethod != "MANUAL":
		err = fmt.Errorf("capture_method must be AUTOMATIC or MANUAL")
	case in.ChannelCode == "":
		err = fmt.Errorf("channel_code is required")
	case in.Type == "PAY_AND_SAVE" && in.ChannelProperties == nil:
		err = fmt.Errorf("channel_properties is required")
	case in.Type == "PAY_AND_SAVE" && in.CustomerID == "" && (in.Customer == nil || in.Customer.ReferenceID == ""):
		err = fmt.Errorf("customer_id or customer is required for PAY_AND_SAVE")
	}
	if err != nil {
		xenditError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", err.Error())
		return
	}
	var tok *Token
	if in.PaymentTokenID != "" {
		if tok = s.tokens[in.PaymentTokenID]; tok == nil || tok.Status != "ACTIVE" {
			xenditError(w, http.StatusBadRequest, "INVALID_TOKEN",
				"Payment token ID specified in the payment request has expired or has been cancelled. Please reinitiate linking before retrying.")
			return
		}
	}
	if in.CaptureMethod == "" {
		in.CaptureMethod = "AUTOMATIC"
	}
	t := now()
	pr := &PaymentRequest{
		BusinessID: BusinessID, ReferenceID: in.ReferenceID, PaymentRequestID: s.nextID("pr-"), Type: in.Type, Country: in.Country,
		Currency: in.Currency, RequestAmount: in.RequestAmount, CaptureMethod: in.CaptureMethod, ChannelCode: in.ChannelCode,
		ChannelProperties: in.ChannelProperties, Description: in.Description, Metadata: in.Metadata, Created: t, Updated: t,
		CustomerID: in.CustomerID,
	}
	if in.Customer != nil {
		pr.CustomerID = "cust-" + pr.PaymentRequestID[3:]
	}
	s.requests[pr.PaymentRequestID] = pr
	if tok != nil {
		pr.PaymentTokenID, pr.CustomerID = &tok.PaymentTokenID, tok.CustomerID
		s.settle(pr, testAmounts[amount.String()])
	} else {
		pr.Status = "REQUIRES_ACTION"
		pr.Actions = []Action{{Type: "REDIRECT_CUSTOMER", Value: s.URL + "/redirect/" + pr.PaymentRequestID, Descriptor: "WEB_URL"}}
	}
	writeJSON(w, http.StatusCreated, pr)
}

// Complete plays the customer of a payment request waiting for them: the
// payment succeeds (saving a token for PAY_AND_SAVE) unless its amount is a
// test amount. The webhooks are queued for Deliver.
func (s *Server) Complete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr, ok := s.requests[id]
	if !ok || pr.Status != "REQUIRES_ACTION" {
		return fmt.Errorf("xenditfake: %s is not waiting for the customer", id)
	}
	amount, _ := billing.ParseDecimal(pr.RequestAmount)
	s.settle(pr, testAmounts[amount.String()])
	return nil
}

// settle ends pr: failed with code, or succeeded; and queues its webhooks.
func (s *Server) settle(pr *PaymentRequest, code string) {
	t := now()
	payment := s.nextID("py-")
	pr.Actions, pr.Updated, pr.LatestPaymentID = nil, t, &payment
	if code != "" {
		pr.Status, pr.FailureCode = "FAILED", &code
		s.queueWebhook("payment.failure", paymentData(pr, payment, nil))
		return
	}
	pr.Status = "SUCCEEDED"
	if pr.Type == "PAY_AND_SAVE" {
		tok := &Token{PaymentTokenID: s.nextID("pt-"), ChannelCode: pr.ChannelCode, Country: pr.Country, BusinessID: BusinessID,
			CustomerID: pr.CustomerID, ReferenceID: pr.ReferenceID, Currency: pr.Currency, Status: "ACTIVE", Metadata: pr.Metadata,
			Created: t, Updated: t}
		s.tokens[tok.PaymentTokenID] = tok
		pr.PaymentTokenID = &tok.PaymentTokenID
		s.queueWebhook("payment.capture", paymentData(pr, payment, []capture{{t, s.nextID("cap-"), pr.RequestAmount}}))
		s.queueWebhook("payment_token.activation", tok)
		return
	}
	s.queueWebhook("payment.capture", paymentData(pr, payment, []capture{{t, s.nextID("cap-"), pr.RequestAmount}}))
}

// capture is a capture of a payment webhook.
type capture struct {
	CaptureTimestamp string          `json:"capture_timestamp"`
	CaptureID        string          `json:"capture_id"`
	CaptureAmount    json.RawMessage `json:"capture_amount"`
}

// payment is the data of payment.capture and payment.failure, in the
// documented field order.
type payment struct {
	PaymentID         string                     `json:"payment_id"`
	BusinessID        string                     `json:"business_id"`
	ReferenceID       string                     `json:"reference_id"`
	PaymentRequestID  string                     `json:"payment_request_id"`
	PaymentTokenID    *string                    `json:"payment_token_id,omitempty"`
	CustomerID        string                     `json:"customer_id"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     json.RawMessage            `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties,omitempty"`
	Captures          []capture                  `json:"captures,omitempty"`
	Status            string                     `json:"status"`
	PaymentDetails    map[string]any             `json:"payment_details"`
	FailureCode       *string                    `json:"failure_code,omitempty"`
	Metadata          map[string]json.RawMessage `json:"metadata,omitempty"`
	Created           string                     `json:"created"`
	Updated           string                     `json:"updated"`
}

func paymentData(pr *PaymentRequest, id string, captures []capture) payment {
	return payment{PaymentID: id, BusinessID: BusinessID, ReferenceID: pr.ReferenceID, PaymentRequestID: pr.PaymentRequestID,
		PaymentTokenID: pr.PaymentTokenID, CustomerID: pr.CustomerID, Type: pr.Type, Country: pr.Country, Currency: pr.Currency,
		RequestAmount: pr.RequestAmount, CaptureMethod: pr.CaptureMethod, ChannelCode: pr.ChannelCode,
		ChannelProperties: pr.ChannelProperties, Captures: captures, Status: pr.Status, PaymentDetails: map[string]any{},
		FailureCode: pr.FailureCode, Metadata: pr.Metadata, Created: pr.Created, Updated: pr.Updated}
}

func (s *Server) queueWebhook(event string, data any) {
	body, _ := json.Marshal(map[string]any{"event": event, "business_id": BusinessID, "created": now(), "data": data})
	s.queue = append(s.queue, Webhook{ID: s.nextID("whk-"), Body: body})
}

// Webhooks returns the queued webhooks without sending them.
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Webhook(nil), s.queue...)
}

// Deliver posts every queued webhook to the callback URL, with
// x-callback-token and webhook-id, and returns the status of each answer.
// Webhooks answered 2xx leave the queue; others stay for the next Deliver,
// as Xendit retries them.
func (s *Server) Deliver() ([]int, error) {
	s.mu.Lock()
	queue, target := s.queue, s.callbackURL
	s.queue = nil
	s.mu.Unlock()
	var statuses []int
	var keep []Webhook
	for _, wh := range queue {
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(wh.Body))
		if err != nil {
			return statuses, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-callback-token", s.CallbackToken)
		req.Header.Set("webhook-id", wh.ID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return statuses, err
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode >= 300 {
			keep = append(keep, wh)
		}
	}
	s.mu.Lock()
	s.queue = append(keep, s.queue...)
	s.mu.Unlock()
	return statuses, nil
}
