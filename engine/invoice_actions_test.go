package engine

import (
	"context"
	"testing"

	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// act runs one invoice action at now in its own transaction.
func (w *world) act(do func(ctx context.Context, tx bun.Tx) error) {
	w.t.Helper()
	if err := w.db.Bun.RunInTx(w.ctx, nil, do); err != nil {
		w.t.Fatal(err)
	}
}

// TestHoldAndRelease holds a finalized invoice: its cycle's charge is taken
// off (the dispatcher leaves it alone past its date), and comes back on
// release, at once since its time has passed.
func TestHoldAndRelease(t *testing.T) {
	w := newWorld(t)
	p := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.run(at("2026-02-14T00:00:00Z"))
	c := w.cycle(p, 1)
	inv := w.invoice(c)
	w.act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.HoldInvoice(ctx, tx, w.biz, at("2026-02-14T10:00:00Z"), inv.ID, "key-test", InvoiceActionParams{})
		return err
	})
	c = w.cycle(p, 1)
	held := w.invoice(c)
	if c.NextAction != nil || held.ReviewStatus != ReviewOnHold || held.HeldChargeAt == nil || !held.HeldChargeAt.Equal(c.ScheduledTimestamp) ||
		held.HeldReviewStatus == nil || *held.HeldReviewStatus != ReviewNotRequired {
		t.Fatalf("held: cycle next %v, invoice %s held from %v at %v", c.NextAction, held.ReviewStatus, held.HeldReviewStatus, held.HeldChargeAt)
	}
	if n := w.run(at("2026-02-16T00:00:00Z")); n != 0 {
		t.Fatalf("%d cycles moved while the invoice was held", n)
	}
	released := at("2026-02-17T09:30:00Z")
	w.act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.ReleaseInvoice(ctx, tx, w.biz, released, inv.ID, "key-test", InvoiceActionParams{})
		return err
	})
	c = w.cycle(p, 1)
	inv = w.invoice(c)
	if c.NextAction == nil || *c.NextAction != ActionCharge || !c.NextActionAt.Equal(released) || inv.ReviewStatus != ReviewNotRequired ||
		inv.HeldChargeAt != nil || inv.HeldReviewStatus != nil {
		t.Fatalf("released: next %v at %v, invoice %s", c.NextAction, c.NextActionAt, inv.ReviewStatus)
	}
	if got := []string{inv.Audit[1].Action, inv.Audit[2].Action}; got[0] != "held" || got[1] != "released" || inv.Audit[2].Actor != "key-test" {
		t.Fatalf("audit %v", got)
	}
}

// TestCancellingAFixedCycle voids its invoice, whichever way the cycle is
// cancelled: voiding the invoice (the plan moves on), cancelling the cycle,
// or deactivating the plan. The usage stays billed by the void invoice.
func TestCancellingAFixedCycle(t *testing.T) {
	w := newWorld(t)
	voided := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	cancelled := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	deactivated := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.ingest(at("2026-02-05T00:00:00Z"), event{id: "k1", meter: "kwh", qty: "30", ts: at("2026-02-03T00:00:00Z")})
	w.run(at("2026-02-14T00:00:00Z"))
	now := at("2026-02-14T12:00:00Z")

	c := w.cycle(voided, 1)
	w.act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.VoidInvoice(ctx, tx, w.biz, now, *c.InvoiceID, "key-test", InvoiceActionParams{})
		return err
	})
	c = w.cycle(voided, 1)
	next := w.cycle(voided, 2)
	if c.Status != CycleStatusCancelled || c.NextAction != nil || w.invoice(c).Status != InvoiceStatusVoid ||
		!next.UsageWindowStart.Equal(c.UsageWindowEnd) {
		t.Fatalf("void: cycle %s, invoice %s, next window from %v", c.Status, w.invoice(c).Status, next.UsageWindowStart)
	}

	c = w.cycle(cancelled, 1)
	w.act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.CancelCycle(ctx, tx, w.biz, now, cancelled.ID, c.ID)
		return err
	})
	if inv := w.invoice(c); inv.Status != InvoiceStatusVoid || inv.Number == nil || inv.Audit[len(inv.Audit)-1].Actor != ActorEngine {
		t.Fatalf("cancel: invoice %s %v", inv.Status, inv.Number)
	}

	w.act(func(ctx context.Context, tx bun.Tx) error {
		_, err := w.s.DeactivatePlan(ctx, tx, w.biz, now, deactivated.ID)
		return err
	})
	if inv := w.invoice(w.cycle(deactivated, 1)); inv.Status != InvoiceStatusVoid || inv.VoidedAt == nil || !inv.VoidedAt.Equal(now) {
		t.Fatalf("deactivate: invoice %s", inv.Status)
	}
	var voidedEvents int
	if err := w.db.Bun.NewSelect().Table("events").ColumnExpr("count(*)").Where("business_id = ?", w.biz.ID).
		Where("type = ?", outbox.InvoiceVoided).Scan(w.ctx, &voidedEvents); err != nil {
		t.Fatal(err)
	}
	if voidedEvents != 3 {
		t.Fatalf("%d invoice.voided events, want 3", voidedEvents)
	}
	var billedByVoid int
	if err := w.db.Bun.NewSelect().Table("usage_events").ColumnExpr("count(*)").Where("business_id = ?", w.biz.ID).
		Where("billed_cycle_id IS NOT NULL").Scan(w.ctx, &billedByVoid); err != nil || billedByVoid != 1 {
		t.Fatalf("%d events billed (%v), want the one, by a void invoice", billedByVoid, err)
	}
}

// TestCreditableBesideTheEnginesCreditNotes: what credit notes may still
// give back is what was paid less the earlier credit notes of finance;
// the engine's own (money taken beyond what the invoice owed, not in
// amount_paid) do not reduce it.
func TestCreditableBesideTheEnginesCreditNotes(t *testing.T) {
	inv := &Invoice{AmountPaid: dec("100000")}
	if got := inv.creditable(); !got.Equal(dec("100000")) {
		t.Fatalf("nothing credited: %s", got)
	}
	inv.CreditNotes = []*CreditNote{{Amount: dec("100000"), Actor: ActorEngine}}
	if got := inv.creditable(); !got.Equal(dec("100000")) {
		t.Fatalf("beside an excess payment's credit note: %s, want 100000", got)
	}
	inv.CreditNotes = append(inv.CreditNotes, &CreditNote{Amount: dec("60000"), Actor: "key_finance"},
		&CreditNote{Amount: dec("0.5"), Actor: "user_finance"})
	if got := inv.creditable(); !got.Equal(dec("39999.5")) {
		t.Fatalf("after finance's credit notes: %s, want 39999.5", got)
	}
}
