package engine

import (
	"context"
	"fmt"

	"github.com/shopspring/decimal"
	"github.com/uptrace/bun"
)

// Violations checks the guarantees of SPEC §8 over everything business
// businessID has billed, and describes each breach it finds; none means
// the business's books hold. Every scenario test runs it at its end. It
// reads whole tables of the business, so it is a check for tests and for
// an operator's investigation, not for a request path.
//
// What it checks:
//   - no cycle was paid twice: at most one succeeded attempt, and at most
//     one succeeded payment across its attempts and its invoice's payments;
//   - every invoice's total is the sum of its lines and its cycle's amount,
//     and the cycle points at it;
//   - what was paid is at most the total, all of it when PAID, and equal to
//     the succeeded payments made for it less the refunds the engine
//     recorded as credit notes;
//   - every event billed appears in exactly one line's usage evidence of the
//     cycle that billed it (events are billed at most once by construction:
//     one billed_cycle_id per event);
//   - invoice numbers run 1..N per business and year, none skipped.
func Violations(ctx context.Context, db bun.IDB, businessID string) ([]string, error) {
	return violations(ctx, db, businessID, true)
}

// violations is Violations; without receipts, it does not compare what
// invoices say was paid with the payments recorded (the fixing tests mark
// cycles paid without a payment, to look at fixing alone).
func violations(ctx context.Context, db bun.IDB, businessID string, receipts bool) ([]string, error) {
	var out []string

	var twice []string
	if err := db.NewRaw(`
		WITH paid AS (
			SELECT a.cycle_id, p.id FROM cycle_attempts a
			JOIN payment_requests pr ON pr.business_id = a.business_id AND pr.provider_key = a.provider_key
			JOIN payments p ON p.payment_request_id = pr.id AND p.status = 'SUCCEEDED'
			WHERE a.business_id = ?
			UNION ALL
			SELECT i.cycle_id, p.id FROM invoice_payments ip JOIN invoices i ON i.id = ip.invoice_id
			JOIN payment_requests pr ON pr.business_id = ip.business_id AND pr.provider_key = ip.provider_key
			JOIN payments p ON p.payment_request_id = pr.id AND p.status = 'SUCCEEDED'
			WHERE ip.business_id = ?)
		SELECT cycle_id FROM paid GROUP BY cycle_id HAVING count(*) > 1
		UNION
		SELECT cycle_id FROM cycle_attempts WHERE business_id = ? AND status = 'SUCCEEDED' GROUP BY cycle_id HAVING count(*) > 1`,
		businessID, businessID, businessID).Scan(ctx, &twice); err != nil {
		return nil, fmt.Errorf("check payments: %w", err)
	}
	for _, id := range twice {
		out = append(out, fmt.Sprintf("cycle %s was paid twice", id))
	}

	var invoices []struct {
		ID       string              `bun:"id"`
		Status   string              `bun:"status"`
		Total    decimal.Decimal     `bun:"total"`
		Paid     decimal.Decimal     `bun:"amount_paid"`
		Lines    decimal.Decimal     `bun:"lines"`
		Received decimal.Decimal     `bun:"received"`
		Amount   decimal.NullDecimal `bun:"amount"`
		Points   bool                `bun:"points"`
	}
	if err := db.NewRaw(`
		SELECT i.id, i.status, i.total, i.amount_paid, c.amount, c.invoice_id IS NOT DISTINCT FROM i.id AS points,
			coalesce((SELECT sum(amount) FROM invoice_lines l WHERE l.invoice_id = i.id), 0) AS lines,
			coalesce((SELECT sum(pr.request_amount) FROM payment_requests pr JOIN payments p ON p.payment_request_id = pr.id AND p.status = 'SUCCEEDED'
				WHERE pr.business_id = i.business_id AND (pr.provider_key IN (SELECT provider_key FROM cycle_attempts WHERE cycle_id = i.cycle_id)
					OR pr.provider_key IN (SELECT provider_key FROM invoice_payments WHERE invoice_id = i.id))), 0)
			- coalesce((SELECT sum(amount) FROM credit_notes cn WHERE cn.invoice_id = i.id AND cn.actor = 'engine'), 0) AS received
		FROM invoices i JOIN recurring_cycles c ON c.id = i.cycle_id
		WHERE i.business_id = ?`, businessID).Scan(ctx, &invoices); err != nil {
		return nil, fmt.Errorf("check invoices: %w", err)
	}
	for _, i := range invoices {
		if !i.Total.Equal(i.Lines) || !i.Amount.Valid || !i.Amount.Decimal.Equal(i.Total) || !i.Points {
			out = append(out, fmt.Sprintf("invoice %s: total %s, lines %s, cycle amount %v, cycle points at it: %v", i.ID, i.Total, i.Lines,
				i.Amount.Decimal, i.Points))
		}
		if i.Paid.GreaterThan(i.Total) || (i.Status == InvoiceStatusPaid && !i.Paid.Equal(i.Total)) || (receipts && !i.Received.Equal(i.Paid)) {
			out = append(out, fmt.Sprintf("invoice %s %s: total %s, paid %s, received %s", i.ID, i.Status, i.Total, i.Paid, i.Received))
		}
	}

	var counts []struct {
		CycleID string `bun:"cycle_id"`
		Billed  int64  `bun:"billed"`
		Shown   int64  `bun:"shown"`
	}
	if err := db.NewRaw(`
		WITH billed AS (SELECT billed_cycle_id AS cycle_id, count(*) AS n FROM usage_events WHERE business_id = ? AND billed_cycle_id IS NOT NULL GROUP BY 1),
		shown AS (SELECT i.cycle_id, sum((l.usage->>'event_count')::bigint) AS n FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
			WHERE i.business_id = ? AND l.usage IS NOT NULL GROUP BY 1)
		SELECT coalesce(b.cycle_id, s.cycle_id) AS cycle_id, coalesce(b.n, 0) AS billed, coalesce(s.n, 0) AS shown
		FROM billed b FULL JOIN shown s ON s.cycle_id = b.cycle_id WHERE coalesce(b.n, 0) <> coalesce(s.n, 0)`,
		businessID, businessID).Scan(ctx, &counts); err != nil {
		return nil, fmt.Errorf("check billed events: %w", err)
	}
	for _, c := range counts {
		out = append(out, fmt.Sprintf("cycle %s billed %d events, its invoice's lines show %d", c.CycleID, c.Billed, c.Shown))
	}

	var gaps []struct {
		Year  int `bun:"year"`
		Last  int `bun:"last"`
		Count int `bun:"n"`
		Max   int `bun:"max"`
	}
	if err := db.NewRaw(`
		SELECT n.year, n.last, count(i.id) AS n, coalesce(max(substring(i.number from '[0-9]+$')::int), 0) AS max
		FROM invoice_numbers n LEFT JOIN invoices i ON i.business_id = n.business_id AND i.number_year = n.year
		WHERE n.business_id = ? GROUP BY n.year, n.last
		HAVING count(i.id) <> n.last OR coalesce(max(substring(i.number from '[0-9]+$')::int), 0) <> n.last`,
		businessID).Scan(ctx, &gaps); err != nil {
		return nil, fmt.Errorf("check invoice numbers: %w", err)
	}
	for _, g := range gaps {
		out = append(out, fmt.Sprintf("%d invoice numbers given in %d, %d invoices numbered up to %d", g.Last, g.Year, g.Count, g.Max))
	}
	return out, nil
}
