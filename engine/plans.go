package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
	"github.com/uptrace/bun"
)

// CreatePlan stores a validated plan for biz at now (its clock) in tx,
// with its new schedule (or the existing schedule_id), and activates it
// when payment_methods has an ACTIVE token: ACTIVE with cycle 1 and the
// events recurring.plan.activated and recurring.cycle.created, or PENDING
// when immediate_action_type is FULL_AMOUNT (the engine's immediate charge
// activates it: cycle 0, IMMEDIATE, is created and due at once). Without
// an ACTIVE token the plan is REQUIRES_ACTION, with
// an AUTH action whose url, under baseURL, is shown only in the returned
// plan. Another business's customer, token or schedule is DATA_NOT_FOUND;
// another customer's token, a token in another currency or an unknown
// meter is a validation error naming the field.
func (s *Service) CreatePlan(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, cp CreatePlanParams, baseURL string) (*Plan, error) {
	now = truncate(now)
	plan := cp.Plan
	if _, err := customers.Get(ctx, tx, biz.ID, plan.CustomerID); err != nil {
		return nil, err
	}
	sched := cp.Schedule
	if sched == nil {
		var err error
		if sched, err = getSchedule(ctx, tx, biz.ID, cp.ScheduleID, "SHARE"); err != nil {
			return nil, err
		}
		var v billing.Validation
		checkLeadDays(&v, plan.AmountLeadDays, sched)
		if err := v.Err(); err != nil {
			return nil, err
		}
	}
	active, err := s.checkTokens(ctx, tx, biz.ID, &plan, true)
	if err != nil {
		return nil, err
	}
	if err := checkMeters(ctx, tx, biz.ID, plan.UsageCharges); err != nil {
		return nil, err
	}
	if cp.Schedule != nil {
		sched.ID, sched.BusinessID, sched.Created, sched.Updated = billing.NewID(billing.PrefixSchedule), biz.ID, now, now
		if _, err := tx.NewInsert().Model(sched).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert schedule: %w", err)
		}
	}
	plan.ID, plan.BusinessID, plan.ScheduleID, plan.schedule = billing.NewID(billing.PrefixPlan), biz.ID, sched.ID, sched
	plan.Created, plan.Updated = now, now
	switch {
	case active && plan.ImmediateActionType != nil:
		plan.Status = PlanStatusPending
	case active:
		plan.Status, plan.ActivatedAt = PlanStatusActive, &now
	default:
		secret, hash := newAuthSecret()
		plan.Status, plan.AuthSecretHash = PlanStatusRequiresAction, hash
		plan.authURL = baseURL + AuthPath + secret
	}
	if _, err := tx.NewInsert().Model(&plan).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert plan: %w", err)
	}
	switch plan.Status {
	case PlanStatusActive:
		if err := s.startCycles(ctx, tx, &plan, now); err != nil {
			return nil, err
		}
	case PlanStatusPending:
		if err := s.startImmediate(ctx, tx, &plan, now); err != nil {
			return nil, err
		}
	}
	return &plan, nil
}

// checkTokens checks the plan's payment methods against the business's
// tokens: each must be the plan customer's and in the plan's currency
// (else a validation error naming, at creation, currency for a currency
// that differs, and otherwise the token's field); another business's token
// is DATA_NOT_FOUND. It sorts the methods by rank and reports whether one
// is ACTIVE.
func (s *Service) checkTokens(ctx context.Context, tx bun.IDB, businessID string, plan *Plan, creating bool) (bool, error) {
	var v billing.Validation
	active := false
	for i, m := range plan.PaymentMethods {
		tok, err := s.payments.GetToken(ctx, tx, businessID, m.PaymentTokenID)
		if err != nil {
			return false, err
		}
		f := fmt.Sprintf("payment_methods[%d].payment_token_id", i)
		v.Check(tok.CustomerID == plan.CustomerID, f, "belongs to another customer than the plan's")
		if tok.Currency != string(plan.Currency) {
			if creating {
				v.Add("currency", fmt.Sprintf("must be %s, the currency of payment token %s", tok.Currency, tok.ID))
			} else {
				v.Add(f, fmt.Sprintf("charges %s; the plan's currency is %s", tok.Currency, plan.Currency))
			}
		}
		active = active || tok.Status == payments.TokenActive
	}
	sort.SliceStable(plan.PaymentMethods, func(a, b int) bool { return plan.PaymentMethods[a].Rank < plan.PaymentMethods[b].Rank })
	return active, v.Err()
}

// checkMeters checks that each usage charge names a meter of the business.
func checkMeters(ctx context.Context, tx bun.IDB, businessID string, charges []UsageCharge) error {
	if len(charges) == 0 {
		return nil
	}
	codes := make([]string, len(charges))
	for i, c := range charges {
		codes[i] = c.Meter
	}
	meters, err := metering.MetersByCode(ctx, tx, businessID, codes)
	if err != nil {
		return err
	}
	var v billing.Validation
	for i, c := range charges {
		v.Check(meters[c.Meter] != nil, fmt.Sprintf("usage_charges[%d].meter", i),
			fmt.Sprintf("no meter has the code %q; create it with POST /meters", c.Meter))
	}
	return v.Err()
}

// GetPlan returns the business's plan id with its schedule, or
// DATA_NOT_FOUND (also for a malformed id and another business's plan).
func (s *Service) GetPlan(ctx context.Context, db bun.IDB, businessID, id string) (*Plan, error) {
	return getPlan(ctx, db, businessID, id, false)
}

// getPlan reads a plan and its schedule; forUpdate locks the plan row for
// the rest of db's transaction.
func getPlan(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*Plan, error) {
	if !billing.ValidID(billing.PrefixPlan, id) {
		return nil, billing.NotFound("recurring plan")
	}
	p := new(Plan)
	q := db.NewSelect().Model(p).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	if err := scanOne(ctx, q, "recurring plan"); err != nil {
		return nil, err
	}
	if err := loadSchedules(ctx, db, p); err != nil {
		return nil, err
	}
	return p, nil
}

// schedulesSQL reads the schedules $2 of business $1.
var schedulesSQL = postgres.NewStatement(func(db bun.IDB) string {
	return db.NewSelect().Model((*Schedule)(nil)).Where("business_id = $1").Where("id = ANY($2::text[])").String()
})

// loadSchedules reads the schedules of ps.
func loadSchedules(ctx context.Context, db bun.IDB, ps ...*Plan) error {
	if len(ps) == 0 {
		return nil
	}
	var ids []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.ScheduleID] {
			ids, seen[p.ScheduleID] = append(ids, p.ScheduleID), true
		}
	}
	var rows []*Schedule
	if err := schedulesSQL.Scan(ctx, db, &rows, ps[0].BusinessID, ids); err != nil {
		return fmt.Errorf("read schedules: %w", err)
	}
	byID := make(map[string]*Schedule, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	for _, p := range ps {
		if p.schedule = byID[p.ScheduleID]; p.schedule == nil {
			return fmt.Errorf("plan %s: schedule %s is missing", p.ID, p.ScheduleID)
		}
	}
	return nil
}

// PlanFilter selects plans in ListPlans.
type PlanFilter struct {
	// CustomerID, when set, keeps the plans of that customer, who must be
	// the business's.
	CustomerID string
	Page       billing.Page
}

// ListPlans returns one page of the business's plans, newest first, and
// whether more follow.
func (s *Service) ListPlans(ctx context.Context, db bun.IDB, businessID string, f PlanFilter) ([]*Plan, bool, error) {
	var rows []*Plan
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID)
	if f.CustomerID != "" {
		if _, err := customers.Get(ctx, db, businessID, f.CustomerID); err != nil {
			return nil, false, err
		}
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if err := postgres.Paginate(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list plans: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	if err := loadSchedules(ctx, db, rows...); err != nil {
		return nil, false, err
	}
	return rows, more, nil
}

// PatchPlan applies pp to the business's plan id at now in tx. It takes
// effect at once for what happens next: the base amount, usage charges,
// review policy and an override-free cycle amount apply to every cycle
// whose amount is not fixed yet; payment methods to the next charge;
// notification settings to the next notification; failed_cycle_action to
// the next cycle that fails. A new amount_lead_days moves the fix time
// (and the window's end) of the current cycle when its amount is not fixed
// and its fix time has not passed. New payment methods with an ACTIVE
// token activate a REQUIRES_ACTION plan. An INACTIVE plan cannot change
// (403).
func (s *Service) PatchPlan(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id string, pp PlanPatch) (*Plan, error) {
	now = truncate(now)
	plan, err := getPlan(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	if plan.Status == PlanStatusInactive {
		return nil, forbidden("plan %s is INACTIVE and can no longer change; create a new plan", plan.ID)
	}
	lead := plan.AmountLeadDays
	if err := pp.apply(plan); err != nil {
		return nil, err
	}
	activate := false
	if pp.PaymentMethods.Set {
		active, err := s.checkTokens(ctx, tx, biz.ID, plan, false)
		if err != nil {
			return nil, err
		}
		if !active && plan.Status != PlanStatusRequiresAction {
			return nil, billing.Invalid("payment_methods", "must include an ACTIVE token of the customer: the plan is "+plan.Status)
		}
		activate = active && plan.Status == PlanStatusRequiresAction
	}
	if pp.UsageCharges.Set {
		if err := checkMeters(ctx, tx, biz.ID, plan.UsageCharges); err != nil {
			return nil, err
		}
	}
	plan.Updated = now
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("amount", "payment_methods", "notification_config", "metadata",
		"description", "items", "success_return_url", "failure_return_url", "usage_charges", "review_policy", "amount_lead_days",
		"failed_cycle_action", "updated").Exec(ctx); err != nil {
		return nil, fmt.Errorf("update plan %s: %w", plan.ID, err)
	}
	if plan.AmountLeadDays != lead {
		if err := s.retime(ctx, tx, plan, now); err != nil {
			return nil, err
		}
	}
	if activate {
		if err := s.activate(ctx, tx, plan, now); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// DeactivatePlan makes the business's plan id INACTIVE at now in tx: every
// cycle waiting to be charged (SCHEDULED) or retried (RETRYING) is
// CANCELLED, and recurring.plan.inactivated is emitted. An INACTIVE plan is
// returned as it is; it never becomes active again.
func (s *Service) DeactivatePlan(ctx context.Context, tx bun.IDB, biz *business.Business, now time.Time, id string) (*Plan, error) {
	now = truncate(now)
	plan, err := getPlan(ctx, tx, biz.ID, id, true)
	if err != nil {
		return nil, err
	}
	if plan.Status == PlanStatusInactive {
		return plan, nil
	}
	return plan, s.inactivate(ctx, tx, plan, now)
}

// inactivate ends plan (locked in tx): INACTIVE, its waiting cycles
// cancelled (the unpaid invoices of those whose amount was fixed voided),
// recurring.plan.inactivated.
func (s *Service) inactivate(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	plan.Status, plan.Updated = PlanStatusInactive, now
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("status", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("inactivate plan %s: %w", plan.ID, err)
	}
	var cancelled []string
	if err := tx.NewUpdate().Model((*Cycle)(nil)).
		Set("status = ?", CycleStatusCancelled).Set("next_action = NULL, next_action_at = NULL").Set("updated = ?", now).
		Where("plan_id = ?", plan.ID).Where("status IN (?)", bun.In([]string{CycleStatusScheduled, CycleStatusRetrying})).
		Returning("id").Scan(ctx, &cancelled); err != nil {
		return fmt.Errorf("cancel the cycles of plan %s: %w", plan.ID, err)
	}
	if err := voidOfCycles(ctx, tx, plan.BusinessID, cancelled, "its plan became INACTIVE", now); err != nil {
		return err
	}
	_, err := outbox.Emit(ctx, tx, plan.BusinessID, outbox.RecurringPlanInactivated, now, plan)
	return err
}
