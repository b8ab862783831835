package api

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/payments"
)

// The AUTH page of a plan (actions[].url of a REQUIRES_ACTION plan) is
// where the plan's customer saves a payment method, so that the plan can
// activate. It needs no API key: the unguessable secret in its path is
// the customer's authority, and is also what keeps its forms safe from
// cross-site requests (a forged form would need the secret). The page
// starts a Pay and Save of amount 0 with the business's provider, on the
// channel the customer picks; for the sandbox provider it offers
// "complete" and "fail" buttons, for a real provider it sends the customer
// to the provider's page. When the Pay and Save succeeds, the plan
// activates (engine.Service.Settled).

// maxFormBytes bounds an AUTH page's form body.
const maxFormBytes = 4 << 10

// authView is what the page template renders.
type authView struct {
	*engine.AuthState
	Customer string
	Amount   string
	Every    string
	Status   string // ACTIVE, INACTIVE, WAITING (for the customer), PROCESSING, CHOOSE
	Failure  string
	Action   string // the provider's page, for a real provider
	Error    string
	Path     string // the page's path, which its forms post to
}

var authTemplate = template.Must(template.New("auth").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{{if eq .Status "PROCESSING"}}<meta http-equiv="refresh" content="3">{{end}}
<title>Save a payment method – {{.Business.Name}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
.box{border:1px solid #ccc;border-radius:.5rem;padding:1rem;margin:1rem 0}.err{color:#a00}button,select{font-size:1rem;padding:.4rem .8rem}
.sandbox{background:#fff8e1}</style></head>
<body><main>
<h1>{{.Business.Name}}</h1>
<div class="box"><p>Plan <strong>{{.Plan.ReferenceID}}</strong> for {{.Customer}}</p>
<p>{{.Amount}} every {{.Every}}, plus what you use.</p></div>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{if eq .Status "ACTIVE"}}<p>Your payment method is saved for this plan. There is nothing more to do.</p>
{{if .Plan.SuccessReturnURL}}<p><a href="{{.Plan.SuccessReturnURL}}">Return to {{.Business.Name}}</a></p>{{end}}
{{else if eq .Status "INACTIVE"}}<p>This plan is no longer active. Nothing can be saved for it.</p>
{{else if eq .Status "PROCESSING"}}<p>Saving your payment method… This page refreshes by itself.</p>
{{else if eq .Status "WAITING"}}
{{if .Simulated}}<div class="box sandbox"><p>Sandbox: play the customer at the payment provider ({{.Linking.ChannelCode}}). Nothing is charged.</p>
<form method="post" action="{{.Path}}/simulate"><input type="hidden" name="outcome" value="complete"><button>Complete</button></form>
<form method="post" action="{{.Path}}/simulate"><input type="hidden" name="outcome" value="fail"><button>Fail</button></form></div>
{{else}}<p><a href="{{.Action}}">Continue to the payment provider ({{.Linking.ChannelCode}})</a></p>{{end}}
{{else}}
{{if .Failure}}<p class="err">Your payment method could not be saved ({{.Failure}}). Please try again.</p>{{end}}
<form method="post" action="{{.Path}}"><p>By saving a payment method you allow {{.Business.Name}} to charge it for this plan; nothing is charged now.</p>
<label>Payment method <select name="channel_code">{{range .Channels}}<option>{{.}}</option>{{end}}</select></label>
<button>Save</button></form>
{{end}}
</main></body></html>
`))

// writePage renders the AUTH page of st with status code, or a plain page
// for an error.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, code int, st *engine.AuthState, pageErr string) {
	path := engine.AuthPath + r.PathValue("secret")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	var buf bytes.Buffer
	if st == nil {
		buf.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Save a payment method</title></head><body><p>`)
		template.HTMLEscape(&buf, []byte(pageErr))
		buf.WriteString("</p></body></html>\n")
	} else if err := authTemplate.Execute(&buf, authViewOf(st, path, pageErr)); err != nil {
		s.log.Error("render the AUTH page", "request_id", infoFrom(r.Context()).id, "error", err.Error())
		code, buf = http.StatusInternalServerError, *bytes.NewBufferString("<!doctype html><p>An internal error occurred.</p>\n")
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func authViewOf(st *engine.AuthState, path, pageErr string) authView {
	v := authView{AuthState: st, Error: pageErr, Customer: st.Customer.ReferenceID, Path: path}
	if d := st.Customer.IndividualDetail; d != nil && d.GivenNames != nil {
		v.Customer = strings.TrimSpace(*d.GivenNames + " " + deref(d.Surname))
	} else if d := st.Customer.BusinessDetail; d != nil && d.BusinessName != nil {
		v.Customer = *d.BusinessName
	}
	v.Amount = billing.Money{Amount: st.Plan.Amount, Currency: st.Plan.Currency}.String()
	sc := st.Plan.Schedule()
	v.Every = strings.ToLower(string(sc.Interval))
	if sc.IntervalCount > 1 {
		v.Every = strconv.Itoa(sc.IntervalCount) + " " + v.Every + "s"
	}
	switch {
	case st.Plan.Status == engine.PlanStatusActive || st.Plan.Status == engine.PlanStatusPending:
		v.Status = "ACTIVE"
	case st.Plan.Status == engine.PlanStatusInactive:
		v.Status = "INACTIVE"
	case st.Linking == nil:
		v.Status = "CHOOSE"
	case st.Linking.Status == payments.StatusRequiresAction:
		v.Status = "WAITING"
		for _, a := range st.Linking.Actions {
			if a.Type == "REDIRECT_CUSTOMER" && v.Action == "" {
				v.Action = a.Value
			}
		}
	case st.Linking.Final() && st.Linking.Status != payments.StatusSucceeded:
		v.Status = "CHOOSE"
		v.Failure = st.Linking.Status
		if st.Linking.FailureCode != nil {
			v.Failure = *st.Linking.FailureCode
		}
	default:
		v.Status = "PROCESSING"
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pageError renders err as the page's answer: the status its code maps to
// (a server error is logged, its detail not shown).
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, st *engine.AuthState, err error) {
	code, body := s.errorResponse(r.Context(), err)
	msg := body.Message
	if code == http.StatusNotFound {
		msg = "This page does not exist. Ask for a new link to save your payment method."
	}
	s.writePage(w, r, code, st, msg)
}

// pageURL is the page's own address.
func (s *Server) pageURL(r *http.Request) string {
	return s.engine.BaseURL(requestBase(r)) + engine.AuthPath + r.PathValue("secret")
}

// authPage answers GET /authorize/{secret}: the page in its current state.
func (s *Server) authPage(w http.ResponseWriter, r *http.Request) {
	st, err := s.engine.AuthState(r.Context(), r.PathValue("secret"))
	if err != nil {
		s.pageError(w, r, nil, err)
		return
	}
	s.writePage(w, r, http.StatusOK, st, "")
}

// readForm parses a page's form body (at most maxFormBytes).
func readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return billing.Invalid("body", "must be a form of at most 4 KiB")
	}
	return nil
}

// startAuth answers POST /authorize/{secret} (form: channel_code): it
// starts the Pay and Save and sends the customer to the provider's page,
// or back to this page (sandbox, or nothing to start).
func (s *Server) startAuth(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r); err != nil {
		s.pageError(w, r, nil, err)
		return
	}
	secret := r.PathValue("secret")
	st, err := s.engine.StartAuth(r.Context(), secret, r.PostForm.Get("channel_code"), s.pageURL(r))
	if err != nil {
		if st, serr := s.engine.AuthState(r.Context(), secret); serr == nil {
			s.pageError(w, r, st, err)
			return
		}
		s.pageError(w, r, nil, err)
		return
	}
	to := s.pageURL(r)
	if v := authViewOf(st, "", ""); v.Status == "WAITING" && !st.Simulated && v.Action != "" {
		to = v.Action
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// simulateAuth answers POST /authorize/{secret}/simulate (form: outcome
// complete or fail), the sandbox provider's buttons.
func (s *Server) simulateAuth(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r); err != nil {
		s.pageError(w, r, nil, err)
		return
	}
	secret := r.PathValue("secret")
	outcome := r.PostForm.Get("outcome")
	var err error
	if outcome != "complete" && outcome != "fail" {
		err = billing.Invalid("outcome", "must be complete or fail")
	} else {
		err = s.engine.SimulateAuth(r.Context(), secret, outcome == "complete")
	}
	if err != nil {
		st, serr := s.engine.AuthState(r.Context(), secret)
		if serr != nil {
			st = nil
		}
		s.pageError(w, r, st, err)
		return
	}
	http.Redirect(w, r, s.pageURL(r), http.StatusSeeOther)
}
