package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// planRoutes are the endpoints of recurring plans, schedules and cycles,
// the usage preview, and the plans' AUTH pages.
func (s *Server) planRoutes() []route {
	return []route{
		{"POST", "/recurring/plans", s.api(s.createPlan)},
		{"GET", "/recurring/plans", s.api(s.listPlans)},
		{"GET", "/recurring/plans/{id}", s.api(s.getPlan)},
		{"PATCH", "/recurring/plans/{id}", s.api(s.patchPlan)},
		{"POST", "/recurring/plans/{id}/deactivate", s.api(s.deactivatePlan)},
		{"GET", "/recurring/plans/{plan_id}/cycles", s.api(s.listCycles)},
		{"GET", "/recurring/plans/{plan_id}/cycles/{id}", s.api(s.getCycle)},
		{"PATCH", "/recurring/plans/{plan_id}/cycles/{id}", s.api(s.patchCycle)},
		{"POST", "/recurring/plans/{plan_id}/cycles/{id}/cancel", s.api(s.cancelCycle)},
		{"GET", "/recurring/schedules/{id}", s.api(s.getSchedule)},
		{"PATCH", "/recurring/schedules/{id}", s.api(s.patchSchedule)},
		{"GET", "/customers/{id}/usage", s.api(s.customerUsage)},
		{"GET", engine.AuthPath + "{secret}", http.HandlerFunc(s.authPage)},
		{"POST", engine.AuthPath + "{secret}", http.HandlerFunc(s.startAuth)},
		{"POST", engine.AuthPath + "{secret}/simulate", http.HandlerFunc(s.simulateAuth)},
	}
}

// defaultEngine is the plan service of a server configured without one.
func defaultEngine(cfg Config, pay *payments.Service) *engine.Service {
	var db *bun.DB
	if cfg.DB != nil {
		db = cfg.DB.Bun
	}
	return engine.New(engine.Config{DB: db, Payments: pay, Logger: cfg.Logger})
}

// settled is the payment service's SettledFunc of a server that builds its
// own payment service: the server's engine.
func (s *Server) settled(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
	return s.engine.Settled(ctx, tx, pr, tok, now)
}

// settledBatch is its SettledBatchFunc.
func (s *Server) settledBatch(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
	return s.engine.SettledBatch(ctx, tx, prs, now)
}

// requestBase is the scheme and host r came to, for links back to the
// engine when PUBLIC_BASE_URL is not set.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) createPlan(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodePlan(r.body)
	if err != nil {
		return 0, nil, err
	}
	plan, err := s.engine.CreatePlan(ctx, r.db, r.business, r.now, p, s.engine.BaseURL(requestBase(r.Request)))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, plan, nil
}

func (s *Server) getPlan(ctx context.Context, r *request) (int, any, error) {
	plan, err := s.engine.GetPlan(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, plan, nil
}

// listPlans answers GET /recurring/plans, with ?customer_id= or without.
func (s *Server) listPlans(ctx context.Context, r *request) (int, any, error) {
	q := r.URL.Query()
	page, err := pageFrom(q)
	if err != nil {
		return 0, nil, err
	}
	list, more, err := s.engine.ListPlans(ctx, r.db, r.business.ID, engine.PlanFilter{CustomerID: q.Get("customer_id"), Page: page})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) patchPlan(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodePlanPatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	plan, err := s.engine.PatchPlan(ctx, r.db, r.business, r.now, r.PathValue("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, plan, nil
}

func (s *Server) deactivatePlan(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	plan, err := s.engine.DeactivatePlan(ctx, r.db, r.business, r.now, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, plan, nil
}

func (s *Server) getSchedule(ctx context.Context, r *request) (int, any, error) {
	sc, err := s.engine.GetSchedule(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sc, nil
}

func (s *Server) patchSchedule(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodeSchedulePatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	sc, err := s.engine.PatchSchedule(ctx, r.db, r.business, r.now, r.PathValue("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sc, nil
}

func (s *Server) listCycles(ctx context.Context, r *request) (int, any, error) {
	page, err := pageFrom(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, more, err := s.engine.ListCycles(ctx, r.db, r.business.ID, r.PathValue("plan_id"), page)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) getCycle(ctx context.Context, r *request) (int, any, error) {
	c, err := s.engine.GetCycle(ctx, r.db, r.business.ID, r.PathValue("plan_id"), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) patchCycle(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodeCyclePatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	c, err := s.engine.PatchCycle(ctx, r.db, r.business, r.now, r.PathValue("plan_id"), r.PathValue("id"), r.keyID, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) cancelCycle(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	c, err := s.engine.CancelCycle(ctx, r.db, r.business, r.now, r.PathValue("plan_id"), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) customerUsage(ctx context.Context, r *request) (int, any, error) {
	u, err := s.engine.Usage(ctx, r.db, r.business.ID, r.PathValue("id"), r.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, u, nil
}
