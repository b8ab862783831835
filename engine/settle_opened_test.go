package engine

import (
	"testing"
)

// TestSettledFromTheRowsOpened: the worker that opens a batch's charges
// settles them from the rows it opened them with only while nothing else
// wrote those rows (lockOpened). Here the plan ends (INACTIVE, written
// straight into its row) after the charge was opened and before its
// answer is recorded: the settlement sees the plan as it now is, so the
// cycle succeeds and its invoice is paid, but no next cycle is created;
// settled from the rows kept, it would have been.
func TestSettledFromTheRowsOpened(t *testing.T) {
	w := newChargeWorld(t)
	p := w.plan(w.planBody(w.token("")))
	w.to("2026-02-14T00:00:00Z")
	w.setSeam(func(string) error {
		_, err := w.db.Pool.Exec(w.ctx, `UPDATE recurring_plans SET status = 'INACTIVE' WHERE id = $1`, p.ID)
		return err
	})
	w.to("2026-02-15T08:00:00Z")
	w.setSeam(nil)
	c := w.cycle(p, 1)
	wantList(t, "attempts", attempts(c), "1.1 INITIAL SUCCEEDED")
	if c.Status != CycleStatusSucceeded || w.invoiceOf(c).Status != InvoiceStatusPaid {
		t.Fatalf("cycle %s, invoice %s", c.Status, w.invoiceOf(c).Status)
	}
	if n := w.count("SELECT count(*) FROM recurring_cycles WHERE plan_id = ?", p.ID); n != 1 {
		t.Fatalf("%d cycles: a plan that ended meanwhile got a next cycle", n)
	}
}
