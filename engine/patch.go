package engine

import (
	"encoding/json"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
)

// PlanPatch is the body of PATCH /recurring/plans/{id}: the fields Xendit
// lets a plan change (amount, payment_methods, notification_config,
// metadata, description, items) and the engine's usage_charges,
// review_policy, amount_lead_days, failed_cycle_action and return URLs.
// null clears an optional field; a field left out stays as it is.
type PlanPatch struct {
	Amount             billing.Optional[billing.Number]             `json:"amount"`
	PaymentMethods     billing.Optional[[]PaymentMethodInput]       `json:"payment_methods"`
	NotificationConfig billing.Optional[NotificationConfigInput]    `json:"notification_config"`
	Metadata           billing.Optional[map[string]json.RawMessage] `json:"metadata"`
	Description        billing.Optional[string]                     `json:"description"`
	Items              billing.Optional[[]ItemInput]                `json:"items"`
	SuccessReturnURL   billing.Optional[string]                     `json:"success_return_url"`
	FailureReturnURL   billing.Optional[string]                     `json:"failure_return_url"`
	UsageCharges       billing.Optional[[]UsageChargeInput]         `json:"usage_charges"`
	ReviewPolicy       billing.Optional[json.RawMessage]            `json:"review_policy"`
	AmountLeadDays     billing.Optional[int]                        `json:"amount_lead_days"`
	FailedCycleAction  billing.Optional[string]                     `json:"failed_cycle_action"`

	// Fields a plan keeps for life; sending one is a 400 naming it.
	ReferenceID         json.RawMessage `json:"reference_id"`
	CustomerID          json.RawMessage `json:"customer_id"`
	Currency            json.RawMessage `json:"currency"`
	Schedule            json.RawMessage `json:"schedule"`
	ScheduleID          json.RawMessage `json:"schedule_id"`
	RecurringAction     json.RawMessage `json:"recurring_action"`
	ImmediateActionType json.RawMessage `json:"immediate_action_type"`
}

// DecodePlanPatch reads a PATCH /recurring/plans/{id} body; apply
// validates it against the plan.
func DecodePlanPatch(body []byte) (PlanPatch, error) {
	var p PlanPatch
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return PlanPatch{}, err
	}
	var v billing.Validation
	for name, raw := range map[string]json.RawMessage{"reference_id": p.ReferenceID, "customer_id": p.CustomerID,
		"currency": p.Currency, "schedule": p.Schedule, "schedule_id": p.ScheduleID, "recurring_action": p.RecurringAction,
		"immediate_action_type": p.ImmediateActionType} {
		v.Check(raw == nil, name, "cannot be changed; create another plan instead (a schedule changes with PATCH /recurring/schedules/{id})")
	}
	return p, v.Err()
}

// apply changes p as the patch says and validates the result against the
// plan's currency and schedule; on error p may be partly changed and must
// be discarded.
func (pp PlanPatch) apply(p *Plan) error {
	var v billing.Validation
	cur := p.Currency
	if pp.Amount.Set {
		if v.Check(!pp.Amount.Null, "amount", "cannot be null (0 for no base fee)") {
			p.Amount = checkMoney(&v, "amount", pp.Amount.Value.Decimal, cur)
		}
	}
	if pp.PaymentMethods.Set {
		p.PaymentMethods = checkPaymentMethods(&v, pp.PaymentMethods.Value)
	}
	if pp.NotificationConfig.Set {
		p.NotificationConfig = nil
		if !pp.NotificationConfig.Null {
			p.NotificationConfig = checkNotificationConfig(&v, &pp.NotificationConfig.Value)
		}
	}
	if pp.Metadata.Set {
		p.Metadata = pp.Metadata.Value
	}
	setOptional(&p.Description, pp.Description)
	setOptional(&p.SuccessReturnURL, pp.SuccessReturnURL)
	setOptional(&p.FailureReturnURL, pp.FailureReturnURL)
	checkCommon(&v, p)
	if pp.Items.Set {
		p.Items = checkItems(&v, pp.Items.Value, cur)
	}
	checkItemsTotal(&v, p.Items, p.Amount, cur, pp.Amount.Set || pp.Items.Set)
	if pp.UsageCharges.Set {
		p.UsageCharges = checkUsageCharges(&v, pp.UsageCharges.Value, cur)
	}
	if pp.ReviewPolicy.Set {
		p.ReviewPolicy = defaultReviewPolicy()
		if !pp.ReviewPolicy.Null {
			p.ReviewPolicy = checkReviewPolicy(&v, pp.ReviewPolicy.Value, cur)
		}
	}
	if pp.AmountLeadDays.Set {
		if v.Check(!pp.AmountLeadDays.Null, "amount_lead_days", "cannot be null") {
			p.AmountLeadDays = pp.AmountLeadDays.Value
			checkLeadDays(&v, p.AmountLeadDays, p.schedule)
		}
	}
	if pp.FailedCycleAction.Set {
		if v.Check(!pp.FailedCycleAction.Null, "failed_cycle_action", "cannot be null") {
			p.FailedCycleAction = pp.FailedCycleAction.Value
			checkFailedCycleAction(&v, p.FailedCycleAction)
		}
	}
	return v.Err()
}

func setOptional(dst **string, o billing.Optional[string]) {
	if !o.Set {
		return
	}
	*dst = nil
	if !o.Null {
		s := o.Value
		*dst = &s
	}
}

// SchedulePatch is the body of PATCH /recurring/schedules/{id}. It applies
// from the next cycle that has not been created (SPEC §4.5). null clears
// total_recurrence (no end) and total_retry (no retries, which clears the
// other retry fields too).
type SchedulePatch struct {
	ReferenceID                billing.Optional[string] `json:"reference_id"`
	Interval                   billing.Optional[string] `json:"interval"`
	IntervalCount              billing.Optional[int]    `json:"interval_count"`
	TotalRecurrence            billing.Optional[int]    `json:"total_recurrence"`
	AnchorDate                 billing.Optional[string] `json:"anchor_date"`
	RetryInterval              billing.Optional[string] `json:"retry_interval"`
	RetryIntervalCount         billing.Optional[int]    `json:"retry_interval_count"`
	TotalRetry                 billing.Optional[int]    `json:"total_retry"`
	FailedAttemptNotifications billing.Optional[[]int]  `json:"failed_attempt_notifications"`
}

// DecodeSchedulePatch reads a PATCH /recurring/schedules/{id} body; apply
// validates it against the schedule.
func DecodeSchedulePatch(body []byte) (SchedulePatch, error) {
	var p SchedulePatch
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return SchedulePatch{}, err
	}
	return p, nil
}

// apply changes s as the patch says and validates the result.
func (sp SchedulePatch) apply(s *Schedule) error {
	var v billing.Validation
	notNull := func(name string, set, null bool) bool {
		return !set || v.Check(!null, name, "cannot be null")
	}
	if sp.ReferenceID.Set && notNull("reference_id", true, sp.ReferenceID.Null) {
		s.ReferenceID = sp.ReferenceID.Value
		checkText(&v, "reference_id", &s.ReferenceID, true, maxReference)
	}
	if sp.Interval.Set && notNull("interval", true, sp.Interval.Null) {
		s.Interval = plans.Interval(sp.Interval.Value)
	}
	if sp.IntervalCount.Set && notNull("interval_count", true, sp.IntervalCount.Null) {
		s.IntervalCount = sp.IntervalCount.Value
	}
	if sp.TotalRecurrence.Set {
		s.TotalRecurrence = nil
		if !sp.TotalRecurrence.Null {
			s.TotalRecurrence = ptr(sp.TotalRecurrence.Value)
		}
	}
	if sp.AnchorDate.Set && notNull("anchor_date", true, sp.AnchorDate.Null) {
		t, err := time.Parse(time.RFC3339Nano, sp.AnchorDate.Value)
		if v.Check(err == nil, "anchor_date", "must be an RFC 3339 time such as 2026-02-15T08:00:00Z") {
			s.AnchorDate = t.UTC().Truncate(time.Microsecond)
		}
	}
	switch {
	case sp.TotalRetry.Set && sp.TotalRetry.Null:
		s.TotalRetry, s.RetryInterval, s.RetryIntervalCount = nil, nil, nil
	case sp.TotalRetry.Set:
		if s.TotalRetry == nil {
			s.RetryInterval, s.RetryIntervalCount = ptr("DAY"), ptr(1)
		}
		s.TotalRetry = ptr(sp.TotalRetry.Value)
	}
	if sp.RetryInterval.Set && notNull("retry_interval", true, sp.RetryInterval.Null) {
		s.RetryInterval = ptr(sp.RetryInterval.Value)
	}
	if sp.RetryIntervalCount.Set && notNull("retry_interval_count", true, sp.RetryIntervalCount.Null) {
		s.RetryIntervalCount = ptr(sp.RetryIntervalCount.Value)
	}
	if sp.FailedAttemptNotifications.Set {
		s.FailedAttemptNotifications = append([]int{}, sp.FailedAttemptNotifications.Value...)
	}
	if err := v.Err(); err != nil {
		return err
	}
	validateSchedule(&v, "", s, true, true)
	return v.Err()
}

// CyclePatch is the body of PATCH /recurring/plans/{plan_id}/cycles/{id}
// (Xendit's update cycle): amount (null removes the override), currency
// (only the plan's), scheduled_timestamp and metadata.
type CyclePatch struct {
	Amount             billing.Optional[billing.Number]             `json:"amount"`
	Currency           billing.Optional[string]                     `json:"currency"`
	ScheduledTimestamp billing.Optional[string]                     `json:"scheduled_timestamp"`
	Metadata           billing.Optional[map[string]json.RawMessage] `json:"metadata"`
}

// DecodeCyclePatch reads a cycle PATCH body; the service validates it
// against the cycle.
func DecodeCyclePatch(body []byte) (CyclePatch, error) {
	var p CyclePatch
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return CyclePatch{}, err
	}
	return p, nil
}
