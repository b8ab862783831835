package wooshpay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tagihan/billing/providers"
)

// SignatureHeader carries a webhook's signature.
const SignatureHeader = "Wooshpay-Signature"

// Tolerance is how far a signature's timestamp may be from the system
// clock: an older (or replayed) webhook is refused.
const Tolerance = 5 * time.Minute

// maxSignatures bounds the v1 entries checked, so a header cannot make
// verification expensive.
const maxSignatures = 8

// Sign returns the Wooshpay-Signature value for body at t with secret:
// t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// verify checks header against body with secret at now: one v1 entry must
// be the HMAC of "<t>.<body>" (compared in constant time), and t within
// Tolerance of now.
func verify(header, secret string, body []byte, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("no webhook secret is configured")
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if len(sigs) < maxSignatures {
				sigs = append(sigs, v)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("the signature header is not t=<unix>,v1=<hex>")
	}
	if age := now.Sub(time.Unix(sec, 0)); age > Tolerance || age < -Tolerance {
		return fmt.Errorf("the signature's timestamp is %s away from now, more than %s", age.Round(time.Second), Tolerance)
	}
	want := []byte(mac(secret, ts, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches the body")
}

// event is WooshPay's event envelope.
type event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ParseCallback verifies a webhook's Wooshpay-Signature with the business's
// webhook secret, at now (the system clock), then parses it. A replayed
// body is refused once its timestamp is older than Tolerance; within it,
// its event id makes it a duplicate.
func (p *Provider) ParseCallback(cfg providers.Config, in providers.CallbackInput, now time.Time) (providers.Notification, error) {
	secret := ""
	if cfg.WooshPay != nil {
		secret = cfg.WooshPay.WebhookSecret
	}
	if err := verify(in.Header.Get(SignatureHeader), secret, in.Body, now); err != nil {
		return providers.Notification{}, fmt.Errorf("wooshpay: %w: %v", providers.ErrUnverified, err)
	}
	return parseEvent(in.Body)
}

func parseEvent(body []byte) (providers.Notification, error) {
	var n providers.Notification
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return n, fmt.Errorf("wooshpay: %w: %v", providers.ErrMalformed, err)
	}
	if ev.ID == "" || ev.Type == "" {
		return n, fmt.Errorf("wooshpay: %w: an event needs an id and a type", providers.ErrMalformed)
	}
	n.DedupeKey, n.EventType, n.Kind = "event:"+ev.ID, ev.Type, providers.NotifyIgnored
	switch {
	case strings.HasPrefix(ev.Type, "payment_intent."):
		var in intent
		if err := json.Unmarshal(ev.Data.Object, &in); err != nil || in.ID == "" {
			return n, fmt.Errorf("wooshpay: %w: data.object is not a PaymentIntent", providers.ErrMalformed)
		}
		res, err := in.result()
		if err != nil {
			return n, fmt.Errorf("wooshpay: %w: %v", providers.ErrMalformed, err)
		}
		switch ev.Type {
		case "payment_intent.succeeded", "payment_intent.canceled", "payment_intent.processing":
		case "payment_intent.payment_failed":
			res.Status, res.FailureCode = providers.StatusFailed, "PAYMENT_FAILED"
			if in.LastPaymentError != nil && in.LastPaymentError.Code != "" {
				res.FailureCode = strings.ToUpper(in.LastPaymentError.Code)
			}
		default:
			return n, nil
		}
		n.Kind, n.Result, n.Reference = providers.NotifyPayment, res, in.Metadata["payment_request_id"]
	case ev.Type == "checkout.session.completed" || ev.Type == "checkout.session.expired":
		var s session
		if err := json.Unmarshal(ev.Data.Object, &s); err != nil || s.ID == "" {
			return n, fmt.Errorf("wooshpay: %w: data.object is not a Checkout Session", providers.ErrMalformed)
		}
		res, err := s.result()
		if err != nil {
			return n, fmt.Errorf("wooshpay: %w: %v", providers.ErrMalformed, err)
		}
		n.Kind, n.Result, n.Reference = providers.NotifyPayment, res, s.Metadata["payment_request_id"]
	}
	return n, nil
}
