package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/jobs"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/tagihan/billing/providers/wooshpay"
	"github.com/tagihan/billing/providers/wooshpay/wooshpayfake"
	"github.com/tagihan/billing/providers/xendit"
	"github.com/tagihan/billing/providers/xendit/xenditfake"
)

// payBundle is a test's API server wired as billing serve wires it: a
// payment service whose sandbox triggers River jobs, and a River client
// working them.
type payBundle struct {
	*bundle
	river *river.Client[pgx.Tx]
}

// withPayments builds the server's payment service with the sandbox and
// the given adapters; seam, when set, is the service's test seam.
func withPayments(extra []providers.Provider, publicURL *string, seam func(context.Context, string) error, svc **payments.Service, due func(context.Context, string)) func(*options) {
	return func(o *options) {
		o.payments = func(db *postgres.DB, clock billing.Clock) *payments.Service {
			cfg := payments.Config{DB: db.Bun, Clock: clock, AfterProviderCallFunc: seam,
				Providers: append([]providers.Provider{sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: due})}, extra...)}
			if publicURL != nil {
				cfg.PublicBaseURL = *publicURL
			}
			*svc = payments.New(cfg)
			return *svc
		}
	}
}

// setupWorkers starts a River client working the engine's jobs for b.
func setupWorkers(t *testing.T, b *bundle, svc *payments.Service) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := jobs.NewClient(b.db.Pool, jobs.Deps{DB: b.db.Bun, Clock: b.clock, Payments: svc}, jobs.Config{Work: true, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
	return client
}

// eventually polls f until it returns true or ten seconds pass.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPayAndSaveThroughTheAPI is the "done when", through the API
// alone, with the engine's River workers delivering the sandbox's
// callbacks: a PAY_AND_SAVE, its action followed with simulate, an ACTIVE
// token and the events in the outbox; a charge of the token; and the
// sandbox's failure amounts failing with their codes.
func TestPayAndSaveThroughTheAPI(t *testing.T) {
	var svc *payments.Service
	var client atomic.Pointer[river.Client[pgx.Tx]]
	due := func(ctx context.Context, businessID string) {
		if c := client.Load(); c != nil {
			if _, err := c.Insert(ctx, jobs.SandboxCallbacksArgs{BusinessID: businessID}, nil); err != nil {
				t.Error(err)
			}
		}
	}
	b := setup(t, withPayments(nil, nil, nil, &svc, due))
	client.Store(setupWorkers(t, b, svc))

	cust := b.call("POST", "/customers", map[string]any{"reference_id": "PDAM-0001", "individual_detail": map[string]any{"given_names": "Siti"}})
	link := b.call("POST", "/payment_requests", map[string]any{
		"reference_id": "link-PDAM-0001", "type": "PAY_AND_SAVE", "customer_id": cust.body["id"], "country": "ID", "currency": "IDR",
		"request_amount": 150000, "channel_code": "DANA", "metadata": map[string]any{"meter": "PDAM-0001"},
		"channel_properties": map[string]any{"success_return_url": "https://tirta.example/ok", "failure_return_url": "https://tirta.example/fail"},
	}, "idempotency-key", "link-1")
	if link.status != 201 || link.body["status"] != "REQUIRES_ACTION" {
		t.Fatalf("pay and save: %d %s", link.status, link.raw)
	}
	action := link.body["actions"].([]any)[0].(map[string]any)
	if action["type"] != "REDIRECT_CUSTOMER" || action["descriptor"] != "WEB_URL" || !strings.HasPrefix(action["value"].(string), "https://") {
		t.Fatalf("action %v", action)
	}
	id := link.body["payment_request_id"].(string)
	if r := b.call("POST", "/payment_requests/"+id+"/simulate", nil); r.status != 200 {
		t.Fatalf("simulate: %d %s", r.status, r.raw)
	}
	var done response
	eventually(t, "the linking's callback", func() bool {
		done = b.call("GET", "/payment_requests/"+id, nil)
		return done.body["status"] == "SUCCEEDED"
	})
	tokenID := done.body["payment_token_id"].(string)
	tok := b.call("GET", "/payment_tokens/"+tokenID, nil)
	consent := tok.body["consent"].(map[string]any)
	if tok.body["status"] != "ACTIVE" || tok.body["customer_id"] != cust.body["id"] || consent["payment_request_id"] != id ||
		consent["channel_code"] != "DANA" || consent["consented_at"] != "2026-01-31T23:59:59.000Z" || tok.body["metadata"].(map[string]any)["meter"] != "PDAM-0001" {
		t.Fatalf("token: %s", tok.raw)
	}
	// The events, in the outbox with the change.
	if got := b.eventTypes(); !slices.Equal(got, []string{"payment.capture", "payment_token.activation"}) {
		t.Fatalf("events after linking: %v", got)
	}

	charge := map[string]any{"reference_id": "bill-2026-02", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 175000}
	if r := b.call("POST", "/payment_requests", charge); r.status != 201 || r.body["status"] != "SUCCEEDED" || r.body["latest_payment_id"] == nil {
		t.Fatalf("charge: %d %s", r.status, r.raw)
	}
	for amount, code := range map[int]string{21110: "INSUFFICIENT_BALANCE", 21103: "ACCOUNT_ACCESS_BLOCKED", 21106: "INVALID_ACCOUNT_DETAILS", 21107: "MAXIMUM_LIMIT_REACHED"} {
		charge["request_amount"] = amount
		if r := b.call("POST", "/v3/payment_requests", charge); r.status != 201 || r.body["status"] != "FAILED" || r.body["failure_code"] != code {
			t.Fatalf("%d: %d %s", amount, r.status, r.raw)
		}
	}
	// Every callback the sandbox sent (for the linking and each charge) is
	// processed, and none changed anything more.
	eventually(t, "every sandbox callback delivered", func() bool {
		return b.count("sandbox_callbacks") == b.countWhere("sandbox_callbacks", "delivered_at IS NOT NULL")
	})
	want := []string{"payment.capture", "payment.capture", "payment.failure", "payment.failure", "payment.failure", "payment.failure", "payment_token.activation"}
	if got := b.eventTypes(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	capture := b.eventData("payment.capture")
	if capture[0]["payment_token_id"] != tokenID {
		t.Fatalf("payment.capture does not carry the token: %v", capture[0])
	}
}

// TestExactlyOnceThroughTheAPI: the process "dies" after the sandbox took
// the money and before the engine recorded it; the client's retry with the
// same idempotency-key resumes the request: one payment, one capture.
func TestExactlyOnceThroughTheAPI(t *testing.T) {
	var svc *payments.Service
	var armed, died atomic.Bool
	seam := func(ctx context.Context, id string) error {
		if armed.Load() && died.CompareAndSwap(false, true) {
			return errors.New("killed after the provider answered")
		}
		return nil
	}
	b := setup(t, withPayments(nil, nil, seam, &svc, nil))
	tokenID := b.sandboxToken(svc, nil)
	armed.Store(true)
	body := map[string]any{"reference_id": "bill-2026-02", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 175000}
	b.call("POST", "/payment_requests", body, "idempotency-key", "charge-feb").wantError(t, 500, "SERVER_ERROR", "")
	if n := b.countWhere("sandbox_payments", "kind = 'CHARGE'"); n != 1 {
		t.Fatalf("the sandbox made %d charges", n)
	}
	r := b.call("POST", "/payment_requests", body, "idempotency-key", "charge-feb")
	if r.status != 201 || r.body["status"] != "SUCCEEDED" {
		t.Fatalf("retry: %d %s", r.status, r.raw)
	}
	again := b.call("POST", "/payment_requests", body, "idempotency-key", "charge-feb")
	if again.header.Get("idempotent-replayed") != "true" || string(again.raw) != string(r.raw) {
		t.Fatalf("second retry: %s", again.raw)
	}
	if _, err := svc.DeliverDueSandboxCallbacks(context.Background(), b.biz.ID); err != nil {
		t.Fatal(err)
	}
	if n := b.countWhere("sandbox_payments", "kind = 'CHARGE'"); n != 1 {
		t.Fatalf("the sandbox made %d charges, want exactly 1", n)
	}
	if n := b.countWhere("payments", "payment_request_id = '"+r.body["payment_request_id"].(string)+"'"); n != 1 {
		t.Fatalf("%d payments", n)
	}
	if n := b.countWhere("events", "type = 'payment.capture'"); n != 2 {
		t.Fatalf("%d payment.capture events, want 2 (linking and the charge)", n)
	}
}

// TestXenditThroughTheAPI: a sandbox business using Xendit's test mode
// (the fake): linking, the webhooks in, a charge, forged and unknown
// callbacks.
func TestXenditThroughTheAPI(t *testing.T) {
	fake := xenditfake.New("xnd_development_e2e", "e2e-callback-token")
	defer fake.Close()
	var svc *payments.Service
	b := setup(t, withPayments([]providers.Provider{xendit.New(xendit.Config{BaseURL: fake.URL})}, nil, nil, &svc, nil))
	fake.SetCallbackURL(b.srv.URL + "/callbacks/xendit")
	if r := b.call("POST", "/provider_settings", map[string]any{"provider": "xendit",
		"xendit": map[string]any{"secret_key": "xnd_development_e2e", "callback_token": "e2e-callback-token"}}); r.status != 200 {
		t.Fatalf("settings: %d %s", r.status, r.raw)
	}
	link := b.call("POST", "/payment_requests", map[string]any{
		"reference_id": "link-1", "type": "PAY_AND_SAVE", "country": "PH", "currency": "PHP", "request_amount": "10000.01", "channel_code": "MAYA",
		"customer":           map[string]any{"reference_id": "demo_1475801962607", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "John", "surname": "Doe"}},
		"channel_properties": map[string]any{"success_return_url": "https://xendit.co/success", "failure_return_url": "https://xendit.co/failure"},
	})
	if link.status != 201 || link.body["status"] != "REQUIRES_ACTION" {
		t.Fatalf("link: %d %s", link.status, link.raw)
	}
	id := link.body["payment_request_id"].(string)
	sent := fake.Received()
	if got := string(sent[0].Body); !strings.Contains(got, `"reference_id":"`+id+`"`) || !strings.Contains(got, `"request_amount":10000.01`) {
		t.Fatalf("sent to Xendit: %s", got)
	}
	var pr payments.PaymentRequest
	if err := b.db.Bun.NewSelect().Model(&pr).Where("id = ?", id).Scan(context.Background()); err != nil || pr.ProviderRef == nil {
		t.Fatalf("provider ref: %v %v", pr.ProviderRef, err)
	}
	if err := fake.Complete(*pr.ProviderRef); err != nil {
		t.Fatal(err)
	}
	if statuses, err := fake.Deliver(); err != nil || !slices.Equal(statuses, []int{200, 200}) {
		t.Fatalf("webhooks: %v %v", statuses, err)
	}
	done := b.call("GET", "/payment_requests/"+id, nil)
	if done.body["status"] != "SUCCEEDED" || done.body["payment_token_id"] == nil {
		t.Fatalf("after the webhook: %s", done.raw)
	}
	tokenID := done.body["payment_token_id"].(string)
	charge := map[string]any{"reference_id": "c-1", "type": "PAY", "payment_token_id": tokenID, "country": "PH", "currency": "PHP", "request_amount": 500}
	if r := b.call("POST", "/payment_requests", charge); r.status != 201 || r.body["status"] != "SUCCEEDED" {
		t.Fatalf("charge: %d %s", r.status, r.raw)
	}
	// Its webhook repeats what the answer said: processed, no new event.
	captures := b.countWhere("events", "type = 'payment.capture'")
	if statuses, _ := fake.Deliver(); !slices.Equal(statuses, []int{200}) {
		t.Fatalf("charge webhook: %v", statuses)
	}
	if b.countWhere("events", "type = 'payment.capture'") != captures || captures != 2 {
		t.Fatalf("%d payment.capture events", captures)
	}

	// Forged: a wrong token changes nothing and stores nothing.
	stored := b.count("provider_callbacks")
	failure := `{"event":"payment.failure","data":{"payment_request_id":"` + *pr.ProviderRef + `","reference_id":"` + id + `","status":"FAILED","failure_code":"INSUFFICIENT_BALANCE"}}`
	for _, token := range []string{"", "e2e-callback-token-2", "E2E-CALLBACK-TOKEN", "guess"} {
		b.callWithKey("", "POST", "/callbacks/xendit", failure, "x-callback-token", token).wantError(t, 401, "INVALID_CALLBACK_TOKEN", "")
	}
	if b.count("provider_callbacks") != stored || b.call("GET", "/payment_requests/"+id, nil).body["status"] != "SUCCEEDED" {
		t.Fatal("a forged callback changed something")
	}
	// With the right token, a late failure does not move a success back.
	if r := b.callWithKey("", "POST", "/callbacks/xendit", failure, "x-callback-token", "e2e-callback-token"); r.status != 200 || r.body["outcome"] != "PROCESSED" {
		t.Fatalf("late failure: %d %s", r.status, r.raw)
	}
	if b.call("GET", "/payment_requests/"+id, nil).body["status"] != "SUCCEEDED" || b.countWhere("events", "type = 'payment.failure'") != 0 {
		t.Fatal("a late failure moved the payment backwards")
	}
	// About a payment the engine does not know: stored and counted.
	unknown := `{"event":"payment.capture","data":{"payment_request_id":"pr-elsewhere","reference_id":"someone-else","status":"SUCCEEDED"}}`
	if r := b.callWithKey("", "POST", "/callbacks/xendit", unknown, "x-callback-token", "e2e-callback-token"); r.status != 200 || r.body["outcome"] != "UNMATCHED" {
		t.Fatalf("unknown: %d %s", r.status, r.raw)
	}
	if n := b.countWhere("provider_callbacks", "outcome = 'UNMATCHED'"); n != 1 {
		t.Fatalf("%d unmatched callbacks stored", n)
	}
	metrics := string(b.callWithKey("", "GET", "/metrics", nil).raw)
	for _, line := range []string{
		`billing_provider_callbacks_total{outcome="UNMATCHED",provider="xendit"} 1`,
		`billing_provider_callbacks_total{outcome="REJECTED",provider="xendit"} 4`,
		`billing_provider_callbacks_total{outcome="PROCESSED",provider="xendit"} 4`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	// Xendit says the token expired: it does, once, and cannot be charged.
	var tokenRef string
	if err := b.db.Bun.NewRaw("SELECT provider_token_ref FROM payment_tokens WHERE id = ?", tokenID).Scan(context.Background(), &tokenRef); err != nil {
		t.Fatal(err)
	}
	expiry := `{"event":"payment_token.expiry","business_id":"x","created":"2026-02-01T00:00:00Z","data":{"payment_token_id":"` + tokenRef + `","status":"EXPIRED"}}`
	for i := 0; i < 2; i++ {
		if r := b.callWithKey("", "POST", "/callbacks/xendit", expiry, "x-callback-token", "e2e-callback-token", "webhook-id", "exp-"+string(rune('a'+i))); r.status != 200 || r.body["outcome"] != "PROCESSED" {
			t.Fatalf("expiry: %d %s", r.status, r.raw)
		}
	}
	if got := b.call("GET", "/payment_tokens/"+tokenID, nil); got.body["status"] != "EXPIRED" || b.countWhere("events", "type = 'payment_token.expiry'") != 1 {
		t.Fatalf("after expiry: %s", got.raw)
	}
	b.call("POST", "/payment_requests", charge).wantError(t, 400, "API_VALIDATION_ERROR", "payment_token_id")
}

// TestWooshPayThroughTheAPI: choosing WooshPay registers the engine's
// webhook endpoint; Pay and Save is refused (customer-present); a payment
// link paid at WooshPay is recorded from its signed events; forged,
// tampered and stale events are refused.
func TestWooshPayThroughTheAPI(t *testing.T) {
	fake := wooshpayfake.New("sk_test_e2e")
	defer fake.Close()
	var svc *payments.Service
	public := "https://billing.example"
	b := setup(t, withPayments([]providers.Provider{wooshpay.New(wooshpay.Config{BaseURL: fake.URL})}, &public, nil, &svc, nil))
	b.call("POST", "/provider_settings", map[string]any{"provider": "wooshpay", "wooshpay": map[string]any{"secret_key": "sk_live_e2e"}}).
		wantError(t, 400, "API_VALIDATION_ERROR", "wooshpay.secret_key")
	r := b.call("POST", "/provider_settings", map[string]any{"provider": "wooshpay", "wooshpay": map[string]any{"secret_key": "sk_test_e2e"}})
	if r.status != 200 || strings.Contains(string(r.raw), "whsec_") || r.body["wooshpay"].(map[string]any)["webhook_secret_set"] != true {
		t.Fatalf("settings: %d %s", r.status, r.raw)
	}
	eps := fake.Endpoints()
	if len(eps) != 1 || eps[0].URL != "https://billing.example/callbacks/wooshpay?business_id="+b.biz.ID {
		t.Fatalf("endpoints %+v", eps)
	}

	cust := b.call("POST", "/customers", map[string]any{"reference_id": "m-1", "individual_detail": map[string]any{"given_names": "Siti"}})
	before := b.count("payment_requests")
	b.call("POST", "/payment_requests", map[string]any{"reference_id": "l", "type": "PAY_AND_SAVE", "customer_id": cust.body["id"], "country": "ID",
		"currency": "IDR", "request_amount": 150000, "channel_code": "DANA",
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}}).
		wantError(t, 400, "INVALID_VALUE_ERROR", "")
	if b.count("payment_requests") != before {
		t.Fatal("a refused request was kept")
	}

	amount := billing.Money{Amount: mustDecimal(t, "250000"), Currency: "IDR"}
	biz, err := business.Get(context.Background(), b.db.Bun, b.biz.ID)
	if err != nil {
		t.Fatal(err)
	}
	link, err := svc.CreatePaymentLink(context.Background(), biz, biz.Clock().Now(), payments.PaymentLinkParams{
		CustomerID: cust.body["id"].(string), Country: "ID", Amount: amount, ReferenceID: "inv-1", IdempotencyKey: "inv-1/link",
		LineItems:  []providers.LineItem{{Name: "Water, January", UnitAmount: amount, Quantity: 1}},
		SuccessURL: "https://u.example/paid", CancelURL: "https://u.example/cancel"})
	if err != nil || link.Status != payments.StatusRequiresAction || link.ChannelCode != wooshpay.ChannelCode || !strings.HasPrefix(*link.ProviderRef, "cs_") {
		t.Fatalf("link: %+v %v", link, err)
	}
	if err := fake.Pay(*link.ProviderRef); err != nil {
		t.Fatal(err)
	}
	events := fake.Events()
	deliver := func(ev wooshpayfake.Event, at time.Time) response {
		return b.callWithKey("", "POST", "/callbacks/wooshpay?business_id="+b.biz.ID, string(ev.Body), wooshpay.SignatureHeader, wooshpay.Sign(eps[0].Secret, at, ev.Body))
	}
	// Signed six minutes ago (by the engine's clock): refused, nothing changes.
	for _, ev := range events {
		deliver(ev, b.clock.Now().Add(-6*time.Minute)).wantError(t, 401, "INVALID_SIGNATURE", "")
	}
	if got := b.call("GET", "/payment_requests/"+link.ID, nil); got.body["status"] != "REQUIRES_ACTION" || b.count("provider_callbacks") != 0 {
		t.Fatalf("a stale event changed something: %s", got.raw)
	}
	// Signed now, they are processed: the PaymentIntent's and the session's.
	for _, ev := range events {
		if r := deliver(ev, b.clock.Now()); r.status != 200 {
			t.Fatalf("event: %d %s", r.status, r.raw)
		}
	}
	if got := b.call("GET", "/payment_requests/"+link.ID, nil); got.body["status"] != "SUCCEEDED" || got.body["payment_token_id"] != nil {
		t.Fatalf("after the events: %s", got.raw)
	}
	if n := b.countWhere("events", "type = 'payment.capture'"); n != 1 {
		t.Fatalf("%d payment.capture events", n)
	}
	// Replayed within the tolerance: a duplicate. Tampered, or signed with
	// another secret, or for another business: refused.
	last := events[len(events)-1]
	sig := wooshpay.Sign(eps[0].Secret, b.clock.Now(), last.Body)
	if r := b.callWithKey("", "POST", "/callbacks/wooshpay?business_id="+b.biz.ID, string(last.Body), wooshpay.SignatureHeader, sig); r.body["outcome"] != "DUPLICATE" {
		t.Fatalf("replay: %s", r.raw)
	}
	tampered := strings.Replace(string(last.Body), `"paid"`, `"unpaid"`, 1)
	for name, req := range map[string][2]string{
		"tampered body":  {"/callbacks/wooshpay?business_id=" + b.biz.ID, tampered},
		"other secret":   {"/callbacks/wooshpay?business_id=" + b.biz.ID, string(last.Body)},
		"no business":    {"/callbacks/wooshpay", string(last.Body)},
		"other business": {"/callbacks/wooshpay?business_id=biz-00000000-0000-7000-8000-000000000000", string(last.Body)},
	} {
		header := sig
		if name == "other secret" {
			header = wooshpay.Sign("whsec_guess", b.clock.Now(), last.Body)
		}
		b.callWithKey("", "POST", req[0], req[1], wooshpay.SignatureHeader, header).wantError(t, 401, "INVALID_SIGNATURE", "")
	}
}

// TestPaymentBadInput: each is a 400 naming the field, or 404, and
// stores nothing.
func TestPaymentBadInput(t *testing.T) {
	var svc *payments.Service
	b := setup(t, withPayments(nil, nil, nil, &svc, nil))
	tokenID := b.sandboxToken(svc, nil)
	cust := b.call("POST", "/customers", map[string]any{"reference_id": "m-2", "individual_detail": map[string]any{"given_names": "Budi"}})
	_, otherKey := b.newBusiness(business.ModeSandbox)
	save := func(changes ...any) map[string]any {
		m := map[string]any{"reference_id": "l", "type": "PAY_AND_SAVE", "customer_id": cust.body["id"], "country": "ID", "currency": "IDR",
			"request_amount": 150000, "channel_code": "DANA",
			"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}}
		for i := 0; i+1 < len(changes); i += 2 {
			m[changes[i].(string)] = changes[i+1]
		}
		return m
	}
	pay := map[string]any{"reference_id": "c", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 1000}
	before := [3]int{b.count("payment_requests"), b.count("customers"), b.countWhere("sandbox_payments", "true")}
	for _, tc := range []struct {
		body   any
		status int
		code   string
		field  string
	}{
		{save("channel_code", "PAYPAL"), 400, "API_VALIDATION_ERROR", "channel_code"},
		{save("channel_code", "GCASH"), 400, "API_VALIDATION_ERROR", "channel_code"},
		{save("currency", "PHP"), 400, "API_VALIDATION_ERROR", "currency"},
		{save("request_amount", 150000.5), 400, "API_VALIDATION_ERROR", "request_amount"},
		{save("request_amount", -150000), 400, "API_VALIDATION_ERROR", "request_amount"},
		{save("customer_id", nil, "customer", map[string]any{"reference_id": "n", "type": "INDIVIDUAL", "individual_detail": map[string]any{"given_names": "N"}, "mobile_number": "0812"}), 400, "API_VALIDATION_ERROR", "customer.mobile_number"},
		{withField(pay, "payment_token_id", "pt-00000000-0000-7000-8000-000000000000"), 404, "DATA_NOT_FOUND", ""},
		{withField(pay, "payment_token_id", "not-a-token"), 404, "DATA_NOT_FOUND", ""},
		{withField(pay, "customer_id", cust.body["id"]), 400, "API_VALIDATION_ERROR", "payment_token_id"},
		{withField(pay, "request_amount", "1000.5"), 400, "API_VALIDATION_ERROR", "request_amount"},
		{`{"type":"PAY",}`, 400, "API_VALIDATION_ERROR", "body"},
	} {
		b.call("POST", "/payment_requests", tc.body).wantError(t, tc.status, tc.code, tc.field)
	}
	// Another business's token and payment request are not found.
	b.callWithKey(otherKey, "POST", "/payment_requests", pay).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.callWithKey(otherKey, "POST", "/payment_tokens/"+tokenID+"/cancel", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	if after := [3]int{b.count("payment_requests"), b.count("customers"), b.countWhere("sandbox_payments", "true")}; after != before {
		t.Fatalf("bad input changed rows: %v → %v", before, after)
	}
}

func withField(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

// sandboxToken saves an ACTIVE sandbox token for a new customer through
// the API and the service's callback delivery, and returns its id.
func (b *bundle) sandboxToken(svc *payments.Service, metadata map[string]any) string {
	b.t.Helper()
	cust := b.call("POST", "/customers", map[string]any{"reference_id": "token-owner", "individual_detail": map[string]any{"given_names": "Siti"}})
	body := map[string]any{"reference_id": "link", "type": "PAY_AND_SAVE", "customer_id": cust.body["id"], "country": "ID", "currency": "IDR",
		"request_amount": 150000, "channel_code": "DANA", "metadata": metadata,
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}}
	r := b.call("POST", "/payment_requests", body)
	id := r.body["payment_request_id"].(string)
	b.call("POST", "/payment_requests/"+id+"/simulate", nil)
	if _, err := svc.DeliverDueSandboxCallbacks(context.Background(), b.biz.ID); err != nil {
		b.t.Fatal(err)
	}
	tok, _ := b.call("GET", "/payment_requests/"+id, nil).body["payment_token_id"].(string)
	if tok == "" {
		b.t.Fatal("no token saved")
	}
	return tok
}

// countWhere counts the business's rows of table matching cond.
func (b *bundle) countWhere(table, cond string) int {
	b.t.Helper()
	var n int
	if err := b.db.Bun.NewRaw("SELECT count(*) FROM "+table+" WHERE business_id = ? AND "+cond, b.biz.ID).Scan(context.Background(), &n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

// eventTypes returns the types of the business's events, sorted.
func (b *bundle) eventTypes() []string {
	b.t.Helper()
	var types []string
	if err := b.db.Bun.NewRaw("SELECT type FROM events WHERE business_id = ?", b.biz.ID).Scan(context.Background(), &types); err != nil {
		b.t.Fatal(err)
	}
	sort.Strings(types)
	return types
}

func (b *bundle) eventData(typ string) []map[string]any {
	b.t.Helper()
	var raws [][]byte
	if err := b.db.Bun.NewRaw("SELECT data::text::bytea FROM events WHERE business_id = ? AND type = ? ORDER BY created, id", b.biz.ID, typ).Scan(context.Background(), &raws); err != nil {
		b.t.Fatal(err)
	}
	var out []map[string]any
	for _, raw := range raws {
		out = append(out, decodeJSON(b.t, raw))
	}
	return out
}

func mustDecimal(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	d, err := billing.ParseDecimalString(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
