package api

import (
	"context"
	"net/http"

	"github.com/tagihan/billing/internal/customers"
)

func (s *Server) createCustomer(ctx context.Context, r *request) (int, any, error) {
	p, err := customers.DecodeCreate(r.body)
	if err != nil {
		return 0, nil, err
	}
	c, err := customers.Create(ctx, r.db, r.business.ID, r.now, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) getCustomer(ctx context.Context, r *request) (int, any, error) {
	c, err := customers.Get(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

// listCustomers answers GET /customers, with ?reference_id= (Xendit's
// lookup by reference) or without (every customer, newest first).
func (s *Server) listCustomers(ctx context.Context, r *request) (int, any, error) {
	q := r.URL.Query()
	page, err := pageFrom(q)
	if err != nil {
		return 0, nil, err
	}
	list, more, err := customers.List(ctx, r.db, r.business.ID, customers.Filter{ReferenceID: q.Get("reference_id"), Page: page})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) patchCustomer(ctx context.Context, r *request) (int, any, error) {
	p, err := customers.DecodePatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	c, err := customers.Update(ctx, r.db, r.business.ID, r.PathValue("id"), r.now, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}
