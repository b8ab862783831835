package engine

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReviewRules checks each review rule on its own, with a control that
// does not fire: the invoice is held (DRAFT, NEEDS_REVIEW, its cycle not
// to be charged) with exactly the reason expected, or finalized.
func TestReviewRules(t *testing.T) {
	tests := []struct {
		name   string
		policy any
		kwh    string // cycle 1's usage
		reason string // "" for none
	}{
		{"MANUAL always holds", "MANUAL", "10", reasonManual},
		{"AUTO without thresholds does not", "AUTO", "10", ""},
		{"a total above max_total holds", map[string]any{"mode": "AUTO", "max_total": 109999}, "10", reasonTotalAboveMax},
		{"a total at max_total does not", map[string]any{"mode": "AUTO", "max_total": 110000}, "10", ""},
		{"no history: any usage passes", map[string]any{"mode": "AUTO", "usage_factor": 1}, "100000", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			body := w.planBody()
			body["review_policy"] = tc.policy
			p := w.plan(body, at("2026-02-01T10:00:00Z"))
			w.ingest(at("2026-02-05T00:00:00Z"), event{id: "k1", meter: "kwh", qty: tc.kwh, ts: at("2026-02-03T00:00:00Z")})
			w.run(at("2026-02-14T00:00:00Z"))
			c := w.cycle(p, 1)
			w.wantReview(c, tc.reason)
		})
	}
}

// wantReview checks that cycle c's invoice was held for reason, or
// finalized and its charge scheduled when reason is "".
func (w *world) wantReview(c *Cycle, reasons ...string) {
	w.t.Helper()
	inv := w.invoice(c)
	if len(reasons) == 1 && reasons[0] == "" {
		if inv.Status != InvoiceStatusOpen || inv.ReviewStatus != ReviewNotRequired || len(inv.ReviewReasons) != 0 ||
			c.NextAction == nil || *c.NextAction != ActionCharge {
			w.t.Fatalf("want finalized and chargeable: %s %s %v, next %v", inv.Status, inv.ReviewStatus, inv.ReviewReasons, c.NextAction)
		}
		return
	}
	if inv.Status != InvoiceStatusDraft || inv.Number != nil || inv.ReviewStatus != ReviewNeedsReview ||
		!sameSet(inv.ReviewReasons, reasons...) || c.NextAction != nil {
		w.t.Fatalf("want held for %v: %s %s %v, next %v", reasons, inv.Status, inv.ReviewStatus, inv.ReviewReasons, c.NextAction)
	}
	if a := inv.Audit[0]; a.Action != "needs_review" || a.Actor != ActorEngine || a.Note == nil {
		w.t.Fatalf("audit %+v", a)
	}
}

// TestReviewUsageHistory compares a meter's usage with the mean of its
// previous three cycles with usage (a cycle without usage does not count):
// above usage_factor times it, or below 1/usage_factor, holds.
func TestReviewUsageHistory(t *testing.T) {
	w := newWorld(t)
	body := w.planBody()
	body["review_policy"] = map[string]any{"mode": "AUTO", "usage_factor": 2}
	p := w.plan(body, at("2026-02-01T10:00:00Z"))
	month := func(n int) string { return []string{"", "02", "03", "04", "05", "06", "07", "08"}[n] }
	// Cycles 1–7 bill 100, nothing, 110, 90, 100, 201 and 65 kWh. Cycle 2's
	// nothing is below half of 100; it does not count in later means.
	// Cycle 6 compares 201 with the mean of 110, 90 and 100 (above twice
	// 100); cycle 7 compares 65 with the mean of 90, 100 and 201 (below
	// half of 130.33…).
	usage := []string{"100", "", "110", "90", "100", "201", "65"}
	want := []string{"", reasonUsageBelow, "", "", "", reasonUsageAbove, reasonUsageBelow}
	for i, q := range usage {
		n := i + 1
		fix := at("2026-" + month(n) + "-14T00:00:00Z")
		if q != "" {
			w.ingest(fix.Add(-48*time.Hour), event{id: "k" + month(n), meter: "kwh", qty: q, ts: fix.Add(-72 * time.Hour)})
		}
		w.run(fix)
		c := w.cycle(p, n)
		w.wantReview(c, want[i])
		if want[i] != "" {
			if note := *w.invoice(c).Audit[0].Note; !strings.Contains(note, "the mean of the previous") {
				w.t.Errorf("cycle %d note %q", n, note)
			}
			w.approve(w.invoice(c).ID, fix)
		}
		w.succeed(w.cycle(p, n), fix.Add(32*time.Hour))
	}
}

// TestDeadlineMissed fixes a cycle whose engine was down through its fix
// time: before the cycle's date it is fixed as usual (its audit trail says
// how late); from 00:00 UTC of the date it is held AMOUNT_DEADLINE_MISSED,
// never charged blind.
func TestDeadlineMissed(t *testing.T) {
	w := newWorld(t)
	late := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.run(at("2026-02-14T13:30:00Z"))
	c := w.cycle(late, 1)
	w.wantReview(c, "")
	inv := w.invoice(c)
	if note := *inv.Audit[0].Note; !strings.Contains(note, "amount fixed 13h30m0s after its deadline 2026-02-14T00:00:00.000Z") {
		t.Fatalf("note %q", note)
	}

	missed := w.plan(w.planBody(), at("2026-02-01T10:00:00Z"))
	w.run(at("2026-02-15T00:00:00Z"))
	c = w.cycle(missed, 1)
	w.wantReview(c, reasonDeadlineMissed)
	if !c.AmountFixedAt.Equal(at("2026-02-15T00:00:00Z")) {
		t.Fatalf("fixed at %v", c.AmountFixedAt)
	}
	// Approval, after the date, charges at once.
	approved := w.approve(w.invoice(c).ID, at("2026-02-16T10:00:00Z"))
	c = w.cycle(missed, 1)
	if approved.Status != InvoiceStatusOpen || c.NextAction == nil || !c.NextActionAt.Equal(at("2026-02-16T10:00:00Z")) {
		t.Fatalf("after approval: %s, next %v at %v", approved.Status, c.NextAction, c.NextActionAt)
	}
	if !slices.Contains(approved.ReviewReasons, reasonDeadlineMissed) {
		t.Fatalf("reasons %v", approved.ReviewReasons)
	}
}
