package api

import (
	"context"
	"net/http"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// defaultWebhooks is the webhook service of a server configured without
// one: no private addresses for sandbox businesses, the system resolver.
func defaultWebhooks(cfg Config) *webhooks.Service {
	var db *bun.DB
	if cfg.DB != nil {
		db = cfg.DB.Bun
	}
	return webhooks.New(webhooks.Config{DB: db, Clock: cfg.Clock, Logger: cfg.Logger})
}

// outboundRoutes are the endpoints of webhooks, events and notifications.
func (s *Server) outboundRoutes() []route {
	return []route{
		{"POST", "/webhook_endpoints", s.api(s.createWebhookEndpoint)},
		{"GET", "/webhook_endpoints", s.api(s.listWebhookEndpoints)},
		{"GET", "/webhook_endpoints/{id}", s.api(s.getWebhookEndpoint)},
		{"PATCH", "/webhook_endpoints/{id}", s.api(s.patchWebhookEndpoint)},
		{"DELETE", "/webhook_endpoints/{id}", s.api(s.deleteWebhookEndpoint)},
		{"GET", "/webhook_settings", s.api(s.getWebhookSettings)},
		{"POST", "/webhook_settings/rotate_callback_token", s.api(s.rotateCallbackToken)},
		{"GET", "/events", s.api(s.listEvents)},
		{"GET", "/events/{id}", s.api(s.getEvent)},
		{"GET", "/events/{id}/deliveries", s.api(s.listDeliveries)},
		{"POST", "/events/{id}/redeliver", s.api(s.redeliverEvent)},
		{"GET", "/notifications", s.api(s.listNotifications)},
	}
}

func (s *Server) createWebhookEndpoint(ctx context.Context, r *request) (int, any, error) {
	p, err := webhooks.DecodeCreate(r.body)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.webhooks.CreateEndpoint(ctx, r.db, r.business, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e, nil
}

func (s *Server) listWebhookEndpoints(ctx context.Context, r *request) (int, any, error) {
	page, err := pageFrom(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, more, err := webhooks.ListEndpoints(ctx, r.db, r.business.ID, page)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) getWebhookEndpoint(ctx context.Context, r *request) (int, any, error) {
	e, err := webhooks.GetEndpoint(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e, nil
}

func (s *Server) patchWebhookEndpoint(ctx context.Context, r *request) (int, any, error) {
	p, err := webhooks.DecodePatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.webhooks.UpdateEndpoint(ctx, r.db, r.business, r.PathValue("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e, nil
}

func (s *Server) deleteWebhookEndpoint(ctx context.Context, r *request) (int, any, error) {
	d, err := webhooks.DeleteEndpoint(ctx, r.db, r.business.ID, r.PathValue("id"), r.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

func (s *Server) getWebhookSettings(ctx context.Context, r *request) (int, any, error) {
	st, err := webhooks.GetSettings(ctx, r.db, r.business.ID, r.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

func (s *Server) rotateCallbackToken(ctx context.Context, r *request) (int, any, error) {
	if err := decodeEmpty(r.body); err != nil {
		return 0, nil, err
	}
	st, err := webhooks.RotateCallbackToken(ctx, r.db, r.business.ID, r.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

// decodeEmpty accepts no body or an empty JSON object.
func decodeEmpty(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	var none struct{}
	return billing.DecodeJSON(body, &none, true)
}

func (s *Server) listEvents(ctx context.Context, r *request) (int, any, error) {
	q := r.URL.Query()
	page, err := pageFrom(q)
	if err != nil {
		return 0, nil, err
	}
	list, more, err := webhooks.ListEvents(ctx, r.db, r.business.ID, webhooks.EventFilter{Type: q.Get("type"), Page: page})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) getEvent(ctx context.Context, r *request) (int, any, error) {
	e, err := webhooks.GetEvent(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, webhooks.EventView{Event: e}, nil
}

func (s *Server) listDeliveries(ctx context.Context, r *request) (int, any, error) {
	page, err := pageFrom(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, more, err := webhooks.ListDeliveries(ctx, r.db, r.business.ID, r.PathValue("id"), page)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

// redeliverEvent answers POST /events/{id}/redeliver with the deliveries
// that will send the event again; the workers are woken when the request
// commits.
func (s *Server) redeliverEvent(ctx context.Context, r *request) (int, any, error) {
	p, err := webhooks.DecodeRedeliver(r.body)
	if err != nil {
		return 0, nil, err
	}
	list, err := webhooks.Redeliver(ctx, r.db, r.business.ID, r.PathValue("id"), r.now, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, false), nil
}

func (s *Server) listNotifications(ctx context.Context, r *request) (int, any, error) {
	q := r.URL.Query()
	page, err := pageFrom(q)
	if err != nil {
		return 0, nil, err
	}
	f := notify.Filter{CustomerID: q.Get("customer_id"), CycleID: q.Get("cycle_id"), Status: q.Get("status"), Page: page}
	list, more, err := notify.List(ctx, r.db, r.business.ID, f)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}
