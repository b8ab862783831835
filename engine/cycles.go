package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// nextCycle returns the cycle that follows prev (nil for cycle 1) of plan
// (with its schedule, activated) at now, not yet stored; nil when the plan
// has had all its cycles (total_recurrence counts the cycles created).
//
// Its scheduled timestamp is the first slot of the schedule as it now is,
// counted from its anchor, that is after prev's scheduled timestamp and
// whose date (UTC) has not begun: a slot whose date has begun could no
// longer have its amount fixed or changed in time. Its amount is fixed at
// fix_at = plans.FixAt(scheduled, amount_lead_days), which is also the end
// of its usage window; the window starts where the usage billed so far
// ends — the plan's activation for cycle 1, else the end of prev's window
// (the start of prev's window when prev's amount was never fixed, as for a
// cycle cancelled before its fix time, so that its usage rolls into this
// one) — but never before the activation, and never after the window's
// end (an empty window, whose usage goes to the next cycle).
func nextCycle(plan *Plan, prev *Cycle, now time.Time) *Cycle {
	sched := plan.schedule
	n := 1
	after := plans.CycleDate(now).AddDate(0, 0, 1).Add(-time.Microsecond)
	if prev != nil {
		n = prev.CycleNumber + 1
		if prev.ScheduledTimestamp.After(after) {
			after = prev.ScheduledTimestamp
		}
	}
	if sched.TotalRecurrence != nil && n > *sched.TotalRecurrence {
		return nil
	}
	tt := sched.Timetable()
	scheduled := tt.ScheduledAt(tt.FirstAfter(after))
	fix := plans.FixAt(scheduled, plan.AmountLeadDays)
	c := &Cycle{
		ID: billing.NewID(billing.PrefixCycle), BusinessID: plan.BusinessID, PlanID: plan.ID, CustomerID: plan.CustomerID,
		CycleNumber: n, Type: CycleTypeScheduled, Status: CycleStatusScheduled, ScheduledTimestamp: scheduled,
		Currency: string(plan.Currency), RetryIntervalCount: sched.RetryIntervalCount, TotalRetry: sched.TotalRetry,
		FailedAttemptNotifications: sched.FailedAttemptNotifications, Created: now, Updated: now,
	}
	c.setFixAt(fix, windowStart(plan, prev))
	return c.bind(plan)
}

// windowStart is where the usage window after prev (nil: the first) starts.
func windowStart(plan *Plan, prev *Cycle) time.Time {
	start := *plan.ActivatedAt
	if prev != nil {
		billedTo := prev.UsageWindowEnd
		if prev.AmountFixedAt == nil {
			billedTo = prev.UsageWindowStart
		}
		if billedTo.After(start) {
			start = billedTo
		}
	}
	return start
}

// setFixAt sets the cycle's amount-fix time, the usage window that ends
// there and starts at start (or is empty when start is later), and the
// engine's next action: FIX_AMOUNT at that time.
func (c *Cycle) setFixAt(fix, start time.Time) {
	if start.After(fix) {
		start = fix
	}
	c.FixAt, c.UsageWindowStart, c.UsageWindowEnd = fix, start, fix
	c.NextAction, c.NextActionAt = ptr(ActionFixAmount), &fix
}

// createNextCycle stores the cycle after prev (nil: cycle 1) of plan,
// locked in tx, counts it on the plan, emits recurring.cycle.created and
// tells the customer (CYCLE_CREATED on the recurring_created channels).
// It returns nil when the plan has had all its cycles.
func (s *Service) createNextCycle(ctx context.Context, tx bun.IDB, plan *Plan, prev *Cycle, now time.Time) (*Cycle, error) {
	c := nextCycle(plan, prev, now)
	if c == nil {
		return nil, nil
	}
	if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert cycle %d of plan %s: %w", c.CycleNumber, plan.ID, err)
	}
	plan.RecurringCycleCount, plan.Updated = c.CycleNumber, now
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("recurring_cycle_count", "updated").Exec(ctx); err != nil {
		return nil, fmt.Errorf("count the cycles of plan %s: %w", plan.ID, err)
	}
	if _, err := outbox.Emit(ctx, tx, plan.BusinessID, outbox.RecurringCycleCreated, now, c); err != nil {
		return nil, err
	}
	if err := s.notice(ctx, tx, plan, c, notify.KindCycleCreated, createdChannels, notify.Message{}, nil, now); err != nil {
		return nil, err
	}
	return c, nil
}

// advance moves plan (locked in tx) on after its cycle ended ended: it
// creates the next cycle, unless a later one exists already, or ends the
// plan (INACTIVE, recurring.plan.inactivated) when it has had all its
// cycles. A plan that is no longer ACTIVE does not move.
func (s *Service) advance(ctx context.Context, tx bun.IDB, plan *Plan, ended *Cycle, now time.Time) error {
	if plan.Status != PlanStatusActive || ended.CycleNumber < plan.RecurringCycleCount {
		return nil
	}
	next, err := s.createNextCycle(ctx, tx, plan, ended, now)
	if err != nil || next != nil {
		return err
	}
	return s.inactivate(ctx, tx, plan, now)
}

// retime moves the fix time and window end of plan's current cycle after
// its amount_lead_days changed, when its amount is not fixed and its fix
// time has not passed.
func (s *Service) retime(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	var cs []*Cycle
	if err := tx.NewSelect().Model(&cs).Where("plan_id = ?", plan.ID).Where("status = ?", CycleStatusScheduled).
		Where("amount_fixed_at IS NULL").Where("fix_at > ?", now).Order("cycle_number").For("UPDATE").Scan(ctx); err != nil {
		return fmt.Errorf("read the cycles of plan %s: %w", plan.ID, err)
	}
	for _, c := range cs {
		if err := s.refix(ctx, tx, plan, c, now); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(c).WherePK().Column("fix_at", "usage_window_start", "usage_window_end",
			"next_action", "next_action_at", "updated").Exec(ctx); err != nil {
			return fmt.Errorf("retime cycle %s: %w", c.ID, err)
		}
	}
	return nil
}

// refix recomputes c's fix time and window from its scheduled timestamp
// and the plan's amount_lead_days (not stored).
func (s *Service) refix(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, now time.Time) error {
	var prev *Cycle
	if c.CycleNumber > 1 {
		var err error
		if prev, err = previous(ctx, tx, c); err != nil {
			return err
		}
	}
	c.setFixAt(plans.FixAt(c.ScheduledTimestamp, plan.AmountLeadDays), windowStart(plan, prev))
	c.Updated = now
	return nil
}

// previous reads the cycle before c (c is not cycle 1).
func previous(ctx context.Context, tx bun.IDB, c *Cycle) (*Cycle, error) {
	prev := new(Cycle)
	if err := tx.NewSelect().Model(prev).Where("plan_id = ?", c.PlanID).Where("cycle_number = ?", c.CycleNumber-1).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read the cycle before %s: %w", c.ID, err)
	}
	return prev, nil
}

// ListCycles returns one page of the cycles of the business's plan
// planID, newest first, and whether more follow.
func (s *Service) ListCycles(ctx context.Context, db bun.IDB, businessID, planID string, page billing.Page) ([]*Cycle, bool, error) {
	plan, err := getPlan(ctx, db, businessID, planID, false)
	if err != nil {
		return nil, false, err
	}
	var rows []*Cycle
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID).Where("plan_id = ?", plan.ID)
	if err := postgres.Paginate(q, "id", page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list cycles: %w", err)
	}
	rows, more := postgres.PageResult(rows, page)
	for _, c := range rows {
		c.bind(plan)
	}
	return rows, more, loadAttempts(ctx, db, rows...)
}

// GetCycle returns cycle id of the business's plan planID, with its
// attempts, or DATA_NOT_FOUND.
func (s *Service) GetCycle(ctx context.Context, db bun.IDB, businessID, planID, id string) (*Cycle, error) {
	plan, err := getPlan(ctx, db, businessID, planID, false)
	if err != nil {
		return nil, err
	}
	c, err := getCycle(ctx, db, plan, id, false)
	if err != nil {
		return nil, err
	}
	return c, loadAttempts(ctx, db, c)
}

func getCycle(ctx context.Context, db bun.IDB, plan *Plan, id string, forUpdate bool) (*Cycle, error) {
	if !billing.ValidID(billing.PrefixCycle, id) {
		return nil, billing.NotFound("recurring cycle")
	}
	c := new(Cycle)
	q := db.NewSelect().Model(c).Where("business_id = ?", plan.BusinessID).Where("plan_id = ?", plan.ID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	if err := scanOne(ctx, q, "recurring cycle"); err != nil {
		return nil, err
	}
	return c.bind(plan), nil
}

// changeable locks the plan and cycle for a change at now and returns
// them, or INELIGIBLE_CYCLE_REQUEST when the cycle is not SCHEDULED or its
// date (UTC) has begun.
func (s *Service) changeable(ctx context.Context, tx bun.IDB, businessID, planID, id string, now time.Time) (*Plan, *Cycle, error) {
	plan, err := getPlan(ctx, tx, businessID, planID, true)
	if err != nil {
		return nil, nil, err
	}
	c, err := getCycle(ctx, tx, plan, id, true)
	if err != nil {
		return nil, nil, err
	}
	if c.Status != CycleStatusScheduled {
		return nil, nil, errIneligibleCycle("cycle %d is %s; only a SCHEDULED cycle can be changed or cancelled", c.CycleNumber, c.Status)
	}
	if plans.Frozen(c.ScheduledTimestamp, now) {
		return nil, nil, errIneligibleCycle("cycle %d's date, %s, has begun (UTC): from 00:00 UTC of its date a cycle can no longer be changed or cancelled",
			c.CycleNumber, c.ScheduledTimestamp.Format(time.DateOnly))
	}
	return plan, c, nil
}

// PatchCycle applies cp to a SCHEDULED cycle before its date (else 403
// INELIGIBLE_CYCLE_REQUEST). amount is stored as the utility's override,
// which the engine honours when it fixes the amount (null removes it);
// currency can only be the plan's; a new scheduled_timestamp must fall on
// a date after today's (UTC) and after the previous cycle's, and moves the
// fix time and window end with it while the amount is not fixed and the
// fix time has not passed.
//
// Once the amount is fixed (between fix_at and the date), a new amount
// adds an ADJUSTMENT line to the cycle's invoice so that its total is the
// amount set, audited for actor (the API key's id), and a new
// scheduled_timestamp moves the invoice's due time and the charge.
func (s *Service) PatchCycle(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, planID, id, actor string, cp CyclePatch) (*Cycle, error) {
	now = truncate(now)
	plan, c, err := s.changeable(ctx, tx, biz.ID, planID, id, now)
	if err != nil {
		return nil, err
	}
	var v billing.Validation
	cur := plan.Currency
	if cp.Currency.Set {
		v.Check(!cp.Currency.Null && cp.Currency.Value == string(cur), "currency", fmt.Sprintf("must be %s, the plan's currency", cur))
	}
	if cp.Amount.Set {
		c.AmountOverride = decimal.NullDecimal{}
		if !cp.Amount.Null {
			c.AmountOverride = decimal.NewNullDecimal(checkMoney(&v, "amount", cp.Amount.Value.Decimal, cur))
		}
	}
	if cp.Metadata.Set {
		c.Metadata = cp.Metadata.Value
		customers.ValidateMetadata(&v, "metadata", c.Metadata)
	}
	moved := false
	if cp.ScheduledTimestamp.Set {
		t, err := time.Parse(time.RFC3339Nano, cp.ScheduledTimestamp.Value)
		if v.Check(!cp.ScheduledTimestamp.Null && err == nil, "scheduled_timestamp", "must be an RFC 3339 time such as 2026-03-15T08:00:00Z") {
			t = truncate(t)
			v.Check(!plans.Frozen(t, now), "scheduled_timestamp", fmt.Sprintf("must fall on a date after today, %s (UTC)", now.Format(time.DateOnly)))
			if err := s.checkAfterPrevious(ctx, tx, c, t, &v); err != nil {
				return nil, err
			}
			moved = !t.Equal(c.ScheduledTimestamp)
			c.ScheduledTimestamp = t
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if moved && c.AmountFixedAt == nil && c.FixAt.After(now) {
		if err := s.refix(ctx, tx, plan, c, now); err != nil {
			return nil, err
		}
	}
	c.Updated = now
	if _, err := tx.NewUpdate().Model(c).WherePK().Column("amount_override", "metadata", "scheduled_timestamp", "fix_at",
		"usage_window_start", "usage_window_end", "next_action", "next_action_at", "updated").Exec(ctx); err != nil {
		return nil, fmt.Errorf("update cycle %s: %w", c.ID, err)
	}
	if c.AmountFixedAt != nil {
		if err := cyclePatched(ctx, tx, c, cp.Amount.Set, moved, actor, now); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkAfterPrevious checks that t is after the previous cycle's scheduled
// timestamp.
func (s *Service) checkAfterPrevious(ctx context.Context, tx bun.IDB, c *Cycle, t time.Time, v *billing.Validation) error {
	if c.CycleNumber == 1 {
		return nil
	}
	prev, err := previous(ctx, tx, c)
	if err != nil {
		return err
	}
	v.Check(t.After(prev.ScheduledTimestamp), "scheduled_timestamp",
		"must be after the previous cycle's, "+billing.FormatTime(prev.ScheduledTimestamp))
	return nil
}

// CancelCycle cancels a SCHEDULED cycle before its date (else 403
// INELIGIBLE_CYCLE_REQUEST): it will not be charged. Its usage, never
// billed, rolls into the next cycle, which is created at once (or the plan
// ends, when the cancelled cycle was its last). When its amount was fixed
// already, its invoice is voided and the usage stays billed by it.
func (s *Service) CancelCycle(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, planID, id string) (*Cycle, error) {
	now = truncate(now)
	plan, c, err := s.changeable(ctx, tx, biz.ID, planID, id, now)
	if err != nil {
		return nil, err
	}
	if err := s.endCancelled(ctx, tx, plan, c, now); err != nil {
		return nil, err
	}
	return c, nil
}
