package api

import (
	"bytes"
	"context"
	"net/http"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/tagihan/billing/providers/wooshpay"
	"github.com/tagihan/billing/providers/xendit"
	"github.com/uptrace/bun"
)

// createPaymentRequest answers POST /payment_requests (and
// /v3/payment_requests). It is registered with apiOwnTx: the service
// commits the request and its provider idempotency key before it calls the
// provider, and a retry with the same idempotency-key resumes it.
func (s *Server) createPaymentRequest(ctx context.Context, r *request) (int, any, error) {
	p, err := payments.DecodeCreate(r.body)
	if err != nil {
		return 0, nil, err
	}
	pr, err := s.payments.Create(ctx, r.business, r.now, p, r.idempotencyKey, r.body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, pr, nil
}

func (s *Server) getPaymentRequest(ctx context.Context, r *request) (int, any, error) {
	pr, err := s.payments.Get(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pr, nil
}

func (s *Server) cancelPaymentRequest(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	pr, err := s.payments.Cancel(ctx, r.db, r.business, r.now, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pr, nil
}

func (s *Server) simulatePaymentRequest(ctx context.Context, r *request) (int, any, error) {
	p, err := payments.DecodeSimulate(r.body)
	if err != nil {
		return 0, nil, err
	}
	res, err := s.payments.Simulate(ctx, r.db, r.business, r.now, r.PathValue("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

func (s *Server) getPaymentToken(ctx context.Context, r *request) (int, any, error) {
	tok, err := s.payments.GetToken(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tok, nil
}

func (s *Server) cancelPaymentToken(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	tok, err := s.payments.CancelToken(ctx, r.db, r.business, r.now, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tok, nil
}

// noParameters accepts the body of an endpoint that takes none: empty, or
// a JSON object whose fields are ignored (Xendit's SDKs send {}).
func noParameters(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var ignored struct{}
	return billing.DecodeJSON(body, &ignored, false)
}

func (s *Server) getProviderSettings(ctx context.Context, r *request) (int, any, error) {
	v, err := s.payments.Settings(ctx, r.db, r.business)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

func (s *Server) saveProviderSettings(ctx context.Context, r *request) (int, any, error) {
	v, err := s.payments.SaveSettings(ctx, r.db, r.business, r.now, r.body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

// defaultPayments is the payment service of a Server configured without
// one: the sandbox, and Xendit and WooshPay at their public addresses;
// the server's engine settles its payments (Server.settled, settledBatch).
func defaultPayments(cfg Config, s *Server) *payments.Service {
	var db *bun.DB
	if cfg.DB != nil {
		db = cfg.DB.Bun
	}
	return payments.New(payments.Config{DB: db, Clock: cfg.Clock, Logger: cfg.Logger, SettledFunc: s.settled, SettledBatchFunc: s.settledBatch,
		Providers: []providers.Provider{
			sandbox.New(sandbox.Config{DB: db}), xendit.New(xendit.Config{}), wooshpay.New(wooshpay.Config{}),
		}})
}
