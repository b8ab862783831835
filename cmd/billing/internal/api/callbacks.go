package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
)

// maxCallbackBytes bounds a provider callback's body; payment webhooks are
// a few KiB.
const maxCallbackBytes = 1 << 20

// newCallbackCounter counts provider callbacks by provider and outcome:
// PROCESSED, DUPLICATE, UNMATCHED (verified but about no known payment:
// stored for an operator, worth an alert), IGNORED, UNPARSEABLE, and
// REJECTED (failed verification; not stored).
func newCallbackCounter(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_provider_callbacks_total",
		Help: "Provider callbacks received, by provider and outcome (PROCESSED, DUPLICATE, UNMATCHED, IGNORED, UNPARSEABLE, REJECTED).",
	}, []string{"provider", "outcome"})
	reg.MustRegister(c)
	return c
}

// callbackAck is the answer to an accepted callback, sent after its
// receipt and effects are committed.
type callbackAck struct {
	Outcome payments.CallbackOutcome `json:"outcome"`
}

// callback answers POST /callbacks/{provider}. Callbacks carry no API key:
// the service finds the business and verifies the provider's token or
// signature. A callback that cannot be verified is 401 and changes nothing.
func (s *Server) callback(name providers.Name) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		ctx := hr.Context()
		body, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, maxCallbackBytes))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.writeError(w, hr, &billing.Error{Code: billing.ETOOLARGE, Reason: billing.ReasonTooLarge,
				Message: "a callback body must be at most 1 MiB"}, 0)
			return
		}
		if err != nil {
			s.writeError(w, hr, billing.Invalid("body", "could not be read"), 0)
			return
		}
		outcome, err := s.payments.ReceiveCallback(ctx, name, providers.CallbackInput{Header: hr.Header, Query: hr.URL.Query(), Body: body})
		label := string(outcome)
		if billing.CodeOf(err) == billing.EUNAUTHORIZED {
			label = "REJECTED"
			s.log.Warn("rejected a provider callback", "request_id", infoFrom(ctx).id, "provider", string(name), "error", err.Error())
		}
		if label != "" {
			s.callbacks.WithLabelValues(string(name), label).Inc()
		}
		if err != nil {
			s.writeError(w, hr, err, 0)
			return
		}
		writeJSON(w, http.StatusOK, callbackAck{Outcome: outcome})
	})
}
