package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Headers of every delivery.
const (
	HeaderCallbackToken = "x-callback-token"
	HeaderSignature     = "webhook-signature"
	HeaderDeliveryID    = "webhook-delivery-id"
	userAgent           = "tagihan-billing-webhooks/1"
)

// Sign returns the webhook-signature header for body sent at t with an
// endpoint's secret: "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">",
// the key being the secret's bytes as shown ("whsec_…").
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// result is the outcome of one attempt.
type result struct {
	status  *int
	latency time.Duration
	excerpt string
	err     error
	// interrupted: the engine is stopping and the attempt was cut short;
	// it is not logged and the delivery stays due.
	interrupted bool
}

// ok reports whether the endpoint acknowledged the event (any 2xx).
func (r result) ok() bool {
	return r.err == nil && r.status != nil && *r.status >= 200 && *r.status < 300
}

func (r result) errText() *string {
	if r.err == nil {
		if r.status != nil && !r.ok() {
			s := fmt.Sprintf("the endpoint answered %d; only a 2xx acknowledges", *r.status)
			return &s
		}
		return nil
	}
	s := r.err.Error()
	return &s
}

// send makes one attempt of job: a POST of the event's envelope, signed
// with the endpoint's secret at the system clock's time (so that receivers
// can bound its age even for a sandbox business), within the timeout.
func (s *Service) send(ctx context.Context, job *attemptJob) result {
	body, err := job.event.Envelope()
	if err != nil {
		return result{err: fmt.Errorf("render event: %w", err)}
	}
	start := s.clock.Now()
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, job.endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderCallbackToken, job.token)
	req.Header.Set(HeaderSignature, Sign(job.endpoint.Secret, start, body))
	req.Header.Set(HeaderDeliveryID, job.delivery.ID)
	resp, err := s.client(job.sandbox).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{interrupted: true}
		}
		return result{latency: s.clock.Now().Sub(start), err: describe(err, s.timeout)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
	status := resp.StatusCode
	return result{status: &status, latency: max(s.clock.Now().Sub(start), 0), excerpt: excerpt(raw)}
}

// describe turns a transport error into a sentence for the attempt log,
// without the request's URL (the log shows it apart).
func describe(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("no answer within %s", timeout)
	}
	if errors.Is(err, errNonPublic) {
		return errors.New("refused: the endpoint's address is not public (loopback, private, link-local or reserved)")
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return fmt.Errorf("could not reach the endpoint: %v", err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// excerpt keeps the start of an answer as valid UTF-8.
func excerpt(raw []byte) string {
	s := string(raw)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
