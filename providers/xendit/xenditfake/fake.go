// Package xenditfake is a local stand-in for Xendit's Payments API v3, for
// tests: an httptest server that implements the documented requests,
// responses, errors and webhooks of payment requests and payment tokens
// (the shapes of docs.xendit.co's create/get/cancel payment request, payment
// token and webhook pages). It checks what a client sends as Xendit does
// (Basic auth with the secret key, required fields per type, idempotency
// keys) and decides outcomes with Xendit's test amounts. Webhooks are
// queued and sent to CallbackURL by Deliver, with x-callback-token.
package xenditfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/tagihan/billing"
)

// BusinessID is the Xendit business id the fake answers with.
const BusinessID = "5f27a14a9bf05c73dd040bc8"

// testAmounts are Xendit's test amounts and the failure code of each.
var testAmounts = map[string]string{"21110": "INSUFFICIENT_BALANCE", "21103": "ACCOUNT_ACCESS_BLOCKED",
	"21106": "INVALID_ACCOUNT_DETAILS", "21107": "MAXIMUM_LIMIT_REACHED"}

// Server is the fake.
type Server struct {
	*httptest.Server
	// SecretKey is the key clients must send as the Basic user name.
	SecretKey string
	// CallbackToken is sent in x-callback-token with every webhook.
	CallbackToken string

	mu          sync.Mutex
	callbackURL string
	requests    map[string]*PaymentRequest
	tokens      map[string]*Token
	keys        map[string]stored
	failures    []failure
	queue       []Webhook
	received    []Received
	seq         int
}

// Received is an API request the fake got.
type Received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Webhook is a webhook the fake will send.
type Webhook struct {
	ID   string
	Body []byte
}

type stored struct {
	hash   [32]byte
	status int
	body   []byte
}

type failure struct {
	status int
	body   string
}

// PaymentRequest is the fake's payment request, in Xendit's response
// shape (the field order of the documentation's examples).
type PaymentRequest struct {
	BusinessID        string                     `json:"business_id"`
	ReferenceID       string                     `json:"reference_id"`
	PaymentRequestID  string                     `json:"payment_request_id"`
	PaymentTokenID    *string                    `json:"payment_token_id,omitempty"`
	CustomerID        string                     `json:"customer_id,omitempty"`
	LatestPaymentID   *string                    `json:"latest_payment_id,omitempty"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     json.RawMessage            `json:"request_amount"`
	CaptureMethod     string                     `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties,omitempty"`
	Actions           []Action                   `json:"actions,omitempty"`
	Status            string                     `json:"status"`
	FailureCode       *string                    `json:"failure_code,omitempty"`
	Description       string                     `json:"description,omitempty"`
	Metadata          map[string]json.RawMessage `json:"metadata,omitempty"`
	Created           string                     `json:"created"`
	Updated           string                     `json:"updated"`
}

// Action is an action of a payment request.
type Action struct {
	Type       string `json:"type"`
	Value      string `json:"value"`
	Descriptor string `json:"descriptor"`
}

// Token is the fake's payment token.
type Token struct {
	PaymentTokenID string                     `json:"payment_token_id"`
	ChannelCode    string                     `json:"channel_code"`
	Country        string                     `json:"country"`
	BusinessID     string                     `json:"business_id"`
	CustomerID     string                     `json:"customer_id"`
	ReferenceID    string                     `json:"reference_id"`
	Currency       string                     `json:"currency"`
	Status         string                     `json:"status"`
	Metadata       map[string]json.RawMessage `json:"metadata,omitempty"`
	Created        string                     `json:"created"`
	Updated        string                     `json:"updated"`
}

// New starts a fake that accepts secretKey and signs webhooks with
// callbackToken. Close it when done.
func New(secretKey, callbackToken string) *Server {
	s := &Server{SecretKey: secretKey, CallbackToken: callbackToken, requests: map[string]*PaymentRequest{},
		tokens: map[string]*Token{}, keys: map[string]stored{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetCallbackURL sets where Deliver posts webhooks.
func (s *Server) SetCallbackURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callbackURL = u
}

// FailNext makes the next API request answer status with body, as Xendit
// does when it is down (503), rate limits (429) or refuses a request.
func (s *Server) FailNext(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failure{status, body})
}

// Received returns the API requests the fake got, oldest first.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Request returns the payment request id.
func (s *Server) Request(id string) (PaymentRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr, ok := s.requests[id]
	if !ok {
		return PaymentRequest{}, false
	}
	return *pr, true
}

// Count returns how many payment requests the fake created.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08x-0000-4000-8000-%012x", prefix, s.seq, s.seq)
}

func now() string { return billing.FormatTime(billing.SystemClock{}.Now()) }

func writeJSON(w http.ResponseWriter, status int, v any) []byte {
	raw, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
	return raw
}

func xenditError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, Received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	if user, pass, ok := r.BasicAuth(); !ok || user != s.SecretKey || pass != "" {
		xenditError(w, http.StatusUnauthorized, "INVALID_API_KEY", "API key is invalid")
		return
	}
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	key := r.Header.Get("idempotency-key")
	if key != "" && r.Method == http.MethodPost {
		hash := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))
		if prev, ok := s.keys[key]; ok {
			if prev.hash != hash {
				xenditError(w, http.StatusConflict, "IDEMPOTENCY_ERROR", "Idempotency key has been used before")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(prev.status)
			_, _ = w.Write(prev.body)
			return
		}
		rec := &recorder{ResponseWriter: w}
		s.route(rec, r, body)
		if rec.status < 300 {
			s.keys[key] = stored{hash: hash, status: rec.status, body: rec.buf.Bytes()}
		}
		return
	}
	s.route(w, r, body)
}

// recorder keeps a response to replay it for a repeated idempotency key.
type recorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(status int) { r.status = status; r.ResponseWriter.WriteHeader(status) }
func (r *recorder) Write(b []byte) (int, error) {
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && len(parts) == 2 && parts[0] == "v3" && parts[1] == "payment_requests":
		s.create(w, body)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "payment_requests":
		if pr, ok := s.requests[parts[2]]; ok {
			writeJSON(w, http.StatusOK, pr)
			return
		}
		xenditError(w, http.StatusNotFound, "DATA_NOT_FOUND", "Payment request not found")
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "payment_requests" && parts[3] == "cancel":
		pr, ok := s.requests[parts[2]]
		switch {
		case !ok:
			xenditError(w, http.StatusNotFound, "DATA_NOT_FOUND", "Payment request not found")
		case pr.Status != "REQUIRES_ACTION":
			xenditError(w, http.StatusBadRequest, "INVALID_REQUEST", "Only a payment request in REQUIRES_ACTION can be cancelled")
		default:
			pr.Status, pr.Actions, pr.Updated = "CANCELED", nil, now()
			writeJSON(w, http.StatusOK, pr)
		}
	case len(parts) >= 3 && parts[1] == "payment_tokens":
		tok, ok := s.tokens[parts[2]]
		switch {
		case !ok:
			xenditError(w, http.StatusNotFound, "DATA_NOT_FOUND", "Payment token not found")
		case r.Method == http.MethodGet && len(parts) == 3:
			writeJSON(w, http.StatusOK, tok)
		case r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "cancel":
			tok.Status, tok.Updated = "CANCELED", now()
			writeJSON(w, http.StatusOK, tok)
		default:
			xenditError(w, http.StatusNotFound, "DATA_NOT_FOUND", "Not found")
		}
	default:
		xenditError(w, http.StatusNotFound, "DATA_NOT_FOUND", "Not found")
	}
}
