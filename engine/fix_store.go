package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// storeFixings numbers the invoices that need no review (finalized as they
// are written), writes the batch's invoices, lines and audit entries,
// moves each cycle on, and emits recurring.cycle.amount_fixed and
// invoice.finalized or invoice.needs_review, each kind of row with one
// statement. The year's invoice counter stays locked until the batch
// commits, so batches of one business finalize one after the other (the
// engine runs one business's due work in one worker by default; see
// Config.DueWorkers).
func (s *Service) storeFixings(ctx context.Context, tx bun.IDB, businessID string, now time.Time, fs []*fixing) error {
	invs := make([]*Invoice, len(fs))
	cs := make([]*Cycle, len(fs))
	audit := make([]*AuditEntry, len(fs))
	var lines []*InvoiceLine
	var open []*Invoice
	for i, f := range fs {
		inv, c := f.invoice, f.cycle
		invs[i], cs[i] = inv, c
		inv.Lines = f.lines
		lines = append(lines, f.lines...)
		c.Amount, c.AmountFixedAt, c.InvoiceID, c.Updated = decimal.NewNullDecimal(inv.Total), &now, &inv.ID, now
		c.NextAction, c.NextActionAt = nil, nil
		action := "needs_review"
		if inv.ReviewStatus == ReviewNotRequired {
			action = "finalized"
			c.NextAction, c.NextActionAt = ptr(ActionCharge), &c.ScheduledTimestamp
			open = append(open, inv)
		}
		audit[i] = &AuditEntry{ID: billing.NewID(prefixInvoiceAudit), BusinessID: businessID, InvoiceID: inv.ID, Action: action,
			Actor: ActorEngine, Created: now}
		note := fmt.Sprintf("amount fixed at %s", billing.Money{Amount: inv.Total, Currency: inv.Currency})
		if len(f.notes) > 0 {
			note += "; " + strings.Join(f.notes, "; ")
		}
		audit[i].Note = &note
		inv.Audit = []*AuditEntry{audit[i]}
	}
	if err := number(ctx, tx, businessID, now, open); err != nil {
		return err
	}
	if _, err := tx.NewInsert().Model(&invs).Exec(ctx); err != nil {
		return fmt.Errorf("insert %d invoices: %w", len(invs), err)
	}
	if _, err := tx.NewInsert().Model(&lines).Exec(ctx); err != nil {
		return fmt.Errorf("insert %d invoice lines: %w", len(lines), err)
	}
	if _, err := tx.NewInsert().Model(&audit).Exec(ctx); err != nil {
		return fmt.Errorf("insert %d invoice audit entries: %w", len(audit), err)
	}
	if _, err := tx.NewUpdate().Model(&cs).Column("amount", "amount_fixed_at", "invoice_id", "next_action", "next_action_at", "updated").
		Bulk().Exec(ctx); err != nil {
		return fmt.Errorf("record the amounts of %d cycles: %w", len(cs), err)
	}
	events := make([]*outbox.Event, 0, 2*len(fs))
	for _, f := range fs {
		e, err := outbox.New(businessID, outbox.RecurringCycleAmountFixed, now, f.cycle)
		if err != nil {
			return err
		}
		kind := outbox.InvoiceNeedsReview
		if f.invoice.Status == InvoiceStatusOpen {
			kind = outbox.InvoiceFinalized
		}
		ie, err := outbox.New(businessID, kind, now, f.invoice)
		if err != nil {
			return err
		}
		events = append(events, e, ie)
	}
	return outbox.EmitAll(ctx, tx, events)
}
