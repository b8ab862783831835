package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// TestRunDueConcurrent runs the dispatcher of one business from several
// workers at once, in small batches, over cycles due at one moment, some
// of whose customers have two plans on one meter: every cycle is fixed
// exactly once, every event billed once, and the invoice numbers are
// 1..N with no gap and no repeat (the invariants, checked at the end).
func TestRunDueConcurrent(t *testing.T) {
	w := newWorld(t)
	w.s = New(Config{DB: w.db.Bun, BatchSize: 7})
	const plansCount = 48
	var ps []*Plan
	for i := 0; i < plansCount; i++ {
		body := w.planBody()
		if i%4 != 0 { // every fourth plan shares the previous one's customer
			w.customer = w.newCustomer(fmt.Sprintf("C-x%d", i))
		}
		body["customer_id"] = w.customer.ID
		ps = append(ps, w.plan(body, at("2026-02-01T10:00:00Z")))
		w.ingest(at("2026-02-05T00:00:00Z"), event{id: fmt.Sprintf("k%d", i), meter: "kwh", qty: "42", ts: at("2026-02-03T00:00:00Z")})
	}
	const workers = 6
	var wg sync.WaitGroup
	moved := make(chan int, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := w.s.RunDueBusiness(context.Background(), w.biz.ID, at("2026-02-14T00:00:00Z"))
			if err != nil {
				t.Error(err)
			}
			moved <- n
		}()
	}
	wg.Wait()
	close(moved)
	total := 0
	for n := range moved {
		total += n
	}
	if total != plansCount {
		t.Fatalf("the workers moved %d cycles, want %d", total, plansCount)
	}
	for _, p := range ps {
		if c := w.cycle(p, 1); c.AmountFixedAt == nil {
			t.Fatalf("cycle of %s not fixed", p.ID)
		}
	}
	var fixedEvents, numbered int
	if err := w.db.Bun.NewSelect().Table("events").ColumnExpr("count(DISTINCT data->>'id')").Where("business_id = ?", w.biz.ID).
		Where("type = ?", outbox.RecurringCycleAmountFixed).Scan(w.ctx, &fixedEvents); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Bun.NewSelect().Table("invoices").ColumnExpr("count(DISTINCT number)").Where("business_id = ?", w.biz.ID).
		Scan(w.ctx, &numbered); err != nil {
		t.Fatal(err)
	}
	if n, err := w.db.Bun.NewSelect().Table("events").Where("business_id = ?", w.biz.ID).Where("type = ?", outbox.RecurringCycleAmountFixed).Count(w.ctx); err != nil || n != plansCount || fixedEvents != plansCount {
		t.Fatalf("%d amount_fixed events for %d cycles (%v)", n, fixedEvents, err)
	}
	if numbered != plansCount {
		t.Fatalf("%d numbers for %d invoices", numbered, plansCount)
	}
}

// TestGaplessApprovals approves many held invoices at once from several
// goroutines, each approval its own transaction: the numbers they take are
// 1..N, none twice, none skipped (checkInvariants), also when some
// transactions roll back after taking theirs.
func TestGaplessApprovals(t *testing.T) {
	w := newWorld(t)
	const count = 30
	var ids []string
	for i := 0; i < count; i++ {
		w.customer = w.newCustomer(fmt.Sprintf("C-x%d", i))
		b := w.planBody()
		b["customer_id"], b["review_policy"] = w.customer.ID, "MANUAL"
		w.plan(b, at("2026-02-01T10:00:00Z"))
	}
	w.run(at("2026-02-14T00:00:00Z"))
	if err := w.db.Bun.NewSelect().Table("invoices").Column("id").Where("business_id = ?", w.biz.ID).Scan(w.ctx, &ids); err != nil || len(ids) != count {
		t.Fatalf("%d invoices: %v", len(ids), err)
	}
	work := make(chan string, len(ids))
	for _, id := range ids {
		work <- id
	}
	close(work)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for id := range work {
				// Every third goroutine first takes a number and rolls back.
				if g%3 == 0 {
					err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						if _, err := w.s.ApproveInvoice(ctx, tx, w.biz, at("2026-02-14T10:00:00Z"), id, "key-test", InvoiceActionParams{}); err != nil {
							return err
						}
						return errRollback
					})
					if err != errRollback {
						t.Error(err)
					}
				}
				err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := w.s.ApproveInvoice(ctx, tx, w.biz, at("2026-02-14T10:00:00Z"), id, "key-test", InvoiceActionParams{})
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	var numbers []string
	if err := w.db.Bun.NewSelect().Table("invoices").Column("number").Where("business_id = ?", w.biz.ID).OrderExpr("number").
		Scan(w.ctx, &numbers); err != nil {
		t.Fatal(err)
	}
	for i, n := range numbers {
		if want := fmt.Sprintf("INV-2026-%06d", i+1); n != want {
			t.Fatalf("number %d is %s, want %s", i, n, want)
		}
	}
}

var errRollback = fmt.Errorf("roll back")

// TestNextDueAndLiveWakes checks what the schedulers read: a business's
// earliest due time, and the wakes of live businesses only.
func TestNextDueAndLiveWakes(t *testing.T) {
	w := newWorld(t)
	if at, err := w.s.NextDue(w.ctx, w.biz.ID); err != nil || at != nil {
		t.Fatalf("no cycles: %v %v", at, err)
	}
	p := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	if due, err := w.s.NextDue(w.ctx, w.biz.ID); err != nil || due == nil || !due.Equal(at("2026-02-14T00:00:00Z")) {
		t.Fatalf("next due %v %v", due, err)
	}
	w.run(at("2026-02-14T00:00:00Z"))
	if due, _ := w.s.NextDue(w.ctx, w.biz.ID); due == nil || !due.Equal(w.cycle(p, 1).ScheduledTimestamp) {
		t.Fatalf("after the fix, next due %v", due)
	}

	// A live business's cycles fall due by the system clock.
	now := billing.SystemClock{}.Now()
	live, _, err := business.Create(w.ctx, w.db.Bun, billing.SystemClock{}, business.CreateParams{Name: t.Name() + " live", Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	lw := &world{t: t, ctx: w.ctx, db: w.db, s: w.s, biz: live, ingester: w.ingester}
	lw.customer = lw.newCustomer("L-1")
	body := lw.planBody()
	body["schedule"].(map[string]any)["anchor_date"] = now.AddDate(-1, 0, 0).Format(time.RFC3339)
	body["usage_charges"] = []any{}
	lp := lw.plan(body, now.AddDate(0, -2, 0))
	lc := lw.cycle(lp, 1)
	wakes, err := w.s.LiveWakes(w.ctx, now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, wk := range wakes {
		if wk.BusinessID == w.biz.ID {
			t.Fatalf("a sandbox business was woken: %+v", wk)
		}
		if wk.BusinessID == live.ID {
			found = true
			if wk.At.Before(truncate(now)) {
				t.Fatalf("a due wake before now: %v", wk.At)
			}
		}
	}
	if !found {
		t.Fatalf("the live business's due cycle (%v) was not woken: %+v", lc.NextActionAt, wakes)
	}
	if _, err := w.s.RunDue(w.ctx); err != nil {
		t.Fatal(err)
	}
	if lc = lw.cycle(lp, 1); lc.AmountFixedAt == nil {
		t.Fatal("RunDue left the live cycle unfixed")
	}
	if c := w.cycle(p, 1); c.NextAction == nil || *c.NextAction != ActionCharge {
		t.Fatal("RunDue touched the sandbox business")
	}
	lw.checkInvariants()
}

// TestEngineDocsNextActions checks that docs/engine.md's table of
// next_action values describes every action a step is registered for.
func TestEngineDocsNextActions(t *testing.T) {
	raw, err := os.ReadFile("../docs/engine.md")
	if err != nil {
		t.Fatal(err)
	}
	actions := dueActions()
	if !slices.Contains(actions, ActionFixAmount) {
		t.Fatalf("registered actions %v lack %s", actions, ActionFixAmount)
	}
	for _, a := range actions {
		if !strings.Contains(string(raw), "| `"+a+"` |") {
			t.Errorf("docs/engine.md does not describe next_action %s", a)
		}
	}
}
