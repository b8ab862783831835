package engine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Settling from the rows opened (docs/engine.md, "Charging in sets"). A
// charging worker settles most of the actions it sends itself: the
// payment service calls SettledBatch in the transaction that records the
// provider's answers. The rows a plain settlement needs (the plan, the
// cycle, its attempt and its invoice) are the ones the worker read or
// wrote a moment before, when it opened those actions (openPlainCharges).
// It keeps them, with their row versions, and plainSettlements then locks
// the rows reading only their versions (xmin), in the same lock order as
// ever, and uses the kept rows when no version moved. Reading them whole
// again was about a ninth of the engine's CPU when charging. A version
// that moved (anything else wrote one of the rows since) sends the batch
// through the full reads, with the locks already held; so does a batch
// settled by a callback, or by any other worker.

// openedCharge is the state of one plain action as its opening
// transaction committed it.
type openedCharge struct {
	plan    *Plan
	cycle   *Cycle
	attempt *Attempt
	invoice *Invoice
	// written is the row version (xmin) of the cycle and the attempt,
	// which the opening transaction wrote: its transaction id.
	written int64
}

// keep copies the rows of an action opened in the transaction whose id is
// written, so that later changes to the caller's structs do not reach them.
func keep(plan *Plan, c *Cycle, a *Attempt, inv *Invoice, written int64) *openedCharge {
	p, cc, ac, ic := *plan, *c, *a, *inv
	return &openedCharge{plan: &p, cycle: &cc, attempt: &ac, invoice: &ic, written: written}
}

// rows returns fresh copies of the kept rows, the cycle bound to the plan,
// for one settlement to change.
func (o *openedCharge) rows() (*Plan, *Cycle, *Attempt, *Invoice) {
	p, c, a, inv := *o.plan, *o.cycle, *o.attempt, *o.invoice
	return &p, c.bind(&p), &a, &inv
}

type openedKey struct{}

// withOpened returns ctx carrying the actions opened, by provider key.
func withOpened(ctx context.Context, opened map[string]*openedCharge) context.Context {
	return context.WithValue(ctx, openedKey{}, opened)
}

// openedIn returns the actions that ctx carries (withOpened), or nil.
func openedIn(ctx context.Context) map[string]*openedCharge {
	m, _ := ctx.Value(openedKey{}).(map[string]*openedCharge)
	return m
}

// currentXID returns the id of tx's transaction as a row version (xmin):
// the low 32 bits of pg_current_xact_id. Rows written in a savepoint have
// another version, and are read again when settled.
func currentXID(ctx context.Context, tx bun.IDB) (int64, error) {
	var full string
	if err := tx.QueryRowContext(ctx, "SELECT pg_current_xact_id()::text").Scan(&full); err != nil {
		return 0, fmt.Errorf("read the transaction id: %w", err)
	}
	n, err := strconv.ParseUint(full, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read the transaction id %q: %w", full, err)
	}
	return int64(n & 0xffffffff), nil
}

// rowVersion is a row's id and version (xmin).
type rowVersion struct {
	ID      string `bun:"id"`
	Version int64  `bun:"version"`
}

// versionsStatement locks the rows of table of business $1 whose ids are
// $2, in id order, and reads their versions.
func versionsStatement(table string) *postgres.Statement {
	return postgres.NewStatement(func(bun.IDB) string {
		return "SELECT id, xmin::text::bigint AS version FROM " + table +
			" WHERE business_id = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE"
	})
}

// The version reads of lockOpened, in the engine's lock order.
var versionsInLockOrder = []*postgres.Statement{
	versionsStatement("recurring_plans"),
	versionsStatement("recurring_cycles"),
	versionsStatement("cycle_attempts"),
	versionsStatement("invoices"),
}

// lockOpened locks, in the engine's lock order (plans, cycles, attempts,
// invoices; each in id order), the rows of the actions opened whose
// provider keys are keys, and returns them as kept when every one is
// still the version kept. It returns nil, having locked what it locked,
// when one of keys was not opened here or a row moved on; the caller then
// reads them all.
func lockOpened(ctx context.Context, tx bun.IDB, businessID string, keys []string, opened map[string]*openedCharge) (*settling, error) {
	// The version each row must still have, by id, in lock order.
	want := []map[string]int64{{}, {}, {}, {}}
	for _, key := range keys {
		o := opened[key]
		if o == nil || o.cycle.BusinessID != businessID || o.written != opened[keys[0]].written {
			return nil, nil
		}
		want[0][o.plan.ID], want[1][o.cycle.ID], want[2][o.attempt.ID], want[3][o.invoice.ID] =
			o.plan.Version, o.written, o.written, o.invoice.Version
	}
	for i, st := range versionsInLockOrder {
		ids := make([]string, 0, len(want[i]))
		for id := range want[i] {
			ids = append(ids, id)
		}
		var got []rowVersion
		if err := st.Scan(ctx, tx, &got, businessID, ids); err != nil {
			return nil, fmt.Errorf("lock %d rows to settle: %w", len(ids), err)
		}
		if len(got) != len(ids) {
			return nil, nil
		}
		for _, r := range got {
			if r.Version != want[i][r.ID] {
				return nil, nil
			}
		}
	}
	out := newSettling()
	for _, key := range keys {
		plan, c, a, inv := opened[key].rows()
		if kept := out.plans[plan.ID]; kept != nil {
			plan = kept
			c.bind(plan)
		}
		out.plans[plan.ID], out.cycles[c.ID], out.attempts[key], out.invoices[inv.ID] = plan, c, a, inv
	}
	return out, nil
}
