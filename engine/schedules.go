package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// GetSchedule returns the business's schedule id, or DATA_NOT_FOUND.
func (s *Service) GetSchedule(ctx context.Context, db bun.IDB, businessID, id string) (*Schedule, error) {
	return getSchedule(ctx, db, businessID, id, "")
}

// getSchedule reads a schedule; lock is "", "UPDATE" (to change it) or
// "SHARE" (to create a plan on it while it cannot change).
func getSchedule(ctx context.Context, db bun.IDB, businessID, id, lock string) (*Schedule, error) {
	if !billing.ValidID(billing.PrefixSchedule, id) {
		return nil, billing.NotFound("recurring schedule")
	}
	sc := new(Schedule)
	q := db.NewSelect().Model(sc).Where("business_id = ?", businessID).Where("id = ?", id)
	if lock != "" {
		q = q.For(lock)
	}
	if err := scanOne(ctx, q, "recurring schedule"); err != nil {
		return nil, err
	}
	return sc, nil
}

// PatchSchedule applies sp to the business's schedule id at now in tx. A
// schedule change applies from the next cycle that has not been created
// (SPEC §4.5): cycles that exist keep their scheduled timestamps, and each
// plan's next cycle is the first slot of the schedule as it then is after
// the previous cycle's. The schedule is locked, then its plans (in id
// order): no plan is created on it during the change, and changes of its
// plans under way finish first (a cycle they create follows the schedule
// as it was). The result must still suit every plan on the schedule:
// total_recurrence not below the cycles a plan already has, and each
// plan's amount_lead_days within the new period.
func (s *Service) PatchSchedule(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id string, sp SchedulePatch) (*Schedule, error) {
	now = truncate(now)
	sc, err := getSchedule(ctx, tx, biz.ID, id, "UPDATE")
	if err != nil {
		return nil, err
	}
	var ps []*Plan
	if err := tx.NewSelect().Model(&ps).Where("business_id = ?", biz.ID).Where("schedule_id = ?", id).
		Order("id").For("UPDATE").Scan(ctx); err != nil {
		return nil, fmt.Errorf("lock the plans of schedule %s: %w", id, err)
	}
	if err := sp.apply(sc); err != nil {
		return nil, err
	}
	var v billing.Validation
	for _, p := range ps {
		if p.Status == PlanStatusInactive {
			continue
		}
		if sc.TotalRecurrence != nil {
			v.Check(*sc.TotalRecurrence >= p.RecurringCycleCount, "total_recurrence",
				fmt.Sprintf("must be at least %d: plan %s already has that many cycles", p.RecurringCycleCount, p.ID))
		}
		if most := sc.Timetable().PeriodDays(); p.AmountLeadDays > most {
			v.Add("interval_count", fmt.Sprintf("makes a period of %d days, shorter than plan %s's amount_lead_days (%d)", most, p.ID, p.AmountLeadDays))
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	sc.Updated = now
	if _, err := tx.NewUpdate().Model(sc).WherePK().ExcludeColumn("id", "business_id", "created").Exec(ctx); err != nil {
		return nil, fmt.Errorf("update schedule %s: %w", id, err)
	}
	return sc, nil
}
