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

// versionsStatement locks rows of table by id ($2), of business $1 when
// the table has a business column, in id order, and reads their versions.
func versionsStatement(table string, byBusiness bool) *postgres.Statement {
	return postgres.NewStatement(func(bun.IDB) string {
		where := "id = ANY($1::text[])"
		if byBusiness {
			where = "business_id = $1 AND id = ANY($2::text[])"
		}
		return "SELECT id, xmin::text::bigint AS version FROM " + table + " WHERE " + where + " ORDER BY id FOR UPDATE"
	})
}

var (
	planVersionsSQL    = versionsStatement("recurring_plans", true)
	cycleVersionsSQL   = versionsStatement("recurring_cycles", true)
	attemptVersionsSQL = versionsStatement("cycle_attempts", false)
	invoiceVersionsSQL = versionsStatement("invoices", true)
)

// lockOpened locks, in the engine's lock order (plans, cycles, attempts,
// invoices; each in id order), the rows of the actions opened whose
// provider keys are keys, and returns them as kept when every one is
// still the version kept. It returns nil, having locked what it locked,
// when one of keys was not opened here or a row moved on; the caller then
// reads them all.
func lockOpened(ctx context.Context, tx bun.IDB, businessID string, keys []string, opened map[string]*openedCharge) (*settling, error) {
	charges := make([]*openedCharge, len(keys))
	var planIDs, cycleIDs, attemptIDs, invoiceIDs []string
	planVersion, invoiceVersion := map[string]int64{}, map[string]int64{}
	for i, key := range keys {
		o := opened[key]
		if o == nil || o.cycle.BusinessID != businessID {
			return nil, nil
		}
		charges[i] = o
		if _, dup := planVersion[o.plan.ID]; !dup {
			planIDs = append(planIDs, o.plan.ID)
		}
		if _, dup := invoiceVersion[o.invoice.ID]; !dup {
			invoiceIDs = append(invoiceIDs, o.invoice.ID)
		}
		planVersion[o.plan.ID], invoiceVersion[o.invoice.ID] = o.plan.Version, o.invoice.Version
		cycleIDs, attemptIDs = append(cycleIDs, o.cycle.ID), append(attemptIDs, o.attempt.ID)
	}
	written := charges[0].written
	same := func(st *postgres.Statement, ids []string, want func(string) int64, args ...any) (bool, error) {
		var got []rowVersion
		if err := st.Scan(ctx, tx, &got, append(args, ids)...); err != nil {
			return false, fmt.Errorf("lock %d rows settling: %w", len(ids), err)
		}
		if len(got) != len(ids) {
			return false, nil
		}
		for _, r := range got {
			if r.Version != want(r.ID) {
				return false, nil
			}
		}
		return true, nil
	}
	for _, o := range charges {
		if o.written != written {
			return nil, nil
		}
	}
	checks := []struct {
		st   *postgres.Statement
		ids  []string
		want func(string) int64
		args []any
	}{
		{planVersionsSQL, planIDs, func(id string) int64 { return planVersion[id] }, []any{businessID}},
		{cycleVersionsSQL, cycleIDs, func(string) int64 { return written }, []any{businessID}},
		{attemptVersionsSQL, attemptIDs, func(string) int64 { return written }, nil},
		{invoiceVersionsSQL, invoiceIDs, func(id string) int64 { return invoiceVersion[id] }, []any{businessID}},
	}
	for _, c := range checks {
		ok, err := same(c.st, c.ids, c.want, c.args...)
		if err != nil || !ok {
			return nil, err
		}
	}
	out := newSettling()
	for i, o := range charges {
		plan, c, a, inv := o.rows()
		if kept := out.plans[plan.ID]; kept != nil {
			plan = kept
			c.bind(plan)
		}
		out.plans[plan.ID], out.cycles[c.ID], out.attempts[keys[i]], out.invoices[inv.ID] = plan, c, a, inv
	}
	return out, nil
}
