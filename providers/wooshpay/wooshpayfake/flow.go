package wooshpayfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// minAmount is bank transfer's minimum, 1.00 IDR in minor units.
const minAmount = 100

func (s *Server) createIntent(w http.ResponseWriter, body []byte) {
	var req struct {
		Amount            int64                  `json:"amount"`
		Currency          string                 `json:"currency"`
		Confirm           bool                   `json:"confirm"`
		PaymentMethodData *struct{ Type string } `json:"payment_method_data"`
		ReturnURL         string                 `json:"return_url"`
		Description       string                 `json:"description"`
		Metadata          map[string]string      `json:"metadata"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "Invalid request body")
		return
	}
	switch {
	case req.Amount < minAmount:
		apiError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_small", "Amount must be at least 1.00 idr")
	case req.Currency != "IDR":
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "bank_transfer_id supports IDR only")
	case req.PaymentMethodData == nil || req.PaymentMethodData.Type != "bank_transfer_id":
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "payment_method_data.type must be bank_transfer_id")
	case !req.Confirm:
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "only confirm: true is implemented by the fake")
	case req.ReturnURL == "":
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_missing", "return_url is required to confirm a redirect payment method")
	default:
		in := s.newIntent(req.Amount, req.Metadata)
		in.ReturnURL, in.Description = req.ReturnURL, req.Description
		s.queueEvent("payment_intent.requires_action", in)
		writeJSON(w, http.StatusOK, in)
	}
}

func (s *Server) newIntent(amount int64, metadata map[string]string) *Intent {
	id := s.nextID("pi_")
	in := &Intent{ID: id, Object: "payment_intent", Created: nowMillis(), Currency: "IDR", Amount: amount, Status: "requires_action",
		ClientSecret: id + "_secret_fake", PaymentMethodTypes: []string{"bank_transfer_id"}, ConfirmationMethod: "automatic",
		PaymentMethod: s.nextID("pm_"), CaptureMethod: "automatic", Metadata: metadata}
	in.NextAction = &NextAction{Type: "bank_transfer_id_handle_redirect"}
	in.NextAction.Redirect.URL = s.URL + "/v1/receives/c12/pay/" + id
	s.intents[id] = in
	return in
}

// searchIntents answers GET /v1/payment_intents/search for queries of the
// form merchant_order_id:'<value>'.
func (s *Server) searchIntents(w http.ResponseWriter, query string) {
	field, value, ok := strings.Cut(query, ":")
	if !ok || field != "merchant_order_id" || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "query must be merchant_order_id:'<value>'")
		return
	}
	want := strings.ReplaceAll(value[1:len(value)-1], `\'`, `'`)
	data := []*Intent{}
	for _, in := range s.intents {
		if in.Metadata["merchant_order_id"] == want {
			data = append(data, in)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "search_result", "data": data, "has_more": false})
}

func (s *Server) createSession(w http.ResponseWriter, body []byte) {
	var req struct {
		Mode               string   `json:"mode"`
		SuccessURL         string   `json:"success_url"`
		CancelURL          string   `json:"cancel_url"`
		PaymentMethodTypes []string `json:"payment_method_types"`
		LineItems          []struct {
			PriceData *struct {
				Currency    string `json:"currency"`
				UnitAmount  int64  `json:"unit_amount"`
				ProductData struct {
					Name string `json:"name"`
				} `json:"product_data"`
			} `json:"price_data"`
			Quantity int64 `json:"quantity"`
		} `json:"line_items"`
		Metadata          map[string]string `json:"metadata"`
		PaymentIntentData struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"payment_intent_data"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Mode != "payment" || req.SuccessURL == "" || req.CancelURL == "" || len(req.LineItems) == 0 {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_missing", "mode payment, success_url, cancel_url and line_items are required")
		return
	}
	cs := &Session{ID: s.nextID("cs_"), Object: "checkout.session", Created: nowMillis(), Currency: "IDR", Mode: req.Mode, Status: "open",
		CancelURL: req.CancelURL, SuccessURL: req.SuccessURL, LineItems: LineItems{Object: "list"},
		PaymentMethodTypes: req.PaymentMethodTypes, PaymentStatus: "unpaid", Metadata: req.Metadata}
	cs.URL = s.URL + "/pay/" + cs.ID
	cs.ExpiresAt = cs.Created + 24*60*60*1000
	for _, li := range req.LineItems {
		if li.PriceData == nil || li.PriceData.Currency != "IDR" || li.Quantity <= 0 || li.PriceData.UnitAmount < minAmount {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "each line item needs IDR price_data and a quantity")
			return
		}
		total := li.PriceData.UnitAmount * li.Quantity
		cs.LineItems.Data = append(cs.LineItems.Data, LineItem{ID: s.nextID("li_"), Object: "item", Currency: "IDR",
			Description: li.PriceData.ProductData.Name, Quantity: li.Quantity, AmountSubtotal: total, AmountTotal: total})
		cs.AmountSubtotal += total
	}
	cs.AmountTotal = cs.AmountSubtotal
	in := s.newIntent(cs.AmountTotal, req.PaymentIntentData.Metadata)
	cs.PaymentIntent = in.ID
	s.sessions[cs.ID] = cs
	writeJSON(w, http.StatusOK, cs)
}

// Pay plays the customer paying the PaymentIntent or Checkout Session id
// by bank transfer; its events are queued for Deliver.
func (s *Server) Pay(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, cs, err := s.find(id)
	if err != nil {
		return err
	}
	in.Status, in.NextAction = "succeeded", nil
	s.queueEvent("payment_intent.succeeded", in)
	if cs != nil {
		cs.Status, cs.PaymentStatus = "complete", "paid"
		s.queueEvent("checkout.session.completed", cs)
	}
	return nil
}

// Fail plays a bank transfer that did not go through, with code.
func (s *Server) Fail(id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, _, err := s.find(id)
	if err != nil {
		return err
	}
	in.Status, in.NextAction = "requires_payment_method", nil
	in.LastPaymentError = &PaymentError{Code: code, Message: "The bank transfer was not completed."}
	s.queueEvent("payment_intent.payment_failed", in)
	return nil
}

func (s *Server) find(id string) (*Intent, *Session, error) {
	if cs, ok := s.sessions[id]; ok {
		return s.intents[cs.PaymentIntent], cs, nil
	}
	if in, ok := s.intents[id]; ok {
		if in.Status != "requires_action" {
			return nil, nil, fmt.Errorf("wooshpayfake: %s is %s", id, in.Status)
		}
		return in, nil, nil
	}
	return nil, nil, fmt.Errorf("wooshpayfake: no %s", id)
}
