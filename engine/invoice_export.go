package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// exportPage is how many invoices the export reads at a time.
const exportPage = 500

// InvoiceColumns and LineColumns are the header records of the two CSV
// exports (docs/engine.md, "Exports").
var (
	InvoiceColumns = []string{"id", "number", "status", "review_status", "review_reasons", "customer_id", "customer_reference_id",
		"plan_id", "cycle_id", "currency", "period_start", "period_end", "due_at", "finalized_at", "subtotal", "total", "amount_paid",
		"amount_due", "amount_credited", "paid_at", "voided_at", "created"}
	LineColumns = []string{"invoice_id", "invoice_number", "invoice_status", "customer_id", "customer_reference_id", "currency",
		"position", "kind", "meter", "description", "quantity", "unit_amount", "amount", "late_cycle_id", "event_count",
		"first_event_at", "last_event_at", "window_start", "window_end", "reason", "created_by"}
)

// exportRow is an invoice with its customer's reference.
type exportRow struct {
	Invoice     `bun:",extend"`
	CustomerRef string `bun:"customer_reference_id"`
}

// ExportInvoices writes the business's invoices that f selects (its page
// is ignored), oldest first, as CSV records through emit: first the header,
// then one record per invoice, or with lines, one per invoice line. The
// filter is checked and the first page read before anything is emitted,
// so that an error answers cleanly; one later cuts the records short. Amounts are
// exact, in the currency's decimals; times RFC 3339 UTC; text cells that a
// spreadsheet would take for a formula (starting with =, +, -, @) are
// prefixed with an apostrophe. Invoices are read exportPage at a time.
func (s *Service) ExportInvoices(ctx context.Context, db bun.IDB, businessID string, f InvoiceFilter, lines bool, emit func([]string) error) error {
	if err := f.check(ctx, db, businessID); err != nil {
		return err
	}
	header := InvoiceColumns
	if lines {
		header = LineColumns
	}
	after := ""
	for {
		var rows []*exportRow
		q := f.apply(businessID, db.NewSelect().Model(&rows).ColumnExpr("invoice.*").ColumnExpr("cu.reference_id AS customer_reference_id").
			Join("JOIN customers AS cu ON cu.business_id = invoice.business_id AND cu.id = invoice.customer_id"))
		if after != "" {
			q = q.Where("invoice.id > ?", after)
		}
		if err := q.OrderExpr("invoice.id").Limit(exportPage).Scan(ctx); err != nil {
			return fmt.Errorf("export invoices: %w", err)
		}
		if header != nil {
			// Only once the first page is read: an export that fails
			// before it has emitted nothing.
			if err := emit(header); err != nil {
				return err
			}
			header = nil
		}
		if len(rows) == 0 {
			return nil
		}
		invs := make([]*Invoice, len(rows))
		for i, r := range rows {
			invs[i] = &r.Invoice
		}
		if err := loadDetails(ctx, db, invs...); err != nil {
			return err
		}
		for _, r := range rows {
			if err := emitInvoice(&r.Invoice, r.CustomerRef, lines, emit); err != nil {
				return err
			}
		}
		after = rows[len(rows)-1].ID
	}
}

func emitInvoice(inv *Invoice, customerRef string, lines bool, emit func([]string) error) error {
	money := func(d decimal.Decimal) string { return d.StringFixed(inv.Currency.Exponent()) }
	number := ""
	if inv.Number != nil {
		number = *inv.Number
	}
	if !lines {
		credited := decimal.Zero
		for _, cn := range inv.CreditNotes {
			credited = credited.Add(cn.Amount)
		}
		return emit([]string{inv.ID, number, inv.Status, inv.ReviewStatus, strings.Join(inv.ReviewReasons, ";"), inv.CustomerID,
			cell(customerRef), inv.PlanID, inv.CycleID, string(inv.Currency), billing.FormatTime(inv.PeriodStart), billing.FormatTime(inv.PeriodEnd),
			billing.FormatTime(inv.DueAt), timeCell(inv.FinalizedAt), money(inv.Subtotal), money(inv.Total), money(inv.AmountPaid),
			money(inv.AmountDue()), money(credited), timeCell(inv.PaidAt), timeCell(inv.VoidedAt), billing.FormatTime(inv.Created)})
	}
	for _, l := range inv.Lines {
		rec := []string{inv.ID, number, inv.Status, inv.CustomerID, cell(customerRef), string(inv.Currency), strconv.Itoa(l.Position),
			l.Kind, text(l.Meter), cell(l.Description), nullDec(l.Quantity), nullDec(l.UnitAmount), money(l.Amount), text(l.LateCycleID),
			"", "", "", "", "", cell(text(l.Reason)), cell(text(l.CreatedBy))}
		if u := l.Usage; u != nil {
			rec[14], rec[15], rec[16], rec[17], rec[18] = strconv.FormatInt(u.EventCount, 10), text(u.FirstEventAt), text(u.LastEventAt),
				u.WindowStart, u.WindowEnd
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

func text(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func timeCell(t *time.Time) string {
	if t == nil {
		return ""
	}
	return billing.FormatTime(*t)
}

func nullDec(d decimal.NullDecimal) string {
	if !d.Valid {
		return ""
	}
	return d.Decimal.String()
}

// cell makes text safe for a spreadsheet: a cell starting with a formula
// character is prefixed with an apostrophe, so it is shown, not evaluated.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
