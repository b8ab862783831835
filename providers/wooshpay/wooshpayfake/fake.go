// Package wooshpayfake is a local stand-in for WooshPay's API, for tests:
// an httptest server implementing what WooshPay documents for Indonesian
// bank transfer — PaymentIntents (create with confirm, get, cancel,
// search), Checkout Sessions (create with line items, get, expire), webhook
// endpoints (create, returning the signing secret once) — in its object and
// error shapes, and sending events signed with Wooshpay-Signature to every
// registered endpoint.
package wooshpayfake

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
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/providers/wooshpay"
)

// Server is the fake.
type Server struct {
	*httptest.Server
	// SecretKey is the key clients must send as the Basic user name.
	SecretKey string

	mu        sync.Mutex
	intents   map[string]*Intent
	sessions  map[string]*Session
	endpoints []*Endpoint
	keys      map[string]stored
	queue     []Event
	received  []Received
	failures  []failure
	seq       int64
}

// Received is an API request the fake got.
type Received struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
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

// Intent is a PaymentIntent, in the documented shape.
type Intent struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Amount             int64             `json:"amount"`
	Status             string            `json:"status"`
	Livemode           bool              `json:"livemode"`
	ClientSecret       string            `json:"client_secret"`
	NextAction         *NextAction       `json:"next_action"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	ConfirmationMethod string            `json:"confirmation_method"`
	ReturnURL          string            `json:"return_url,omitempty"`
	PaymentMethod      string            `json:"payment_method"`
	CaptureMethod      string            `json:"capture_method"`
	Description        string            `json:"description,omitempty"`
	Metadata           map[string]string `json:"metadata"`
	LastPaymentError   *PaymentError     `json:"last_payment_error"`
}

// NextAction is a PaymentIntent's redirect for bank transfer.
type NextAction struct {
	Type     string `json:"type"`
	Redirect struct {
		URL string `json:"url"`
	} `json:"bank_transfer_id_handle_redirect"`
}

// PaymentError says why a payment failed.
type PaymentError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Session is a Checkout Session, in the documented shape.
type Session struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Created            int64             `json:"created"`
	Livemode           bool              `json:"livemode"`
	Currency           string            `json:"currency"`
	Mode               string            `json:"mode"`
	Status             string            `json:"status"`
	URL                string            `json:"url"`
	CancelURL          string            `json:"cancel_url"`
	SuccessURL         string            `json:"success_url"`
	LineItems          LineItems         `json:"line_items"`
	PaymentIntent      string            `json:"payment_intent"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	PaymentStatus      string            `json:"payment_status"`
	AmountSubtotal     int64             `json:"amount_subtotal"`
	AmountTotal        int64             `json:"amount_total"`
	ExpiresAt          int64             `json:"expires_at"`
	Metadata           map[string]string `json:"metadata"`
}

// LineItems is a session's list of items.
type LineItems struct {
	Object string     `json:"object"`
	Data   []LineItem `json:"data"`
}

// LineItem is one item of a session.
type LineItem struct {
	ID             string `json:"id"`
	Object         string `json:"object"`
	Currency       string `json:"currency"`
	Description    string `json:"description"`
	Quantity       int64  `json:"quantity"`
	AmountSubtotal int64  `json:"amount_subtotal"`
	AmountTotal    int64  `json:"amount_total"`
}

// Endpoint is a registered webhook endpoint.
type Endpoint struct {
	ID            string   `json:"id"`
	Object        string   `json:"object"`
	URL           string   `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Description   string   `json:"description,omitempty"`
	Status        string   `json:"status"`
	Secret        string   `json:"secret,omitempty"`
}

// Event is an event the fake will send.
type Event struct {
	ID   string
	Body []byte
}

// New starts a fake that accepts secretKey. Close it when done.
func New(secretKey string) *Server {
	s := &Server{SecretKey: secretKey, intents: map[string]*Intent{}, sessions: map[string]*Session{}, keys: map[string]stored{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// FailNext makes the next API request answer status with body.
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

// Endpoints returns the registered webhook endpoints.
func (s *Server) Endpoints() []Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Endpoint
	for _, e := range s.endpoints {
		out = append(out, *e)
	}
	return out
}

// Intents returns how many PaymentIntents the fake created.
func (s *Server) Intents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.intents)
}

// nextID returns an id like WooshPay's (pi_1664204164491640832).
func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%019d", prefix, 1664204164491640832+s.seq)
}

func nowMillis() int64 { return billing.SystemClock{}.Now().UnixMilli() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

func apiError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, Received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	if user, pass, ok := r.BasicAuth(); !ok || user != s.SecretKey || pass != "" {
		apiError(w, http.StatusUnauthorized, "invalid_request_error", "api_key_invalid", "Invalid API Key provided")
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
	key := r.Header.Get("Idempotency-Key")
	if key != "" && r.Method == http.MethodPost {
		hash := sha256.Sum256(append([]byte(r.URL.Path+"\n"), body...))
		if prev, ok := s.keys[key]; ok {
			if prev.hash != hash {
				apiError(w, http.StatusConflict, "idempotency_error", "idempotency_key_in_use", "Keys for idempotent requests can only be used with the same parameters they were first used with.")
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
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents":
		s.createIntent(w, body)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/payment_intents/search":
		s.searchIntents(w, r.URL.Query().Get("query"))
	case len(p) >= 3 && p[1] == "payment_intents":
		in, ok := s.intents[p[2]]
		switch {
		case !ok:
			apiError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment_intent: '"+p[2]+"'")
		case r.Method == http.MethodGet && len(p) == 3:
			writeJSON(w, http.StatusOK, in)
		case r.Method == http.MethodPost && len(p) == 4 && p[3] == "cancel":
			var req struct {
				Reason string `json:"cancellation_reason"`
			}
			_ = json.Unmarshal(body, &req)
			switch {
			case req.Reason == "":
				apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_missing", "Missing required param: cancellation_reason.")
			case in.Status != "requires_payment_method" && in.Status != "requires_capture" && in.Status != "requires_confirmation" && in.Status != "requires_action":
				apiError(w, http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "This PaymentIntent's status is "+in.Status)
			default:
				in.Status, in.NextAction = "canceled", nil
				s.queueEvent("payment_intent.canceled", in)
				writeJSON(w, http.StatusOK, in)
			}
		default:
			apiError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "Unrecognized request URL")
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		s.createSession(w, body)
	case len(p) >= 4 && p[1] == "checkout" && p[2] == "sessions":
		cs, ok := s.sessions[p[3]]
		switch {
		case !ok:
			apiError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such checkout.session: '"+p[3]+"'")
		case r.Method == http.MethodGet && len(p) == 4:
			writeJSON(w, http.StatusOK, cs)
		case r.Method == http.MethodPost && len(p) == 5 && p[4] == "expire" && cs.Status == "open":
			cs.Status = "expired"
			s.queueEvent("checkout.session.expired", cs)
			writeJSON(w, http.StatusOK, cs)
		default:
			apiError(w, http.StatusBadRequest, "invalid_request_error", "checkout_session_unexpected_state", "This Checkout Session is "+cs.Status)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v1/webhook_endpoints":
		var req Endpoint
		if err := json.Unmarshal(body, &req); err != nil || req.URL == "" || len(req.EnabledEvents) == 0 {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "parameter_missing", "url and enabled_events are required")
			return
		}
		ep := &Endpoint{ID: s.nextID("we_"), Object: "webhook_endpoint", URL: req.URL, EnabledEvents: req.EnabledEvents,
			Description: req.Description, Status: "enabled", Secret: s.nextID("whsec_")}
		s.endpoints = append(s.endpoints, ep)
		writeJSON(w, http.StatusOK, ep)
	default:
		apiError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "Unrecognized request URL")
	}
}

// Deliver sends every queued event to every registered endpoint, signed
// with the endpoint's secret at the system clock's time, and returns the
// status of each answer.
func (s *Server) Deliver() ([]int, error) {
	return s.DeliverAt(billing.SystemClock{}.Now())
}

// DeliverAt is Deliver with the signature dated at t.
func (s *Server) DeliverAt(t time.Time) ([]int, error) {
	s.mu.Lock()
	queue, endpoints := s.queue, append([]*Endpoint(nil), s.endpoints...)
	s.queue = nil
	s.mu.Unlock()
	var statuses []int
	for _, ev := range queue {
		for _, ep := range endpoints {
			req, err := http.NewRequest(http.MethodPost, ep.URL, bytes.NewReader(ev.Body))
			if err != nil {
				return statuses, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(wooshpay.SignatureHeader, wooshpay.Sign(ep.Secret, t, ev.Body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return statuses, err
			}
			resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
		}
	}
	return statuses, nil
}

// Events returns the queued events without sending them.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.queue...)
}

func (s *Server) queueEvent(typ string, object any) {
	id := s.nextID("evt_")
	body, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": "2023-06-01", "created": nowMillis(),
		"data": map[string]any{"object": object}, "livemode": false, "pending_webhooks": len(s.endpoints), "type": typ})
	s.queue = append(s.queue, Event{ID: id, Body: body})
}
