// Package api is the engine's HTTP interface: the JSON API of SPEC §3–4,
// health and metrics. Handlers are thin: they decode, call the domain
// packages, and encode; the conventions every endpoint shares (auth, errors,
// idempotency, limits, logging, metrics) live in this package once.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/internal/sandboxclock"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/providers"
	"golang.org/x/time/rate"
)

// MaxBodyBytes is the largest request body accepted (10 MiB, SPEC §3).
const MaxBodyBytes = 10 << 20

// Config configures a Server.
type Config struct {
	// DB is the engine's database.
	DB *postgres.DB
	// Logger receives one JSON line per request and every internal error.
	// Defaults to discarding.
	Logger *slog.Logger
	// Clock is the system clock: it dates idempotency records and is the
	// clock of live businesses. Defaults to billing.SystemClock.
	Clock billing.Clock
	// RateLimit is the sustained number of requests per second allowed per
	// API key, in each engine process. Defaults to 100.
	RateLimit rate.Limit
	// RateBurst is how many requests one API key may send at once above the
	// sustained rate. Defaults to 200.
	RateBurst int
	// Registry receives the HTTP metrics and is served at /metrics. Defaults
	// to a new registry with Go and process collectors.
	Registry *prometheus.Registry
	// Ready reports whether the engine can serve (database reachable,
	// migrations current); /readyz answers 503 with its error. Defaults to a
	// database ping.
	Ready func(context.Context) error
	// Payments is the payment service behind payment requests, tokens,
	// provider settings and callbacks. Defaults to one with the sandbox,
	// Xendit and WooshPay providers at their public addresses.
	Payments *payments.Service
	// Webhooks is the webhook service behind webhook endpoints, events and
	// redeliveries. Defaults to one that lets no business reach private
	// addresses.
	Webhooks *webhooks.Service
	// Engine is the plan service behind recurring plans, schedules, cycles,
	// the usage preview and the plans' AUTH pages. Defaults to one over
	// Payments, without a public base URL (AUTH links use the address each
	// request came to). A Payments given here must have its SettledFunc
	// call Engine.Settled, or plans never activate through their AUTH page;
	// the default Payments calls the server's Engine.
	Engine *engine.Service
	// Notify sends customer notifications; advancing a sandbox clock sends
	// those that fall due on the way. Defaults to one with no channel
	// configured (every notification SKIPPED_NO_CHANNEL).
	Notify *notify.Service
}

// Server serves the API.
type Server struct {
	db      *postgres.DB
	log     *slog.Logger
	clock   billing.Clock
	limiter *keyLimiter
	metrics *metrics
	ready   func(context.Context) error
	mux     *http.ServeMux
	usage   *metering.Ingester

	payments  *payments.Service
	callbacks *prometheus.CounterVec
	webhooks  *webhooks.Service
	engine    *engine.Service
	notify    *notify.Service
	sandbox   *sandboxclock.Clock
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = billing.SystemClock{}
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 100
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = 200
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	if cfg.Ready == nil {
		cfg.Ready = func(ctx context.Context) error { return cfg.DB.Pool.Ping(ctx) }
	}
	s := &Server{
		db:      cfg.DB,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		limiter: newKeyLimiter(cfg.RateLimit, cfg.RateBurst),
		metrics: newMetrics(cfg.Registry),
		ready:   cfg.Ready,
		mux:     http.NewServeMux(),
	}
	if cfg.DB != nil {
		s.usage = metering.NewIngester(cfg.DB.Pool, metering.NewPartitions(cfg.DB.Pool))
	}
	s.payments, s.callbacks, s.engine = cfg.Payments, newCallbackCounter(cfg.Registry), cfg.Engine
	if s.payments == nil {
		s.payments = defaultPayments(cfg, s)
	}
	if s.engine == nil {
		s.engine = defaultEngine(cfg, s.payments)
	}
	if s.webhooks = cfg.Webhooks; s.webhooks == nil {
		s.webhooks = defaultWebhooks(cfg)
	}
	if s.notify = cfg.Notify; s.notify == nil {
		s.notify = defaultNotify(cfg)
	}
	if cfg.DB != nil {
		s.sandbox = newSandboxClock(cfg.DB.Bun, s.engine, s.payments, s.webhooks, s.notify)
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.method+" "+rt.path, rt.handler)
	}
	s.mux.HandleFunc("/", s.noRoute)
	return s
}

// route is one endpoint.
type route struct {
	method, path string
	handler      http.Handler
}

// routes lists every endpoint. The OpenAPI test checks that docs/openapi.yaml
// describes each of them.
func (s *Server) routes() []route {
	return append([]route{
		{"GET", "/healthz", http.HandlerFunc(s.healthz)},
		{"GET", "/readyz", http.HandlerFunc(s.readyz)},
		{"GET", "/metrics", s.metrics.handler},

		{"POST", "/customers", s.api(s.createCustomer)},
		{"GET", "/customers", s.api(s.listCustomers)},
		{"GET", "/customers/{id}", s.api(s.getCustomer)},
		{"PATCH", "/customers/{id}", s.api(s.patchCustomer)},

		{"GET", "/sandbox/clock", s.api(s.getSandboxClock)},
		{"POST", "/sandbox/clock/advance", s.apiOwnTx(s.advanceSandboxClock)},

		{"POST", "/meters", s.api(s.createMeter)},
		{"GET", "/meters", s.api(s.listMeters)},
		{"GET", "/meters/{id}", s.api(s.getMeter)},
		{"PATCH", "/meters/{id}", s.api(s.renameMeter)},
		{"POST", "/usage_events", s.apiOwnTx(s.ingestUsage)},
		{"GET", "/usage_events", s.api(s.listUsageEvents)},

		{"POST", "/payment_requests", s.apiOwnTx(s.createPaymentRequest)},
		{"POST", "/v3/payment_requests", s.apiOwnTx(s.createPaymentRequest)},
		{"GET", "/payment_requests/{id}", s.api(s.getPaymentRequest)},
		{"POST", "/payment_requests/{id}/cancel", s.api(s.cancelPaymentRequest)},
		{"POST", "/payment_requests/{id}/simulate", s.api(s.simulatePaymentRequest)},
		{"GET", "/payment_tokens/{id}", s.api(s.getPaymentToken)},
		{"POST", "/payment_tokens/{id}/cancel", s.api(s.cancelPaymentToken)},
		{"GET", "/provider_settings", s.api(s.getProviderSettings)},
		{"POST", "/provider_settings", s.api(s.saveProviderSettings)},
		{"POST", "/callbacks/xendit", s.callback(providers.Xendit)},
		{"POST", "/callbacks/wooshpay", s.callback(providers.WooshPay)},
	}, append(append(append(s.outboundRoutes(), s.planRoutes()...), s.chargingRoutes()...), s.invoiceRoutes()...)...)
}

// Routes returns every endpoint as "METHOD /path/{param}".
func (s *Server) Routes() []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}

// Handler returns the server's http.Handler: request ids, logging, metrics
// and panic recovery around the routes.
func (s *Server) Handler() http.Handler {
	return s.observe(s.mux)
}

// OpsHandler returns a handler for /healthz, /readyz and /metrics only: what
// a worker-only process (serve --role=worker) exposes.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		if rt.path == "/healthz" || rt.path == "/readyz" || rt.path == "/metrics" {
			mux.Handle(rt.method+" "+rt.path, rt.handler)
		}
	}
	return s.observe(mux)
}

// noRoute answers requests that match no endpoint: 405 when the path exists
// with another method, else 404, both in the API's error shape.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE", "PUT"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(w, r, &billing.Error{Code: billing.EINVALID, Reason: "METHOD_NOT_ALLOWED",
			Message: r.Method + " is not allowed here; use " + strings.Join(allowed, " or ")}, http.StatusMethodNotAllowed)
		return
	}
	s.writeError(w, r, &billing.Error{Code: billing.ENOTFOUND, Reason: billing.ReasonNotFound,
		Message: "no endpoint " + r.Method + " " + r.URL.Path}, 0)
}
