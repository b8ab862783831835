package api

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// invoiceRoutes are the endpoints of invoices, their review and their
// credit notes (SPEC §4.7). Paying an invoice (/pay, /payment_link) is
// charging's.
func (s *Server) invoiceRoutes() []route {
	return []route{
		{"GET", "/invoices", s.api(s.listInvoices)},
		{"GET", "/invoices/export.csv", s.authenticated(s.exportInvoices)},
		{"GET", "/invoices/{id}", s.api(s.getInvoice)},
		{"POST", "/invoices/{id}/approve", s.api(s.reviewAction(s.engine.ApproveInvoice))},
		{"POST", "/invoices/{id}/hold", s.api(s.reviewAction(s.engine.HoldInvoice))},
		{"POST", "/invoices/{id}/release", s.api(s.reviewAction(s.engine.ReleaseInvoice))},
		{"POST", "/invoices/{id}/void", s.api(s.reviewAction(s.engine.VoidInvoice))},
		{"POST", "/invoices/{id}/adjustments", s.api(s.adjustInvoice)},
		{"POST", "/invoices/{id}/credit_notes", s.api(s.createCreditNote)},
	}
}

// invoiceFilter reads the query of GET /invoices and its export: status,
// review_status, customer_id, plan_id, period_from, period_to (RFC 3339),
// needs_review (true or false), and the page.
func invoiceFilter(q url.Values) (engine.InvoiceFilter, error) {
	var v billing.Validation
	page, err := pageFrom(q)
	v.Merge("limit", err)
	f := engine.InvoiceFilter{Status: q.Get("status"), ReviewStatus: q.Get("review_status"), CustomerID: q.Get("customer_id"),
		PlanID: q.Get("plan_id"), Page: page}
	v.Check(f.Status == "" || slices.Contains(engine.InvoiceStatuses, f.Status), "status", "must be DRAFT, OPEN, PAID, UNCOLLECTIBLE or VOID")
	v.Check(f.ReviewStatus == "" || slices.Contains(engine.ReviewStatuses, f.ReviewStatus), "review_status",
		"must be NOT_REQUIRED, NEEDS_REVIEW, APPROVED or ON_HOLD")
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"period_from", &f.PeriodFrom}, {"period_to", &f.PeriodTo}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if v.Check(err == nil, p.name, "must be an RFC 3339 time such as 2026-03-01T00:00:00Z") {
				*p.dst = &t
			}
		}
	}
	if s := q.Get("needs_review"); s != "" {
		b, err := strconv.ParseBool(s)
		if v.Check(err == nil && (s == "true" || s == "false"), "needs_review", "must be true or false") {
			f.NeedsReview = &b
		}
	}
	return f, v.Err()
}

func (s *Server) listInvoices(ctx context.Context, r *request) (int, any, error) {
	f, err := invoiceFilter(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, more, err := s.engine.ListInvoices(ctx, r.db, r.business.ID, f)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(list, more), nil
}

func (s *Server) getInvoice(ctx context.Context, r *request) (int, any, error) {
	inv, err := s.engine.GetInvoice(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inv, nil
}

// reviewAction is the handler of approve, hold, release and void: an
// optional {"note"} and the acting API key.
func (s *Server) reviewAction(act func(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id, actor string,
	p engine.InvoiceActionParams) (*engine.Invoice, error)) handlerFunc {
	return func(ctx context.Context, r *request) (int, any, error) {
		p, err := engine.DecodeInvoiceAction(r.body)
		if err != nil {
			return 0, nil, err
		}
		inv, err := act(ctx, r.db, r.business, r.now, r.PathValue("id"), r.keyID, p)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, inv, nil
	}
}

func (s *Server) adjustInvoice(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodeAdjustment(r.body)
	if err != nil {
		return 0, nil, err
	}
	inv, err := s.engine.AdjustInvoice(ctx, r.db, r.business, r.now, r.PathValue("id"), r.keyID, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inv, nil
}

func (s *Server) createCreditNote(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodeCreditNote(r.body)
	if err != nil {
		return 0, nil, err
	}
	cn, err := s.engine.CreateCreditNote(ctx, r.db, r.business, r.now, r.PathValue("id"), r.keyID, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cn, nil
}

// exportInvoices answers GET /invoices/export.csv: the invoices the filter
// of GET /invoices selects (without paging), one row per invoice, or with
// lines=true one row per invoice line, streamed as text/csv. A bad filter
// is answered in the API's JSON error shape; an error once rows were sent
// cuts the response short (it is logged).
func (s *Server) exportInvoices(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	f, err := invoiceFilter(q)
	lines := q.Get("lines") == "true"
	if v := q.Get("lines"); v != "" && v != "true" && v != "false" && err == nil {
		err = billing.Invalid("lines", "must be true or false")
	}
	if err != nil {
		s.writeError(w, r.Request, err, 0)
		return
	}
	name := "invoices.csv"
	if lines {
		name = "invoice-lines.csv"
	}
	var out *csv.Writer
	err = s.engine.ExportInvoices(r.Context(), r.db, r.business.ID, f, lines, func(rec []string) error {
		if out == nil {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			out = csv.NewWriter(w)
		}
		return out.Write(rec)
	})
	if out == nil {
		s.writeError(w, r.Request, err, 0)
		return
	}
	out.Flush()
	if err == nil {
		err = out.Error()
	}
	if err != nil {
		s.log.Error("invoice export cut short", "request_id", infoFrom(r.Context()).id, "business_id", r.business.ID, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
}
