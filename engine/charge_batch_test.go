package engine

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
)

// TestChargingInSetsWritesWhatOneByOneWrites: a business whose plans take
// every road through charging — plain first charges and retries (charged
// in sets), a first token declined and the next one charged (the action
// after a failure, one by one), a cancelled first token (left to
// openAction), an attempt that fails and is retried, a plan that ends
// with its last cycle (settled one by one) — ends with the same cycles,
// attempts, invoices, audit trails, payments, events and notifications
// whether charged in sets or every cycle one by one.
func TestChargingInSetsWritesWhatOneByOneWrites(t *testing.T) {
	sets, oneByOne := chargeRoads(t, false), chargeRoads(t, true)
	if len(sets) < 40 {
		t.Fatalf("the ledger has only %d lines:\n%s", len(sets), strings.Join(sets, "\n"))
	}
	for i := 0; i < max(len(sets), len(oneByOne)); i++ {
		var a, b string
		if i < len(sets) {
			a = sets[i]
		}
		if i < len(oneByOne) {
			b = oneByOne[i]
		}
		if a != b {
			t.Errorf("line %d:\n in sets     %s\n one by one  %s", i, a, b)
		}
	}
}

// chargeRoads runs the scenario of TestChargingInSetsWritesWhatOneByOneWrites
// in a world of its own and returns its ledger.
func chargeRoads(t *testing.T, oneByOne bool) []string {
	w := newChargeWorld(t)
	w.s.oneByOne = oneByOne
	good, other, failing, cancelled := w.token(""), w.token(""), w.token("always_fail"), w.token("")
	untilMarch := w.token("fail_until:2026-02-20T00:00:00Z")
	last := w.planBody(other)
	last["schedule"].(map[string]any)["total_recurrence"] = 1
	quiet := w.planBody(good)
	delete(quiet, "notification_config")
	ps := []*Plan{
		w.plan(w.planBody(good)), w.plan(w.planBody(other)), w.plan(quiet), w.plan(w.planBody(failing, good)),
		w.plan(w.planBody(cancelled, other)), w.plan(w.planBody(untilMarch)), w.plan(last), w.plan(w.planBody(failing)),
	}
	if _, err := w.pay.CancelToken(w.ctx, w.db.Bun, w.business(), w.now, cancelled); err != nil {
		t.Fatal(err)
	}
	w.to("2026-02-15T08:00:00Z")
	w.to("2026-02-18T08:00:00Z")
	w.to("2026-02-21T08:00:00Z")
	w.to("2026-03-15T08:00:00Z")
	return w.ledger(ps)
}

// generatedID matches the ids that differ between two runs of one scenario.
var generatedID = regexp.MustCompile(`\b[a-z]+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|pay_[0-9a-f]+|\b[a-z]+-[0-9]+\b`)

// ledger describes what charging wrote for plans ps, without the ids and
// in an order of its own, so that two runs of one scenario compare.
func (w *chargeWorld) ledger(ps []*Plan) []string {
	w.t.Helper()
	var out []string
	mask := func(s string) string { return generatedID.ReplaceAllString(s, "<id>") }
	for i, p := range ps {
		p = w.planNow(p)
		out = append(out, fmt.Sprintf("plan %d: %s, %d cycles", i, p.Status, p.RecurringCycleCount))
		var cs []*Cycle
		if err := w.db.Bun.NewSelect().Model(&cs).Where("plan_id = ?", p.ID).Order("cycle_number").Scan(w.ctx); err != nil {
			w.t.Fatal(err)
		}
		if err := loadAttempts(w.ctx, w.db.Bun, cs...); err != nil {
			w.t.Fatal(err)
		}
		for _, c := range cs {
			out = append(out, fmt.Sprintf("  cycle %d: %s, %d+%d attempts, next %v at %v, scheduled %s, window %s..%s",
				c.CycleNumber, c.Status, c.AttemptCount, c.ForcedAttemptCount, deref(c.NextAction), deref(formatOptional(c.NextActionAt)),
				billing.FormatTime(c.ScheduledTimestamp), billing.FormatTime(c.UsageWindowStart), billing.FormatTime(c.UsageWindowEnd)))
			for _, a := range c.attempts {
				out = append(out, fmt.Sprintf("    attempt %d.%d %s %s %s %s token %s request %t retry %v at %s", a.AttemptNumber, a.ActionNumber,
					a.Type, a.Status, deref(a.FailureCode), a.Amount, w.tokenRank(p, a.PaymentTokenID), a.PaymentRequestID != nil,
					deref(formatOptional(a.NextRetryTimestamp)), billing.FormatTime(a.Created)))
				if a.PaymentRequestID != nil {
					out = append(out, w.requestLine(*a.PaymentRequestID))
				}
			}
			if c.InvoiceID == nil {
				continue
			}
			inv := w.invoiceOf(c)
			if err := loadDetails(w.ctx, w.db.Bun, inv); err != nil {
				w.t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("    invoice %s %s paid %s at %v", inv.Status, inv.Total, inv.AmountPaid, deref(formatOptional(inv.PaidAt))))
			for _, e := range inv.Audit {
				out = append(out, fmt.Sprintf("      audit %s by %s: %s at %s", e.Action, e.Actor, mask(deref(e.Note)), billing.FormatTime(e.Created)))
			}
		}
	}
	var events []struct {
		Type string `bun:"type"`
		Data string `bun:"data"`
	}
	if err := w.db.Bun.NewRaw("SELECT type, data::text AS data FROM events WHERE business_id = ?", w.biz.ID).Scan(w.ctx, &events); err != nil {
		w.t.Fatal(err)
	}
	var lines []string
	for _, e := range events {
		lines = append(lines, "event "+e.Type+" "+mask(e.Data))
	}
	var ns []*notify.Notification
	if err := w.db.Bun.NewSelect().Model(&ns).Where("business_id = ?", w.biz.ID).Scan(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	for _, n := range ns {
		lines = append(lines, fmt.Sprintf("notification %s/%s %s %s", n.Kind, n.Channel, n.Status, mask(n.Body)))
	}
	sort.Strings(lines)
	return append(out, lines...)
}

// tokenRank is the rank of token id among plan p's payment methods.
func (w *chargeWorld) tokenRank(p *Plan, id *string) string {
	if id == nil {
		return "none"
	}
	for _, m := range p.PaymentMethods {
		if m.PaymentTokenID == *id {
			return fmt.Sprint(m.Rank)
		}
	}
	return "other"
}

// requestLine describes payment request id and its payment.
func (w *chargeWorld) requestLine(id string) string {
	w.t.Helper()
	pr, err := w.pay.Get(w.ctx, w.db.Bun, w.biz.ID, id)
	if err != nil {
		w.t.Fatal(err)
	}
	var py []struct {
		Status   string  `bun:"status"`
		Failure  *string `bun:"failure_code"`
		Amount   string  `bun:"amount"`
		Captured bool    `bun:"captured"`
	}
	if err := w.db.Bun.NewRaw("SELECT status, failure_code, amount::text AS amount, captured_at IS NOT NULL AS captured FROM payments WHERE payment_request_id = ?",
		id).Scan(w.ctx, &py); err != nil {
		w.t.Fatal(err)
	}
	raw, err := pr.MarshalJSON()
	if err != nil {
		w.t.Fatal(err)
	}
	line := "      request " + generatedID.ReplaceAllString(string(raw), "<id>")
	for _, p := range py {
		line += fmt.Sprintf("; payment %s %s %s captured %t", p.Status, deref(p.Failure), p.Amount, p.Captured)
	}
	return line
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
