package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// InvoiceStatuses lists the invoice statuses, for filters.
var InvoiceStatuses = []string{InvoiceStatusDraft, InvoiceStatusOpen, InvoiceStatusPaid, InvoiceStatusUncollectible, InvoiceStatusVoid}

// ReviewStatuses lists the review statuses, for filters.
var ReviewStatuses = []string{ReviewNotRequired, ReviewNeedsReview, ReviewApproved, ReviewOnHold}

// InvoiceFilter selects invoices (GET /invoices and its CSV export). Zero
// fields select everything.
type InvoiceFilter struct {
	// Status is one of InvoiceStatuses.
	Status string
	// CustomerID and PlanID keep the invoices of a customer or plan of the
	// business (another business's is DATA_NOT_FOUND).
	CustomerID string
	PlanID     string
	// PeriodFrom and PeriodTo keep the invoices whose period (the usage
	// window [start, end)) overlaps [PeriodFrom, PeriodTo): the period
	// ends after PeriodFrom and starts before PeriodTo.
	PeriodFrom *time.Time
	PeriodTo   *time.Time
	// NeedsReview, when set, keeps the invoices that are NEEDS_REVIEW
	// (true) or that are not (false).
	NeedsReview *bool
	// ReviewStatus is one of ReviewStatuses.
	ReviewStatus string
	Page         billing.Page
}

// check checks the filter's customer and plan: another business's, or an
// unknown one, is DATA_NOT_FOUND.
func (f InvoiceFilter) check(ctx context.Context, db bun.IDB, businessID string) error {
	if f.CustomerID != "" {
		if _, err := customers.Get(ctx, db, businessID, f.CustomerID); err != nil {
			return err
		}
	}
	if f.PlanID != "" {
		if _, err := getPlan(ctx, db, businessID, f.PlanID, false); err != nil {
			return err
		}
	}
	return nil
}

// apply adds the filter's conditions (not its page) to q, a query of the
// business's invoices aliased "invoice".
func (f InvoiceFilter) apply(businessID string, q *bun.SelectQuery) *bun.SelectQuery {
	q = q.Where("invoice.business_id = ?", businessID)
	if f.CustomerID != "" {
		q = q.Where("invoice.customer_id = ?", f.CustomerID)
	}
	if f.PlanID != "" {
		q = q.Where("invoice.plan_id = ?", f.PlanID)
	}
	if f.Status != "" {
		q = q.Where("invoice.status = ?", f.Status)
	}
	if f.ReviewStatus != "" {
		q = q.Where("invoice.review_status = ?", f.ReviewStatus)
	}
	if f.NeedsReview != nil {
		op := "="
		if !*f.NeedsReview {
			op = "<>"
		}
		q = q.Where("invoice.review_status "+op+" ?", ReviewNeedsReview)
	}
	if f.PeriodFrom != nil {
		q = q.Where("invoice.period_end > ?", *f.PeriodFrom)
	}
	if f.PeriodTo != nil {
		q = q.Where("invoice.period_start < ?", *f.PeriodTo)
	}
	return q
}

// ListInvoices returns one page of the business's invoices that f
// selects, newest first, with their lines, audit trails and credit notes,
// and whether more follow.
func (s *Service) ListInvoices(ctx context.Context, db bun.IDB, businessID string, f InvoiceFilter) ([]*Invoice, bool, error) {
	if err := f.check(ctx, db, businessID); err != nil {
		return nil, false, err
	}
	var rows []*Invoice
	q := f.apply(businessID, db.NewSelect().Model(&rows))
	if err := postgres.Paginate(q, "invoice.id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list invoices: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	return rows, more, loadDetails(ctx, db, rows...)
}

// GetInvoice returns the business's invoice id with its lines, audit trail
// and credit notes, or DATA_NOT_FOUND (also for a malformed id and another
// business's invoice).
func (s *Service) GetInvoice(ctx context.Context, db bun.IDB, businessID, id string) (*Invoice, error) {
	inv, err := getInvoice(ctx, db, businessID, id, false)
	if err != nil {
		return nil, err
	}
	return inv, loadDetails(ctx, db, inv)
}

func getInvoice(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*Invoice, error) {
	if !billing.ValidID(billing.PrefixInvoice, id) {
		return nil, billing.NotFound("invoice")
	}
	inv := new(Invoice)
	q := db.NewSelect().Model(inv).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	if err := scanOne(ctx, q, "invoice"); err != nil {
		return nil, err
	}
	return inv, nil
}

// The look-ups of loadDetails (postgres.Statement).
var (
	// invoiceLinesSQL reads the lines of the invoices $1.
	invoiceLinesSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*InvoiceLine)(nil)).Where("invoice_id = ANY($1::text[])").OrderExpr("invoice_id, position").String()
	})
	// invoiceAuditSQL reads the audit trails of the invoices $1.
	invoiceAuditSQL = postgres.NewStatement(func(db bun.IDB) string {
		return db.NewSelect().Model((*AuditEntry)(nil)).ModelTableExpr(`unnest($1::text[]) AS k(id),
			LATERAL (SELECT * FROM invoice_audit WHERE invoice_id = k.id OFFSET 0) AS audit_entry`).
			OrderExpr("audit_entry.invoice_id, audit_entry.created, audit_entry.id").String()
	})
)

// loadDetails reads the lines (in order), audit trails (oldest first) and
// credit notes of invs, with one query each.
func loadDetails(ctx context.Context, db bun.IDB, invs ...*Invoice) error {
	if len(invs) == 0 {
		return nil
	}
	ids := make([]string, len(invs))
	byID := make(map[string]*Invoice, len(invs))
	for i, inv := range invs {
		ids[i], byID[inv.ID] = inv.ID, inv
		inv.Lines, inv.Audit, inv.CreditNotes = nil, nil, nil
	}
	var lines []*InvoiceLine
	if err := invoiceLinesSQL.Scan(ctx, db, &lines, ids); err != nil {
		return fmt.Errorf("read invoice lines: %w", err)
	}
	for _, l := range lines {
		inv := byID[l.InvoiceID]
		inv.Lines = append(inv.Lines, l)
	}
	// The audit trails are read one index probe per invoice (LATERAL …
	// OFFSET 0 keeps the subquery from being merged into a join): as a
	// plain "invoice_id IN (…)", the planner, with no statistics of a
	// table that was empty when last analyzed, read the whole table for
	// every batch that settled (3.2 million rows at 100,000 cycles).
	var audit []*AuditEntry
	if err := invoiceAuditSQL.Scan(ctx, db, &audit, ids); err != nil {
		return fmt.Errorf("read invoice audit trails: %w", err)
	}
	for _, a := range audit {
		inv := byID[a.InvoiceID]
		inv.Audit = append(inv.Audit, a)
	}
	var notes []*CreditNote
	if err := db.NewSelect().Model(&notes).Where("invoice_id IN (?)", bun.In(ids)).OrderExpr("invoice_id, id").Scan(ctx); err != nil {
		return fmt.Errorf("read credit notes: %w", err)
	}
	for _, cn := range notes {
		inv := byID[cn.InvoiceID]
		inv.CreditNotes = append(inv.CreditNotes, cn)
	}
	return nil
}
