package payments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// start is when each test's sandbox business is created (business clock
// and system clock both start here).
var start = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// world is one test's service, sandbox business and customer.
type world struct {
	t      *testing.T
	ctx    context.Context
	db     *postgres.DB
	svc    *payments.Service
	clock  *billing.SettableClock // the system clock
	biz    *business.Business
	cust   *customers.Customer
	extra  []providers.Provider
	seam   func(ctx context.Context, id string) error
	config func(*payments.Config)
}

func setup(t *testing.T, opts ...func(*world)) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), db: pgtest.New(t), clock: billing.NewSettableClock(start)}
	for _, o := range opts {
		o(w)
	}
	cfg := payments.Config{
		DB: w.db.Bun, Clock: w.clock,
		Providers: append([]providers.Provider{sandbox.New(sandbox.Config{DB: w.db.Bun})}, w.extra...),
		AfterProviderCallFunc: func(ctx context.Context, id string) error {
			if w.seam != nil {
				return w.seam(ctx, id)
			}
			return nil
		},
	}
	if w.config != nil {
		w.config(&cfg)
	}
	w.svc = payments.New(cfg)
	w.biz = w.newBusiness(business.ModeSandbox)
	w.cust = w.newCustomer(w.biz, "meter-001")
	return w
}

func (w *world) newBusiness(mode business.Mode) *business.Business {
	w.t.Helper()
	biz, _, err := business.Create(w.ctx, w.db.Bun, w.clock, business.CreateParams{Name: w.t.Name(), Mode: mode})
	if err != nil {
		w.t.Fatal(err)
	}
	return biz
}

func (w *world) newCustomer(biz *business.Business, ref string) *customers.Customer {
	w.t.Helper()
	p, err := customers.DecodeCreate([]byte(fmt.Sprintf(`{"reference_id":%q,"individual_detail":{"given_names":"Siti","surname":"Rahayu"},"email":"siti@example.co.id"}`, ref)))
	if err != nil {
		w.t.Fatal(err)
	}
	c, err := customers.Create(w.ctx, w.db.Bun, biz.ID, start, p)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// now is the business clock.
func (w *world) now(biz *business.Business) time.Time {
	w.t.Helper()
	b, err := business.Get(w.ctx, w.db.Bun, biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Clock().Now()
}

// advance moves the business clock (and the system clock with it).
func (w *world) advance(biz *business.Business, d time.Duration) {
	w.t.Helper()
	if _, err := business.AdvanceClock(w.ctx, w.db.Bun, biz.ID, business.ClockAdvance{By: &d}); err != nil {
		w.t.Fatal(err)
	}
	w.clock.Advance(d)
}

// body returns a PAY_AND_SAVE body for the world's customer, changed by
// the pairs given ("request_amount", 21110, …).
func (w *world) saveBody(changes ...any) []byte {
	m := map[string]any{
		"reference_id": "link-1", "type": "PAY_AND_SAVE", "customer_id": w.cust.ID, "country": "ID", "currency": "IDR",
		"request_amount": 150000, "channel_code": "DANA",
		"channel_properties": map[string]any{"success_return_url": "https://utility.example/ok", "failure_return_url": "https://utility.example/fail"},
	}
	return with(m, changes...)
}

func (w *world) payBody(tokenID string, changes ...any) []byte {
	m := map[string]any{
		"reference_id": "charge-1", "type": "PAY", "payment_token_id": tokenID, "country": "ID", "currency": "IDR", "request_amount": 150000,
	}
	return with(m, changes...)
}

func with(m map[string]any, changes ...any) []byte {
	for i := 0; i+1 < len(changes); i += 2 {
		k := changes[i].(string)
		if changes[i+1] == nil {
			delete(m, k)
		} else {
			m[k] = changes[i+1]
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// create runs Create with an idempotency key.
func (w *world) create(biz *business.Business, body []byte, key string) (*payments.PaymentRequest, error) {
	w.t.Helper()
	p, err := payments.DecodeCreate(body)
	if err != nil {
		w.t.Fatalf("decode %s: %v", body, err)
	}
	return w.svc.Create(w.ctx, biz, w.now(biz), p, key, body)
}

func (w *world) mustCreate(biz *business.Business, body []byte, key string) *payments.PaymentRequest {
	w.t.Helper()
	pr, err := w.create(biz, body, key)
	if err != nil {
		w.t.Fatal(err)
	}
	return pr
}

// deliver delivers the business's due sandbox callbacks.
func (w *world) deliver(biz *business.Business) int {
	w.t.Helper()
	n, err := w.svc.DeliverDueSandboxCallbacks(w.ctx, biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) simulate(biz *business.Business, id string, amount int64) {
	w.t.Helper()
	p := payments.SimulateParams{}
	if amount != 0 {
		p.Amount = &billing.Number{Decimal: decimal.NewFromInt(amount)}
	}
	if _, err := w.svc.Simulate(w.ctx, w.db.Bun, biz, w.now(biz), id, p); err != nil {
		w.t.Fatal(err)
	}
}

// linkToken runs a Pay and Save with metadata through simulate and returns
// the ACTIVE token's id.
func (w *world) linkToken(biz *business.Business, metadata map[string]any, ref string) string {
	w.t.Helper()
	body := w.saveBody("reference_id", ref)
	if metadata != nil {
		body = w.saveBody("reference_id", ref, "metadata", metadata)
	}
	pr := w.mustCreate(biz, body, "")
	w.simulate(biz, pr.ID, 0)
	w.deliver(biz)
	pr = w.get(biz, pr.ID)
	if pr.Status != payments.StatusSucceeded || pr.PaymentTokenID == nil {
		w.t.Fatalf("linking did not save a token: %+v", pr)
	}
	return *pr.PaymentTokenID
}

func (w *world) get(biz *business.Business, id string) *payments.PaymentRequest {
	w.t.Helper()
	pr, err := w.svc.Get(w.ctx, w.db.Bun, biz.ID, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return pr
}

// count returns a count(*) with args.
func (w *world) count(query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.Bun.NewRaw(query, args...).Scan(w.ctx, &n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// events returns the types of the business's events, oldest first.
func (w *world) events(biz *business.Business) []string {
	w.t.Helper()
	var types []string
	if err := w.db.Bun.NewRaw("SELECT type FROM events WHERE business_id = ? ORDER BY created, id", biz.ID).Scan(w.ctx, &types); err != nil {
		w.t.Fatal(err)
	}
	return types
}

// eventData returns the data of the business's events of a type.
func (w *world) eventData(biz *business.Business, typ string) []map[string]any {
	w.t.Helper()
	var raws []string
	if err := w.db.Bun.NewRaw("SELECT data::text FROM events WHERE business_id = ? AND type = ? ORDER BY created, id", biz.ID, typ).Scan(w.ctx, &raws); err != nil {
		w.t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range raws {
		var m map[string]any
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// wantError checks a *billing.Error's reason and, when field is set, that
// it names the field.
func wantError(t *testing.T, err error, reason, field string) {
	t.Helper()
	e, ok := billing.AsError(err)
	if !ok || e.Reason != reason {
		t.Fatalf("got %v, want %s", err, reason)
	}
	if field == "" {
		return
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("%v does not name %s", err, field)
}

func wantStatus(t *testing.T, pr *payments.PaymentRequest, status, failure string) {
	t.Helper()
	got := ""
	if pr.FailureCode != nil {
		got = *pr.FailureCode
	}
	if pr.APIStatus() != status || got != failure {
		t.Fatalf("payment request %s is %s %q, want %s %q", pr.ID, pr.APIStatus(), got, status, failure)
	}
}
