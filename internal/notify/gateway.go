package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// GatewayRequest is the JSON body POSTed to WHATSAPP_GATEWAY_URL or
// SMS_GATEWAY_URL for each message (docs/notifications.md). The request
// also carries the header Idempotency-Key: <id>, the same on every retry
// of one notification.
type GatewayRequest struct {
	// ID is the notification's id ("ntf-…").
	ID string `json:"id"`
	// Channel is WHATSAPP or SMS.
	Channel Channel `json:"channel"`
	// To is the customer's mobile number in E.164 form (+6281234567890).
	To string `json:"to"`
	// Locale is the language of Body: "en" or "id".
	Locale string `json:"locale"`
	// Kind is the moment the message is about (CYCLE_CREATED, …).
	Kind Kind `json:"kind"`
	// Body is the text to send, ready to show.
	Body string `json:"body"`
	// BusinessID and CustomerID say whose message it is.
	BusinessID string `json:"business_id"`
	CustomerID string `json:"customer_id"`
}

// HeaderIdempotencyKey names the header that carries the notification's
// id on every gateway request.
const HeaderIdempotencyKey = "Idempotency-Key"

// sendGateway POSTs n to the channel's gateway. A 2xx answer means sent.
// A 4xx other than 408 and 429 is final (the gateway will not take this
// message); anything else is retried.
func (s *Service) sendGateway(ctx context.Context, n *Notification) error {
	target := s.cfg.WhatsAppGatewayURL
	if n.Channel == ChannelSMS {
		target = s.cfg.SMSGatewayURL
	}
	body, err := json.Marshal(GatewayRequest{ID: n.ID, Channel: n.Channel, To: *n.Recipient, Locale: n.Locale, Kind: n.Kind,
		Body: n.Body, BusinessID: n.BusinessID, CustomerID: n.CustomerID})
	if err != nil {
		return permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("gateway request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, n.ID)
	req.Header.Set("User-Agent", "tagihan-billing-notifications/1")
	resp, err := s.http.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // the URL may carry credentials: keep it out of the log
		}
		return fmt.Errorf("gateway unreachable: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("gateway answered %d: %s", resp.StatusCode, strings.ToValidUTF8(strings.TrimSpace(string(raw)), "\uFFFD"))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanent(err)
	}
	return err
}
