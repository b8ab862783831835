package xendit

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tagihan/billing/providers"
)

// webhook is the envelope of Xendit's payment and payment token webhooks.
type webhook struct {
	Event      string          `json:"event"`
	BusinessID string          `json:"business_id"`
	Created    string          `json:"created"`
	Data       json.RawMessage `json:"data"`
}

// webhookPayment is the data of payment.capture and payment.failure (the
// payment object), as far as the engine reads it.
type webhookPayment struct {
	PaymentID        string  `json:"payment_id"`
	PaymentRequestID string  `json:"payment_request_id"`
	ReferenceID      string  `json:"reference_id"`
	PaymentTokenID   *string `json:"payment_token_id"`
	ChannelCode      string  `json:"channel_code"`
	Status           string  `json:"status"`
	FailureCode      *string `json:"failure_code"`
}

// webhookToken is the data of payment_token.* webhooks.
type webhookToken struct {
	PaymentTokenID string `json:"payment_token_id"`
	ReferenceID    string `json:"reference_id"`
	Status         string `json:"status"`
}

// ParseCallback verifies a webhook by its x-callback-token, compared in
// constant time with the business's callback token, and parses it. Xendit
// signs nothing else, so a valid token on a replayed body is accepted: the
// engine's dedupe and state machine make a replay change nothing. The
// dedupe key is Xendit's webhook-id header when present, else a hash of
// the body.
func (p *Provider) ParseCallback(cfg providers.Config, in providers.CallbackInput, now time.Time) (providers.Notification, error) {
	return parseWebhook(cfg, in)
}

func parseWebhook(cfg providers.Config, in providers.CallbackInput) (providers.Notification, error) {
	got := in.Header.Get("x-callback-token")
	if cfg.Xendit == nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(cfg.Xendit.CallbackToken)) != 1 {
		return providers.Notification{}, fmt.Errorf("xendit: %w: wrong x-callback-token", providers.ErrUnverified)
	}
	n := providers.Notification{}
	if id := in.Header.Get("webhook-id"); id != "" {
		n.DedupeKey = "webhook-id:" + id
	} else {
		sum := sha256.Sum256(in.Body)
		n.DedupeKey = "sha256:" + hex.EncodeToString(sum[:])
	}
	var w webhook
	if err := json.Unmarshal(in.Body, &w); err != nil {
		return n, fmt.Errorf("xendit: %w: %v", providers.ErrMalformed, err)
	}
	n.EventType = w.Event
	switch w.Event {
	case "payment.capture", "payment.failure":
		var d webhookPayment
		if err := json.Unmarshal(w.Data, &d); err != nil {
			return n, fmt.Errorf("xendit: %w: data: %v", providers.ErrMalformed, err)
		}
		if d.PaymentRequestID == "" && d.ReferenceID == "" {
			return n, fmt.Errorf("xendit: %w: a payment without payment_request_id or reference_id", providers.ErrMalformed)
		}
		n.Kind, n.Reference = providers.NotifyPayment, d.ReferenceID
		n.Result = providers.Result{Status: providers.StatusSucceeded, ProviderRef: d.PaymentRequestID, PaymentRef: d.PaymentID, ChannelCode: d.ChannelCode}
		if w.Event == "payment.failure" {
			n.Result.Status = providers.StatusFailed
			if d.FailureCode != nil {
				n.Result.FailureCode = *d.FailureCode
			}
		} else if d.PaymentTokenID != nil {
			n.Result.TokenRef = *d.PaymentTokenID
		}
	case "payment_token.activation", "payment_token.expiry":
		var d webhookToken
		if err := json.Unmarshal(w.Data, &d); err != nil || d.PaymentTokenID == "" {
			return n, fmt.Errorf("xendit: %w: a token without payment_token_id", providers.ErrMalformed)
		}
		n.Kind, n.TokenRef, n.Reference = providers.NotifyTokenActivated, d.PaymentTokenID, d.ReferenceID
		if w.Event == "payment_token.expiry" {
			n.Kind = providers.NotifyTokenExpired
		}
	default:
		// payment.authorization (manual capture, which the engine does not
		// use), payment_token.failure (the payment's own failure says it),
		// and events of other products.
		n.Kind = providers.NotifyIgnored
	}
	return n, nil
}
