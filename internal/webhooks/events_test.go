package webhooks_test

import (
	"strings"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
)

// TestEventsListedByIndex: GET /events of a small business beside a large
// one, and of a rare type, pages newest first in id order by reading an
// index that leads with the business (and the type), not the whole table
// backwards (migration 20261201000011), and the pages are right.
func TestEventsListedByIndex(t *testing.T) {
	w := newWorld(t)
	big, small := w.business(business.ModeSandbox), w.business(business.ModeSandbox)
	var events []*outbox.Event
	for i := range 3000 {
		e, err := outbox.New(big.ID, outbox.InvoicePaid, w.now(big), map[string]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if err := outbox.EmitAll(w.ctx, w.db.Bun, events); err != nil {
		t.Fatal(err)
	}
	rare := w.emit(big, outbox.PaymentTokenExpiry, map[string]any{})
	var mine []string
	for range 3 {
		mine = append(mine, w.emit(small, outbox.InvoicePaid, map[string]any{}).ID)
	}
	if _, err := w.db.Pool.Exec(w.ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	page, more, err := webhooks.ListEvents(w.ctx, w.db.Bun, small.ID, webhooks.EventFilter{Page: billing.Page{Limit: 2}})
	if err != nil || !more || len(page) != 2 || page[0].ID != mine[2] || page[1].ID != mine[1] {
		t.Fatalf("first page of the small business: %d events, more %v (%v)", len(page), more, err)
	}
	page, _, err = webhooks.ListEvents(w.ctx, w.db.Bun, big.ID, webhooks.EventFilter{Type: outbox.PaymentTokenExpiry, Page: billing.Page{Limit: 10}})
	if err != nil || len(page) != 1 || page[0].ID != rare.ID {
		t.Fatalf("the rare type: %d events (%v)", len(page), err)
	}
	for _, c := range []struct{ index, where string }{
		{"events_business_id", "business_id = '" + small.ID + "'"},
		{"events_business_type_id", "business_id = '" + big.ID + "' AND type = '" + outbox.PaymentTokenExpiry + "'"},
	} {
		var plan []string
		rows, err := w.db.Pool.Query(w.ctx, "EXPLAIN SELECT * FROM events WHERE "+c.where+" ORDER BY id DESC LIMIT 11")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if !strings.Contains(strings.Join(plan, "\n"), c.index) {
			t.Errorf("%s: plan\n%s\nwant %s", c.where, strings.Join(plan, "\n"), c.index)
		}
	}
}
