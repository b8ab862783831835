package api

import (
	"bytes"
	"context"
	"html/template"
	"net/http"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
)

// chargingRoutes are the endpoints of charging: force_attempt, paying an
// invoice (with a saved token, or on a payment link), a customer's service
// status, and the pay pages linked from notifications.
func (s *Server) chargingRoutes() []route {
	return []route{
		{"POST", "/recurring/plans/{plan_id}/cycles/{id}/force_attempt", s.apiOwnTx(s.forceAttempt)},
		{"POST", "/invoices/{id}/pay", s.apiOwnTx(s.payInvoice)},
		{"POST", "/invoices/{id}/payment_link", s.apiOwnTx(s.invoicePaymentLink)},
		{"GET", "/customers/{id}/service", s.api(s.customerService)},
		{"GET", engine.PayPath + "{secret}", http.HandlerFunc(s.payPage)},
	}
}

// forceAttempt answers POST …/cycles/{id}/force_attempt: the cycle after
// its forced attempt was sent (docs/engine.md). It calls the provider, so
// it commits in steps (apiOwnTx); the attempt keeps the request's
// Idempotency-Key, so that a run taking over from one cut short carries on
// from the attempt that run opened.
func (s *Server) forceAttempt(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	c, err := s.engine.ForceAttempt(ctx, r.business, r.now, r.PathValue("plan_id"), r.PathValue("id"), r.idempotencyKey)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

// payInvoice answers POST /invoices/{id}/pay {payment_token_id}: the
// payment request that charged what the invoice owed.
func (s *Server) payInvoice(ctx context.Context, r *request) (int, any, error) {
	p, err := engine.DecodePayInvoice(r.body)
	if err != nil {
		return 0, nil, err
	}
	pr, err := s.engine.PayInvoice(ctx, r.business, r.now, r.PathValue("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pr, nil
}

// invoicePaymentLink answers POST /invoices/{id}/payment_link: a hosted
// page of the business's provider to pay what the invoice owes.
func (s *Server) invoicePaymentLink(ctx context.Context, r *request) (int, any, error) {
	if err := noParameters(r.body); err != nil {
		return 0, nil, err
	}
	link, err := s.engine.InvoicePaymentLink(ctx, r.business, r.now, r.PathValue("id"), "", s.engine.BaseURL(requestBase(r.Request)))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, link, nil
}

// customerService answers GET /customers/{id}/service (SPEC §4.8).
func (s *Server) customerService(ctx context.Context, r *request) (int, any, error) {
	st, err := s.engine.GetServiceStatus(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

// payTemplate is the pay page when it does not send the customer on.
var payTemplate = template.Must(template.New("pay").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{{if eq .Outcome "PROCESSING"}}<meta http-equiv="refresh" content="5">{{end}}
<title>Pay your bill – {{.Business}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}</style></head>
<body><main><h1>{{.Business}}</h1>
{{if .Number}}<p>Bill {{.Number}}: {{.Amount}}</p>{{end}}
{{if eq .Outcome "PAID"}}<p>This bill is paid. Thank you.</p>
{{else if eq .Outcome "PROCESSING"}}<p>A payment of this bill is being processed. This page refreshes by itself.</p>
{{else if eq .Outcome "NOTHING_TO_PAY"}}<p>There is nothing to pay on this bill now.</p>
{{else}}<p>{{.Message}}</p>{{end}}
</main></body></html>
`))

type payView struct {
	Business, Number, Amount, Outcome, Message string
}

// payPage answers GET /pay/{secret}: it sends the customer to the
// provider's payment link for what the bill owes (303), or says why there
// is nothing to pay. Like the AUTH page it needs no API key: the secret in
// its path is the customer's authority.
func (s *Server) payPage(w http.ResponseWriter, r *http.Request) {
	self := s.engine.BaseURL(requestBase(r)) + engine.PayPath + r.PathValue("secret")
	st, err := s.engine.OpenPayPage(r.Context(), r.PathValue("secret"), self)
	if err != nil {
		code, body := s.errorResponse(r.Context(), err)
		msg := body.Message
		if code == http.StatusNotFound {
			msg = "This page does not exist. Ask for a new link to pay your bill."
		}
		s.writePayPage(w, r, code, payView{Outcome: "ERROR", Message: msg})
		return
	}
	if st.Outcome == engine.PayRedirect {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.Redirect(w, r, st.URL, http.StatusSeeOther)
		return
	}
	v := payView{Business: st.Business.Name, Outcome: st.Outcome,
		Amount: billing.Money{Amount: st.Invoice.Total, Currency: st.Invoice.Currency}.String()}
	if st.Invoice.Number != nil {
		v.Number = *st.Invoice.Number
	}
	s.writePayPage(w, r, http.StatusOK, v)
}

func (s *Server) writePayPage(w http.ResponseWriter, r *http.Request, code int, v payView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	var buf bytes.Buffer
	if err := payTemplate.Execute(&buf, v); err != nil {
		s.log.Error("render the pay page", "request_id", infoFrom(r.Context()).id, "error", err.Error())
		code, buf = http.StatusInternalServerError, *bytes.NewBufferString("<!doctype html><p>An internal error occurred.</p>\n")
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
