package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// DefaultBatchSize is how many due cycles one step handles in one
// transaction unless Config.BatchSize says otherwise.
const DefaultBatchSize = 500

// DefaultDueWorkers is how many workers run one business's due work at
// once unless Config.DueWorkers says otherwise.
const DefaultDueWorkers = 4

// DueBatch asks a step to act on up to Limit of one business's cycles
// whose next_action is Action and is due at Now (next_action_at <= Now).
// Now is the business's clock: the stored sandbox time, or the system
// clock for a live business.
type DueBatch struct {
	Business *business.Business
	Now      time.Time
	Action   string
	Limit    int
}

// Step does the work of one next_action for a batch of due cycles and
// returns how many cycles it moved on. A step locks its cycles itself
// (Service.LockDue, in the transaction it opens), re-checks them, and must
// leave each cycle it counts with another next_action, a later
// next_action_at, or none; a step that finds nothing to do (the cycles are
// locked by another worker, or already done) returns 0.
type Step func(ctx context.Context, s *Service, b DueBatch) (int, error)

// dueSteps holds the step of each next_action. Each is registered by the
// file that implements it, from an init function (registerStep), so that
// the dispatcher never needs to know them.
var dueSteps = map[string]Step{}

// registerStep makes step the work of action. It panics when action has a
// step already: two files claiming one action is a programming error.
func registerStep(action string, step Step) {
	if _, dup := dueSteps[action]; dup {
		panic("engine: two steps registered for next_action " + action)
	}
	dueSteps[action] = step
}

// lockDueSQL locks, and reads, up to $4 cycles of business $1 whose
// next_action is $2 and due at $3, earliest first, that no other
// transaction holds.
var lockDueSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Cycle)(nil)).Where("business_id = $1").Where("next_action = $2").
		Where("next_action_at <= $3").OrderExpr("next_action_at, id LIMIT $4"). // bun's Limit takes a number only
		For("UPDATE SKIP LOCKED").String()
})

// LockDue locks in tx, and returns, up to b.Limit of the business's cycles
// whose next_action is b.Action and due at b.Now, earliest first. Cycles
// another transaction holds are skipped (FOR UPDATE SKIP LOCKED), so
// workers running the same step at once take disjoint batches and never
// wait for one another; the conditions are re-checked on the locked row
// versions, so a cycle moved on meanwhile is not returned. The cycles come
// without their plans bound.
func (s *Service) LockDue(ctx context.Context, tx bun.IDB, b DueBatch) ([]*Cycle, error) {
	limit := b.Limit
	if limit <= 0 {
		limit = s.batchSize
	}
	var cs []*Cycle
	if err := lockDueSQL.Scan(ctx, tx, &cs, b.Business.ID, b.Action, b.Now, limit); err != nil {
		return nil, fmt.Errorf("lock due %s cycles of business %s: %w", b.Action, b.Business.ID, err)
	}
	return cs, nil
}

// RunDueBusiness runs every step due for business businessID at now (its
// clock's reading: the sandbox loop passes each instant it stops at, a
// worker of a live business the system clock), in batches, until nothing is
// due at now or what is left is held by other workers. It takes the action
// of the earliest due cycle first, so that work runs in time order. It
// returns how many cycles were moved on.
func (s *Service) RunDueBusiness(ctx context.Context, businessID string, now time.Time) (int, error) {
	return s.runDueBusiness(ctx, businessID, now, nil)
}

// runDueBusiness is RunDueBusiness, calling full (when not nil) once, the
// first time a step moves a whole batch.
func (s *Service) runDueBusiness(ctx context.Context, businessID string, now time.Time, full func(context.Context)) (int, error) {
	biz, err := business.Get(ctx, s.db, businessID)
	if err != nil {
		return 0, err
	}
	now = truncate(now)
	skip := []string{} // actions with nothing this run can take
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var action string
		q := s.db.NewSelect().Table("recurring_cycles").Column("next_action").
			Where("business_id = ?", biz.ID).Where("next_action IS NOT NULL").Where("next_action_at <= ?", now).
			OrderExpr("next_action_at").Limit(1)
		if len(skip) > 0 {
			q = q.Where("next_action NOT IN (?)", bun.In(skip))
		}
		err := q.Scan(ctx, &action)
		if errors.Is(err, sql.ErrNoRows) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("find due cycles of business %s: %w", biz.ID, err)
		}
		step := dueSteps[action]
		if step == nil {
			s.log.Error("cycles are due with a next_action no step handles; they wait", "business_id", biz.ID, "next_action", action)
			skip = append(skip, action)
			continue
		}
		n, err := step(ctx, s, DueBatch{Business: biz, Now: now, Action: action, Limit: s.batchSize})
		total += n
		if err != nil {
			return total, fmt.Errorf("%s for business %s: %w", action, biz.ID, err)
		}
		if n == 0 {
			skip = append(skip, action)
		}
		if n >= s.batchSize && full != nil {
			full(ctx)
			full = nil
		}
	}
}

// dueLockSpace is the first key of the advisory locks that bound how many
// workers run one business's due work at once (TryRunDueBusiness).
const dueLockSpace = 0x64756573 // "dues"

// TryRunDueBusiness is RunDueBusiness for the engine's River workers: it
// runs only when fewer than Config.DueWorkers workers, in any process, are
// running the business's due work (each holds a session advisory lock,
// released when it ends or its process dies), and reports whether it ran.
// Extra triggers for a business whose work is under way (each schedule run
// adds one while work is due) then return at once instead of piling up
// concurrent batches that would only contend for the same rows and
// memory; the workers running share the work with SKIP LOCKED.
//
// A single trigger starts a single worker, however much is due. So that
// the other DueWorkers-1 join in when there is more than one batch of
// work, full, when not nil, is called once, the first time a step moves
// a whole batch, with the number of workers that may still join: the
// caller starts them (jobs inserts their triggers). A business with less
// than a batch due never pays for them.
func (s *Service) TryRunDueBusiness(ctx context.Context, businessID string, now time.Time, full func(ctx context.Context, more int)) (int, bool, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("lock the due work of business %s: %w", businessID, err)
	}
	defer conn.Close()
	for slot := 0; slot < s.dueWorkers; slot++ {
		key := fmt.Sprintf("%s/%d", businessID, slot)
		var ok bool
		if err := conn.NewRaw("SELECT pg_try_advisory_lock(?, hashtext(?))", dueLockSpace, key).Scan(ctx, &ok); err != nil {
			return 0, false, fmt.Errorf("lock the due work of business %s: %w", businessID, err)
		}
		if !ok {
			continue
		}
		defer func() {
			if _, err := conn.NewRaw("SELECT pg_advisory_unlock(?, hashtext(?))", dueLockSpace, key).Exec(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("release the due-work lock; closing the connection releases it", "business_id", businessID, "error", err.Error())
			}
		}()
		var onFull func(context.Context)
		if full != nil && s.dueWorkers > 1 {
			onFull = func(ctx context.Context) { full(ctx, s.dueWorkers-1) }
		}
		n, err := s.runDueBusiness(ctx, businessID, now, onFull)
		return n, true, err
	}
	return 0, false, nil
}

// RunDue runs everything due for every live business by the system clock
// (RunDueBusiness for each), and returns how many cycles were moved on.
// Sandbox businesses are left alone: their clock only moves when told, and
// their work runs when it is advanced. The engine's River jobs trigger
// RunDueBusiness per business instead; RunDue serves tools and tests that
// want everything due done at once.
func (s *Service) RunDue(ctx context.Context) (int, error) {
	now := billing.SystemClock{}.Now()
	wakes, err := s.LiveWakes(ctx, now, now)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, w := range wakes {
		n, err := s.RunDueBusiness(ctx, w.BusinessID, now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Wake says that live business BusinessID has cycles due at At.
type Wake struct {
	BusinessID string
	At         time.Time
}

// LiveWakes returns when live businesses have cycles due up to until (the
// system clock's now plus the scheduler's look-ahead): for each business,
// one Wake at now when something is due already, and one at each distinct
// later next_action_at up to until. Many cycles due at one instant make one
// Wake. Sandbox businesses are not included (see RunDue).
func (s *Service) LiveWakes(ctx context.Context, now, until time.Time) ([]Wake, error) {
	var rows []struct {
		BusinessID string    `bun:"business_id"`
		At         time.Time `bun:"at"`
	}
	err := s.db.NewSelect().TableExpr("recurring_cycles AS c").
		Join("JOIN businesses AS b ON b.id = c.business_id").
		ColumnExpr("c.business_id").ColumnExpr("greatest(c.next_action_at, ?::timestamptz) AS at", truncate(now)).
		Where("c.next_action IS NOT NULL").Where("c.next_action_at <= ?", until).Where("b.sandbox_now IS NULL").
		GroupExpr("1, 2").OrderExpr("2, 1").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("find due cycles of live businesses: %w", err)
	}
	out := make([]Wake, len(rows))
	for i, r := range rows {
		out[i] = Wake{BusinessID: r.BusinessID, At: r.At.UTC()}
	}
	return out, nil
}

// NextDue returns the earliest next_action_at of business businessID's
// cycles, whether or not it has passed, or nil when no cycle has anything
// left to do. The sandbox clock's advance uses it to stop at each instant
// where work falls due, in time order.
func (s *Service) NextDue(ctx context.Context, businessID string) (*time.Time, error) {
	var at []time.Time
	err := s.db.NewSelect().Table("recurring_cycles").ColumnExpr("min(next_action_at)").
		Where("business_id = ?", businessID).Where("next_action IS NOT NULL").
		Having("min(next_action_at) IS NOT NULL").Scan(ctx, &at)
	if err != nil {
		return nil, fmt.Errorf("next due cycle of business %s: %w", businessID, err)
	}
	if len(at) == 0 {
		return nil, nil
	}
	t := at[0].UTC()
	return &t, nil
}

// dueActions lists the registered next_action values, sorted; the docs
// test checks that docs/engine.md describes each.
func dueActions() []string {
	out := make([]string, 0, len(dueSteps))
	for a := range dueSteps {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
