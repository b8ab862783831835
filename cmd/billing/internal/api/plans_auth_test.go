package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/jobs"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/tagihan/billing/providers/xendit"
	"github.com/tagihan/billing/providers/xendit/xenditfake"
	"github.com/uptrace/bun"
)

// withEngine wires the server's payment service and engine as billing
// serve does: settled payment requests reach the engine in their
// transaction, and the sandbox's due callbacks go to due (nil: the test
// delivers them). extra are more provider adapters.
func withEngine(extra []providers.Provider, due func(context.Context, string), svc **payments.Service) func(*options) {
	return func(o *options) {
		o.configure = func(cfg *api.Config) {
			var eng *engine.Service
			*svc = payments.New(payments.Config{DB: cfg.DB.Bun, Clock: cfg.Clock,
				Providers: append([]providers.Provider{sandbox.New(sandbox.Config{DB: cfg.DB.Bun, DueFunc: due})}, extra...),
				SettledFunc: func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
					return eng.Settled(ctx, tx, pr, tok, now)
				}})
			eng = engine.New(engine.Config{DB: cfg.DB.Bun, Payments: *svc})
			cfg.Payments, cfg.Engine = *svc, eng
		}
	}
}

// page is an AUTH page as the customer's browser gets it.
type page struct {
	status int
	url    string // after redirects
	body   string
}

// browse sends a request without API key, following redirects.
func (b *bundle) browse(method, target string, form url.Values) page {
	b.t.Helper()
	var resp *http.Response
	var err error
	if method == "GET" {
		resp, err = b.client.Get(target)
	} else {
		resp, err = b.client.PostForm(target, form)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		b.t.Fatalf("%s %s: Content-Type %q", method, target, ct)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		b.t.Fatalf("%s %s: headers %v", method, target, resp.Header)
	}
	return page{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(raw)}
}

func (p page) has(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			t.Fatalf("%s: the page (%d) lacks %q:\n%s", what, p.status, s, p.body)
		}
	}
}

// linking reads the plan's latest linking payment request.
func (b *bundle) linking(planID string) *payments.PaymentRequest {
	b.t.Helper()
	pr := new(payments.PaymentRequest)
	if err := b.db.Bun.NewSelect().Model(pr).Where("id = (SELECT auth_payment_request_id FROM recurring_plans WHERE id = ?)", planID).
		Scan(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	return pr
}

// TestAuthPageSandbox: a plan without a token is REQUIRES_ACTION with an
// AUTH link; its customer opens the page in a browser, saves a payment
// method with the sandbox (a failed attempt first, then a successful one),
// and the plan activates in the transaction that saves the token, with
// the engine's River workers delivering the sandbox's callbacks.
func TestAuthPageSandbox(t *testing.T) {
	var svc *payments.Service
	var client atomic.Pointer[river.Client[pgx.Tx]]
	due := func(ctx context.Context, businessID string) {
		if c := client.Load(); c != nil {
			if _, err := c.Insert(ctx, jobs.SandboxCallbacksArgs{BusinessID: businessID}, nil); err != nil {
				t.Error(err)
			}
		}
	}
	b := setup(t, withEngine(nil, due, &svc))
	client.Store(setupWorkers(t, b, svc))
	custID := b.utilitySetup()

	r := b.call("POST", "/recurring/plans", sourcePlan(custID))
	if r.status != 200 || r.body["status"] != "REQUIRES_ACTION" {
		t.Fatalf("plan: %d %s", r.status, r.raw)
	}
	planID := r.body["id"].(string)
	actions := r.body["actions"].([]any)
	action := actions[0].(map[string]any)
	authURL, _ := action["url"].(string)
	if len(actions) != 1 || action["action"] != "AUTH" || action["url_type"] != "WEB" || action["method"] != "GET" ||
		!strings.HasPrefix(authURL, b.srv.URL+"/authorize/auth_") || len(authURL) != len(b.srv.URL+"/authorize/auth_")+64 {
		t.Fatalf("actions: %v", actions)
	}
	if n := b.count("recurring_cycles"); n != 0 {
		t.Fatalf("%d cycles before activation", n)
	}
	// The secret is kept only as its hash: reads show the action without it.
	got := b.call("GET", "/recurring/plans/"+planID, nil)
	want(t, "plan read back", got.body, "status", "REQUIRES_ACTION", "actions", []any{map[string]any{"action": "AUTH", "url_type": "WEB", "method": "GET", "url": nil}})
	if n := b.countWhere("recurring_plans", "auth_secret_hash = sha256(convert_to('"+strings.TrimPrefix(authURL, b.srv.URL+"/authorize/")+"', 'UTF8'))"); n != 1 {
		t.Fatalf("the secret's hash is not stored (%d)", n)
	}

	p := b.browse("GET", authURL, nil)
	if p.status != 200 {
		t.Fatalf("page: %d", p.status)
	}
	p.has(t, "first visit", "test_reference_id", "Honey Badgey", "IDR 100000 every month", `name="channel_code"`, "<option>DANA</option>", "nothing is charged now")

	// First attempt: the customer fails at the provider.
	p = b.browse("POST", authURL, url.Values{"channel_code": {"DANA"}})
	if p.status != 200 || p.url != authURL {
		t.Fatalf("start: %d at %s", p.status, p.url)
	}
	p.has(t, "sandbox buttons", "Sandbox", `value="complete"`, `value="fail"`, "DANA")
	first := b.linking(planID)
	if first.Type != "PAY_AND_SAVE" || !first.RequestAmount.IsZero() || first.Currency != "IDR" || first.ChannelCode != "DANA" ||
		first.Status != "REQUIRES_ACTION" || first.ProviderKey != planID+"/auth/1" || first.CustomerID != custID {
		t.Fatalf("linking: %+v", first)
	}
	// Loading the page again, or posting the form again, starts nothing new.
	b.browse("POST", authURL, url.Values{"channel_code": {"OVO"}}).has(t, "again", `value="complete"`)
	if n := b.countWhere("payment_requests", "type = 'PAY_AND_SAVE' AND customer_id = '"+custID+"'"); n != 1 {
		t.Fatalf("%d linkings", n)
	}
	b.browse("POST", authURL+"/simulate", url.Values{"outcome": {"fail"}})
	eventually(t, "the failed linking on the page", func() bool {
		return strings.Contains(b.browse("GET", authURL, nil).body, "could not be saved (INSUFFICIENT_BALANCE)")
	})
	b.browse("GET", authURL, nil).has(t, "after the failure", `name="channel_code"`)
	if r := b.call("GET", "/recurring/plans/"+planID, nil); r.body["status"] != "REQUIRES_ACTION" {
		t.Fatalf("after a failed linking: %s", r.raw)
	}

	// Second attempt: the page can be used again, and this one succeeds.
	b.browse("POST", authURL, url.Values{"channel_code": {"OVO"}}).has(t, "second attempt", `value="complete"`, "OVO")
	second := b.linking(planID)
	if second.ID == first.ID || second.ProviderKey != planID+"/auth/2" {
		t.Fatalf("second linking: %+v", second)
	}
	b.browse("POST", authURL+"/simulate", url.Values{"outcome": {"complete"}})
	var plan response
	eventually(t, "the plan's activation", func() bool {
		plan = b.call("GET", "/recurring/plans/"+planID, nil)
		return plan.body["status"] == "ACTIVE"
	})
	tokenID, _ := b.call("GET", "/payment_requests/"+second.ID, nil).body["payment_token_id"].(string)
	want(t, "active plan", plan.body, "payment_methods", []any{map[string]any{"payment_token_id": tokenID, "rank": 1}},
		"activated_at", "2026-01-31T23:59:59.000Z", "recurring_cycle_count", 1, "actions", []any{})
	tok := b.call("GET", "/payment_tokens/"+tokenID, nil)
	want(t, "token", tok.body, "status", "ACTIVE", "customer_id", custID, "channel_code", "OVO", "metadata", map[string]any{"recurring_plan_id": planID})
	want(t, "cycle 1", b.only(planID), "cycle_number", 1, "status", "SCHEDULED", "scheduled_timestamp", "2026-02-15T16:23:52.000Z")
	eventually(t, "every sandbox callback delivered", func() bool {
		return b.count("sandbox_callbacks") == b.countWhere("sandbox_callbacks", "delivered_at IS NOT NULL")
	})
	wantEvents := []string{"payment.capture", "payment.failure", "payment_token.activation", "recurring.cycle.created", "recurring.plan.activated"}
	if got := b.eventTypes(); !slices.Equal(got, wantEvents) {
		t.Fatalf("events %v, want %v", got, wantEvents)
	}
	capture := b.eventData("payment.capture")[0]
	if capture["payment_token_id"] != tokenID || capture["request_amount"] != float64(0) {
		t.Fatalf("payment.capture: %v", capture)
	}

	// Done: the page says so, and starts or simulates nothing more.
	b.browse("GET", authURL, nil).has(t, "done", "Your payment method is saved", "https://www.xendit.co/successisthesumoffailures")
	b.browse("POST", authURL, url.Values{"channel_code": {"DANA"}}).has(t, "start after done", "Your payment method is saved")
	if p := b.browse("POST", authURL+"/simulate", url.Values{"outcome": {"complete"}}); p.status != 403 {
		t.Fatalf("simulate after done: %d", p.status)
	}
	if n := b.countWhere("payment_requests", "type = 'PAY_AND_SAVE' AND customer_id = '"+custID+"'"); n != 2 {
		t.Fatalf("%d linkings", n)
	}
	b.call("POST", "/recurring/plans/"+planID+"/deactivate", nil)
	b.browse("GET", authURL, nil).has(t, "inactive", "no longer active")

	// Bad requests: an unknown secret, a bad outcome, an unknown channel.
	if p := b.browse("GET", b.srv.URL+"/authorize/auth_0000", nil); p.status != 404 {
		t.Fatalf("unknown page: %d", p.status)
	}
	other := b.call("POST", "/recurring/plans", withField(sourcePlan(custID), "reference_id", "second")).body["actions"].([]any)[0].(map[string]any)["url"].(string)
	if p := b.browse("POST", other+"/simulate", url.Values{"outcome": {"maybe"}}); p.status != 400 {
		t.Fatalf("bad outcome: %d", p.status)
	}
	if p := b.browse("POST", other+"/simulate", url.Values{"outcome": {"complete"}}); p.status != 403 {
		t.Fatalf("simulate before starting: %d", p.status)
	}
	p = b.browse("POST", other, url.Values{"channel_code": {"GCASH"}})
	if p.status != 400 {
		t.Fatalf("unknown channel: %d", p.status)
	}
	p.has(t, "unknown channel", "GCASH is not offered in ID", `name="channel_code"`)
}

// TestAuthPageXendit: with Xendit as the business's provider, the page
// sends the customer to Xendit's page, and Xendit's webhook activates the
// plan.
func TestAuthPageXendit(t *testing.T) {
	fake := xenditfake.New("xnd_development_auth", "auth-callback-token")
	defer fake.Close()
	var svc *payments.Service
	b := setup(t, withEngine([]providers.Provider{xendit.New(xendit.Config{BaseURL: fake.URL})}, nil, &svc))
	fake.SetCallbackURL(b.srv.URL + "/callbacks/xendit")
	if r := b.call("POST", "/provider_settings", map[string]any{"provider": "xendit",
		"xendit": map[string]any{"secret_key": "xnd_development_auth", "callback_token": "auth-callback-token"}}); r.status != 200 {
		t.Fatalf("settings: %d %s", r.status, r.raw)
	}
	custID := b.utilitySetup()
	r := b.call("POST", "/recurring/plans", withField(sourcePlan(custID), "immediate_action_type", "FULL_AMOUNT"))
	planID := r.body["id"].(string)
	authURL := r.body["actions"].([]any)[0].(map[string]any)["url"].(string)

	// Posting the form redirects the browser to Xendit's page.
	noFollow := *b.client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(authURL, url.Values{"channel_code": {"OVO"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pr := b.linking(planID)
	if resp.StatusCode != http.StatusSeeOther || pr.ProviderRef == nil || len(pr.Actions) != 1 || resp.Header.Get("Location") != pr.Actions[0].Value {
		t.Fatalf("start: %d to %q; linking %+v", resp.StatusCode, resp.Header.Get("Location"), pr)
	}
	sent, _ := fake.Request(*pr.ProviderRef)
	if string(sent.RequestAmount) != "0" || sent.Type != "PAY_AND_SAVE" || sent.ChannelProperties["success_return_url"] == nil {
		t.Fatalf("sent to Xendit: %+v", sent)
	}
	if err := fake.Complete(*pr.ProviderRef); err != nil {
		t.Fatal(err)
	}
	if statuses, err := fake.Deliver(); err != nil || !slices.Equal(statuses, []int{200, 200}) {
		t.Fatalf("webhooks: %v %v", statuses, err)
	}
	// FULL_AMOUNT: the plan has its token and waits for the engine's
	// immediate charge of its cycle 0, created and due at once.
	plan := b.call("GET", "/recurring/plans/"+planID, nil)
	want(t, "plan", plan.body, "status", "PENDING", "activated_at", nil, "recurring_cycle_count", 0, "actions", []any{})
	if len(plan.body["payment_methods"].([]any)) != 1 || b.countWhere("recurring_cycles", "type = 'IMMEDIATE' AND cycle_number = 0") != 1 ||
		b.count("recurring_cycles") != 1 || b.countWhere("events", "type LIKE 'recurring.%'") != 1 {
		t.Fatalf("pending plan: %s", plan.raw)
	}
}
