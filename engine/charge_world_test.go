package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
	"github.com/uptrace/bun"
)

// chargeWorld is one charging test's world: a sandbox business with a
// customer, the payment service with the sandbox provider settling into
// the engine (as billing serve wires them), and the engine.
type chargeWorld struct {
	t    testing.TB
	ctx  context.Context
	db   *postgres.DB
	pay  *payments.Service
	s    *Service
	biz  *business.Business
	cust *customers.Customer
	now  time.Time
	seq  int
	// holdCallbacks keeps the sandbox's callbacks undelivered, as when
	// they are lost.
	holdCallbacks bool

	mu sync.Mutex
	// seam, when set, runs after the provider answered and before the
	// answer is recorded (payments.Config.AfterProviderCallFunc).
	seam func(paymentRequestID string) error
}

// chargeStart is when each charging world's business is created.
var chargeStart = at("2026-01-20T09:00:00Z")

// engineProcess is one engine process's services over db: its payment
// service (sandbox provider) settling into its engine, as billing serve
// wires them.
func engineProcess(db *postgres.DB, batch int, seam func(context.Context, string) error) (*payments.Service, *Service) {
	var eng *Service
	pay := payments.New(payments.Config{DB: db.Bun, Providers: []providers.Provider{sandbox.New(sandbox.Config{DB: db.Bun})},
		AfterProviderCallFunc: seam,
		SettledFunc: func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
			return eng.Settled(ctx, tx, pr, tok, now)
		},
		SettledBatchFunc: func(ctx context.Context, tx bun.IDB, prs []*payments.PaymentRequest, now time.Time) error {
			return eng.SettledBatch(ctx, tx, prs, now)
		}})
	eng = New(Config{DB: db.Bun, Payments: pay, PublicBaseURL: "https://billing.test", BatchSize: batch})
	return pay, eng
}

func newChargeWorld(t testing.TB) *chargeWorld {
	t.Helper()
	w := &chargeWorld{t: t, ctx: context.Background(), db: pgtest.New(t), now: chargeStart}
	w.pay, w.s = engineProcess(w.db, 50, func(ctx context.Context, id string) error {
		w.mu.Lock()
		seam := w.seam
		w.mu.Unlock()
		if seam != nil {
			return seam(id)
		}
		return nil
	})
	var err error
	if w.biz, _, err = business.Create(w.ctx, w.db.Bun, billing.NewSettableClock(chargeStart),
		business.CreateParams{Name: t.Name(), Mode: business.ModeSandbox}); err != nil {
		t.Fatal(err)
	}
	p, err := customers.DecodeCreate([]byte(`{"reference_id":"C-1","individual_detail":{"given_names":"Siti","surname":"Rahayu"},
		"email":"siti@example.co.id","mobile_number":"+6281234567890"}`))
	if err != nil {
		t.Fatal(err)
	}
	if w.cust, err = customers.Create(w.ctx, w.db.Bun, w.biz.ID, chargeStart, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.checkInvariants)
	return w
}

func (w *chargeWorld) setSeam(f func(paymentRequestID string) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seam = f
}

// business reads the business as it now is (its sandbox clock).
func (w *chargeWorld) business() *business.Business {
	w.t.Helper()
	b, err := business.Get(w.ctx, w.db.Bun, w.biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// token saves an ACTIVE sandbox token of the world's customer through a
// Pay and Save completed by simulate; behavior ("" for none) is its
// sandbox_behavior.
func (w *chargeWorld) token(behavior string) string {
	w.t.Helper()
	w.seq++
	body := map[string]any{"reference_id": fmt.Sprintf("link-%d", w.seq), "type": "PAY_AND_SAVE", "customer_id": w.cust.ID,
		"country": "ID", "currency": "IDR", "request_amount": 10000, "channel_code": "DANA",
		"channel_properties": map[string]any{"success_return_url": "https://u.example/ok", "failure_return_url": "https://u.example/no"}}
	if behavior != "" {
		body["metadata"] = map[string]any{"sandbox_behavior": behavior}
	}
	raw, _ := json.Marshal(body)
	cp, err := payments.DecodeCreate(raw)
	if err != nil {
		w.t.Fatal(err)
	}
	biz := w.business()
	pr, err := w.pay.Create(w.ctx, biz, w.now, cp, "", raw)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.pay.Simulate(w.ctx, w.db.Bun, biz, w.now, pr.ID, payments.SimulateParams{}); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.pay.DeliverDueSandboxCallbacks(w.ctx, w.biz.ID); err != nil {
		w.t.Fatal(err)
	}
	if pr, err = w.pay.Get(w.ctx, w.db.Bun, w.biz.ID, pr.ID); err != nil || pr.PaymentTokenID == nil {
		w.t.Fatalf("no token saved: %v %+v", err, pr)
	}
	return *pr.PaymentTokenID
}

// planBody is a monthly IDR plan of 100,000 on the 15th at 08:00 UTC
// charging tokens in rank order, with three retries three days apart,
// attempts 1 and 3 notified, and every moment notified on WhatsApp and
// e-mail in Indonesian.
func (w *chargeWorld) planBody(tokens ...string) map[string]any {
	w.seq++
	methods := []any{}
	for i, t := range tokens {
		methods = append(methods, map[string]any{"payment_token_id": t, "rank": i + 1})
	}
	return map[string]any{
		"reference_id": fmt.Sprintf("plan-%d", w.seq), "customer_id": w.cust.ID, "recurring_action": "PAYMENT", "currency": "IDR", "amount": 100000,
		"schedule": map[string]any{"reference_id": "monthly", "interval": "MONTH", "interval_count": 1, "anchor_date": "2026-02-15T08:00:00Z",
			"retry_interval": "DAY", "retry_interval_count": 3, "total_retry": 3, "failed_attempt_notifications": []any{1, 3}},
		"notification_config": map[string]any{"recurring_created": []any{"WHATSAPP"}, "recurring_succeeded": []any{"WHATSAPP"},
			"recurring_failed": []any{"WHATSAPP", "EMAIL"}, "locale": "id"},
		"failed_cycle_action": "STOP", "payment_methods": methods,
	}
}

// plan creates the plan of body at the world's time.
func (w *chargeWorld) plan(body map[string]any) *Plan {
	w.t.Helper()
	cp := decodePlan(w.t, body)
	var p *Plan
	var err error
	err = w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		p, err = w.s.CreatePlan(ctx, tx, w.business(), w.now, cp, "https://billing.test")
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// to moves the business clock to t (RFC 3339), stopping at each instant
// where a cycle's work falls due on the way, and there running everything
// due — the sandbox's callbacks and the engine's steps — until the
// business is idle, as advancing a sandbox clock does.
func (w *chargeWorld) to(t string) {
	w.t.Helper()
	target := at(t)
	for {
		next, err := w.s.NextDue(w.ctx, w.biz.ID)
		if err != nil {
			w.t.Fatal(err)
		}
		if next == nil || next.After(target) {
			break
		}
		if next.After(w.now) {
			w.setClock(*next)
		}
		if w.runDue() == 0 {
			break
		}
	}
	w.setClock(target)
	w.runDue()
}

func (w *chargeWorld) setClock(t time.Time) {
	w.t.Helper()
	if err := business.SetSandboxNow(w.ctx, w.db.Bun, w.biz.ID, t); err != nil {
		w.t.Fatal(err)
	}
	w.now = t
}

// runDue delivers the due sandbox callbacks and runs the due steps at the
// world's time until nothing more is due, and returns how much it did.
func (w *chargeWorld) runDue() int {
	w.t.Helper()
	total := 0
	for {
		n := w.deliver()
		m, err := w.s.RunDueBusiness(w.ctx, w.biz.ID, w.now)
		if err != nil {
			w.t.Fatal(err)
		}
		total += n + m
		if n+m == 0 {
			return total
		}
	}
}

func (w *chargeWorld) deliver() int {
	w.t.Helper()
	if w.holdCallbacks {
		return 0
	}
	n, err := w.pay.DeliverDueSandboxCallbacks(w.ctx, w.biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// cycle reads cycle n of plan p with its attempts.
func (w *chargeWorld) cycle(p *Plan, n int) *Cycle {
	w.t.Helper()
	c := readCycle(w.t, w.ctx, w.db.Bun, p, n)
	if err := loadAttempts(w.ctx, w.db.Bun, c); err != nil {
		w.t.Fatal(err)
	}
	return c.bind(p)
}

// cycles counts plan p's cycles by status.
func (w *chargeWorld) cycles(p *Plan) map[string]int {
	w.t.Helper()
	var rows []*Cycle
	if err := w.db.Bun.NewSelect().Model(&rows).Where("plan_id = ?", p.ID).Scan(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int{}
	for _, c := range rows {
		out[c.Status]++
	}
	return out
}

func (w *chargeWorld) invoiceOf(c *Cycle) *Invoice {
	w.t.Helper()
	inv := new(Invoice)
	if err := w.db.Bun.NewSelect().Model(inv).Where("cycle_id = ?", c.ID).Scan(w.ctx); err != nil {
		w.t.Fatalf("invoice of cycle %s: %v", c.ID, err)
	}
	return inv
}

func (w *chargeWorld) planNow(p *Plan) *Plan {
	w.t.Helper()
	got, err := getPlan(w.ctx, w.db.Bun, w.biz.ID, p.ID, false)
	if err != nil {
		w.t.Fatal(err)
	}
	return got
}

func (w *chargeWorld) service() *ServiceStatus {
	w.t.Helper()
	st, err := w.s.GetServiceStatus(w.ctx, w.db.Bun, w.biz.ID, w.cust.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// events returns the types of the business's events since the n-th,
// oldest first.
func (w *chargeWorld) events(from int) []string {
	w.t.Helper()
	var types []string
	if err := w.db.Bun.NewRaw("SELECT type FROM events WHERE business_id = ? ORDER BY created, id", w.biz.ID).Scan(w.ctx, &types); err != nil {
		w.t.Fatal(err)
	}
	return types[from:]
}

// notices lists the business's notifications as "KIND[#attempt]/CHANNEL",
// oldest first.
func (w *chargeWorld) notices() ([]string, []*notify.Notification) {
	w.t.Helper()
	var ns []*notify.Notification
	if err := w.db.Bun.NewSelect().Model(&ns).Where("business_id = ?", w.biz.ID).OrderExpr("created, id").Scan(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, n := range ns {
		s := string(n.Kind)
		if n.AttemptNumber != nil {
			s += fmt.Sprintf("#%d", *n.AttemptNumber)
		}
		out = append(out, s+"/"+string(n.Channel))
	}
	return out, ns
}

// count runs a count(*) query.
func (w *chargeWorld) count(query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.Bun.NewRaw(query, args...).Scan(w.ctx, &n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// attempts describes c's attempts as "number.action TYPE STATUS [code]".
func attempts(c *Cycle) []string {
	var out []string
	for _, a := range c.attempts {
		s := fmt.Sprintf("%d.%d %s %s", a.AttemptNumber, a.ActionNumber, a.Type, a.Status)
		if a.FailureCode != nil {
			s += " " + *a.FailureCode
		}
		out = append(out, s)
	}
	return out
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

// checkInvariants checks SPEC §8 for the world's business (Violations).
func (w *chargeWorld) checkInvariants() {
	w.t.Helper()
	bad, err := Violations(w.ctx, w.db.Bun, w.biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, b := range bad {
		w.t.Errorf("invariant: %s", b)
	}
}

// wantReason fails unless err is a *billing.Error with the API error_code
// reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if e, ok := billing.AsError(err); !ok || e.Reason != reason {
		t.Fatalf("got %v, want %s", err, reason)
	}
}
