package engine

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
	"github.com/uptrace/bun"
)

// Plan statuses (SPEC §4.4).
const (
	// PlanStatusRequiresAction: no ACTIVE token yet; the customer must save a
	// payment method through the plan's AUTH page.
	PlanStatusRequiresAction = "REQUIRES_ACTION"
	// PlanStatusPending: the plan has a token and waits for its immediate charge
	// (immediate_action_type FULL_AMOUNT), which the engine makes.
	PlanStatusPending = "PENDING"
	// PlanStatusActive: the plan bills its cycles.
	PlanStatusActive = "ACTIVE"
	// PlanStatusInactive: deactivated or ended; it never becomes active again.
	PlanStatusInactive = "INACTIVE"
)

// Cycle statuses (SPEC §4.6; CANCELLED with two Ls, as Xendit spells it).
const (
	CycleStatusScheduled = "SCHEDULED"
	CycleStatusPending   = "PENDING"
	CycleStatusRetrying  = "RETRYING"
	CycleStatusSucceeded = "SUCCEEDED"
	CycleStatusFailed    = "FAILED"
	CycleStatusCancelled = "CANCELLED"
)

// Cycle types.
const (
	CycleTypeScheduled = "SCHEDULED"
	CycleTypeImmediate = "IMMEDIATE"
)

// A cycle's next_action (docs/engine.md): what the engine does next for
// it, due at next_action_at by the business clock.
const (
	// ActionFixAmount is a cycle's first next_action: fix its amount at fix_at.
	ActionFixAmount = "FIX_AMOUNT"
	// ActionCharge opens the cycle's next charge attempt (or the next action
	// of the current one): at scheduled_timestamp, a retry time, or now.
	ActionCharge = "CHARGE"
	// ActionSendCharge (re)sends the charge of the attempt row written last:
	// due when the worker that wrote it has not recorded the call within
	// its lease.
	ActionSendCharge = "SEND_CHARGE"
)

// Plan fields' fixed values.
const (
	recurringActionPayment = "PAYMENT"
	immediateFullAmount    = "FULL_AMOUNT"
	failedCycleStop        = "STOP"
	failedCycleResume      = "RESUME"
	reviewAuto             = "AUTO"
	reviewManual           = "MANUAL"
)

// Schedule is when a plan's cycles fall due and how failed charges are
// retried (SPEC §4.5). A schedule can serve several plans (schedule_id).
type Schedule struct {
	bun.BaseModel `bun:"table:recurring_schedules"`

	ID            string         `bun:"id,pk"`
	BusinessID    string         `bun:"business_id"`
	ReferenceID   string         `bun:"reference_id"`
	Interval      plans.Interval `bun:"interval"`
	IntervalCount int            `bun:"interval_count"`
	// TotalRecurrence is how many cycles a plan on the schedule has; nil
	// means no end.
	TotalRecurrence *int      `bun:"total_recurrence"`
	AnchorDate      time.Time `bun:"anchor_date"`
	// RetryInterval ("DAY"), RetryIntervalCount and TotalRetry are all nil
	// when failed charges are not retried.
	RetryInterval      *string `bun:"retry_interval"`
	RetryIntervalCount *int    `bun:"retry_interval_count"`
	TotalRetry         *int    `bun:"total_retry"`
	// FailedAttemptNotifications are the attempt numbers (1 = the first
	// attempt) whose failure the customer is told about.
	FailedAttemptNotifications []int     `bun:"failed_attempt_notifications,array"`
	Created                    time.Time `bun:"created"`
	Updated                    time.Time `bun:"updated"`
}

// Timetable returns the schedule's timetable of cycle dates.
func (s *Schedule) Timetable() plans.Timetable {
	return plans.Timetable{Anchor: s.AnchorDate, Interval: s.Interval, IntervalCount: s.IntervalCount, TotalRecurrence: s.TotalRecurrence}
}

type scheduleView struct {
	ID                         string  `json:"id"`
	ReferenceID                string  `json:"reference_id"`
	Interval                   string  `json:"interval"`
	IntervalCount              int     `json:"interval_count"`
	TotalRecurrence            *int    `json:"total_recurrence"`
	AnchorDate                 string  `json:"anchor_date"`
	RetryInterval              *string `json:"retry_interval"`
	RetryIntervalCount         *int    `json:"retry_interval_count"`
	TotalRetry                 *int    `json:"total_retry"`
	FailedAttemptNotifications []int   `json:"failed_attempt_notifications"`
	Created                    string  `json:"created"`
	Updated                    string  `json:"updated"`
}

// MarshalJSON writes the schedule in Xendit's recurring schedule shape.
func (s *Schedule) MarshalJSON() ([]byte, error) {
	n := s.FailedAttemptNotifications
	if n == nil {
		n = []int{}
	}
	return json.Marshal(scheduleView{
		ID: s.ID, ReferenceID: s.ReferenceID, Interval: string(s.Interval), IntervalCount: s.IntervalCount,
		TotalRecurrence: s.TotalRecurrence, AnchorDate: billing.FormatTime(s.AnchorDate), RetryInterval: s.RetryInterval,
		RetryIntervalCount: s.RetryIntervalCount, TotalRetry: s.TotalRetry, FailedAttemptNotifications: n,
		Created: billing.FormatTime(s.Created), Updated: billing.FormatTime(s.Updated),
	})
}

// PaymentMethod is a token a plan charges, tried in rank order within an
// attempt.
type PaymentMethod struct {
	PaymentTokenID string `json:"payment_token_id"`
	Rank           int    `json:"rank"`
}

// NotificationConfig says on which channels the customer is told of each
// moment of a cycle, and in which language.
type NotificationConfig struct {
	RecurringCreated   []string `json:"recurring_created"`
	RecurringSucceeded []string `json:"recurring_succeeded"`
	RecurringFailed    []string `json:"recurring_failed"`
	Locale             string   `json:"locale"`
}

// Item is one line of what a plan's base amount pays for (Xendit's items).
type Item struct {
	Type          string                     `json:"type"`
	Name          string                     `json:"name"`
	NetUnitAmount billing.Number             `json:"net_unit_amount"`
	Quantity      int                        `json:"quantity"`
	URL           *string                    `json:"url,omitempty"`
	Category      *string                    `json:"category,omitempty"`
	Subcategory   *string                    `json:"subcategory,omitempty"`
	Description   *string                    `json:"description,omitempty"`
	Metadata      map[string]json.RawMessage `json:"metadata,omitempty"`
}

// UsageCharge prices one meter's usage in each cycle (SPEC §4.4).
type UsageCharge struct {
	// Meter is the meter's code.
	Meter       string          `json:"meter"`
	Description *string         `json:"description"`
	Price       plans.PriceJSON `json:"price"`
	// MinimumAmount, when set, tops the charge up to this amount (a
	// MINIMUM line).
	MinimumAmount *billing.Number `json:"minimum_amount"`
}

// ReviewPolicy says when a fixed invoice waits for finance (SPEC §5.6):
// always (MANUAL), or when an anomaly rule fires (AUTO): the total above
// MaxTotal, or a meter's usage above UsageFactor × (or below 1/UsageFactor
// of) the mean of the previous three cycles. The engine applies it.
type ReviewPolicy struct {
	Mode        string          `json:"mode"`
	MaxTotal    *billing.Number `json:"max_total"`
	UsageFactor billing.Number  `json:"usage_factor"`
}

// defaultReviewPolicy is AUTO with no total threshold and a factor of 3.
func defaultReviewPolicy() ReviewPolicy {
	return ReviewPolicy{Mode: reviewAuto, UsageFactor: billing.NumberOf(decimal.NewFromInt(3))}
}

// Action is something the customer must do before a plan can activate
// (Xendit's plan actions[]).
type Action struct {
	Action  string  `json:"action"`
	URLType string  `json:"url_type"`
	Method  string  `json:"method"`
	URL     *string `json:"url"`
}

// Plan is a recurring plan: a customer's base fee and usage charges,
// billed on a schedule from saved payment methods (SPEC §4.4).
type Plan struct {
	bun.BaseModel `bun:"table:recurring_plans"`

	ID                  string                     `bun:"id,pk"`
	BusinessID          string                     `bun:"business_id"`
	CustomerID          string                     `bun:"customer_id"`
	ReferenceID         string                     `bun:"reference_id"`
	RecurringAction     string                     `bun:"recurring_action"`
	Currency            billing.Currency           `bun:"currency"`
	Amount              decimal.Decimal            `bun:"amount,type:numeric"`
	ScheduleID          string                     `bun:"schedule_id"`
	PaymentMethods      []PaymentMethod            `bun:"payment_methods,type:jsonb"`
	ImmediateActionType *string                    `bun:"immediate_action_type"`
	NotificationConfig  *NotificationConfig        `bun:"notification_config,type:jsonb"`
	FailedCycleAction   string                     `bun:"failed_cycle_action"`
	Metadata            map[string]json.RawMessage `bun:"metadata,type:jsonb"`
	Description         *string                    `bun:"description"`
	Items               []Item                     `bun:"items,type:jsonb"`
	SuccessReturnURL    *string                    `bun:"success_return_url"`
	FailureReturnURL    *string                    `bun:"failure_return_url"`
	UsageCharges        []UsageCharge              `bun:"usage_charges,type:jsonb"`
	AmountLeadDays      int                        `bun:"amount_lead_days"`
	ReviewPolicy        ReviewPolicy               `bun:"review_policy,type:jsonb"`
	Status              string                     `bun:"status"`
	// RecurringCycleCount is how many cycles the plan has had created.
	RecurringCycleCount int `bun:"recurring_cycle_count"`
	// ActivatedAt is when the plan became ACTIVE, by the business clock:
	// the start of cycle 1's usage window; usage before it is never billed
	// by the plan.
	ActivatedAt *time.Time `bun:"activated_at"`
	FailureCode *string    `bun:"failure_code"`
	// AuthSecretHash is the SHA-256 of the secret in the AUTH page's URL;
	// AuthAttempt numbers the Pay and Save attempts made from the page and
	// AuthPaymentRequestID is the latest one's payment request.
	AuthSecretHash       []byte    `bun:"auth_secret_hash"`
	AuthAttempt          int       `bun:"auth_attempt"`
	AuthPaymentRequestID *string   `bun:"auth_payment_request_id"`
	Created              time.Time `bun:"created"`
	Updated              time.Time `bun:"updated"`

	// Version is the row version (xmin) the plan was read at, where the
	// query asks for it (lockPlansSQL): see settle_opened.go.
	Version int64 `bun:"xmin,scanonly"`

	// schedule is the plan's schedule, loaded with it.
	schedule *Schedule
	// authURL is the AUTH page's address, known only in the response that
	// created the plan (the secret is stored hashed).
	authURL string
}

// Schedule returns the plan's schedule, as loaded with it.
func (p *Plan) Schedule() *Schedule { return p.schedule }

type planView struct {
	ID                  string                     `json:"id"`
	ReferenceID         string                     `json:"reference_id"`
	CustomerID          string                     `json:"customer_id"`
	RecurringAction     string                     `json:"recurring_action"`
	RecurringCycleCount int                        `json:"recurring_cycle_count"`
	Currency            string                     `json:"currency"`
	Amount              billing.Number             `json:"amount"`
	Status              string                     `json:"status"`
	ScheduleID          string                     `json:"schedule_id"`
	Schedule            *Schedule                  `json:"schedule"`
	PaymentMethods      []PaymentMethod            `json:"payment_methods"`
	ImmediateActionType *string                    `json:"immediate_action_type"`
	NotificationConfig  *NotificationConfig        `json:"notification_config"`
	FailedCycleAction   string                     `json:"failed_cycle_action"`
	Metadata            map[string]json.RawMessage `json:"metadata"`
	Description         *string                    `json:"description"`
	Items               []Item                     `json:"items"`
	Actions             []Action                   `json:"actions"`
	SuccessReturnURL    *string                    `json:"success_return_url"`
	FailureReturnURL    *string                    `json:"failure_return_url"`
	FailureCode         *string                    `json:"failure_code"`
	UsageCharges        []UsageCharge              `json:"usage_charges"`
	AmountLeadDays      int                        `json:"amount_lead_days"`
	ReviewPolicy        ReviewPolicy               `json:"review_policy"`
	ActivatedAt         *string                    `json:"activated_at"`
	Created             string                     `json:"created"`
	Updated             string                     `json:"updated"`
}

// MarshalJSON writes the plan in Xendit's recurring plan shape, with the
// engine's usage_charges, amount_lead_days, review_policy and
// activated_at. A REQUIRES_ACTION plan has one AUTH action; its url is
// known only in the response that created the plan and is null elsewhere.
func (p *Plan) MarshalJSON() ([]byte, error) {
	v := planView{
		ID: p.ID, ReferenceID: p.ReferenceID, CustomerID: p.CustomerID, RecurringAction: p.RecurringAction,
		RecurringCycleCount: p.RecurringCycleCount, Currency: string(p.Currency), Amount: billing.NumberOf(p.Amount),
		Status: p.Status, ScheduleID: p.ScheduleID, Schedule: p.schedule, PaymentMethods: p.PaymentMethods,
		ImmediateActionType: p.ImmediateActionType, NotificationConfig: p.NotificationConfig, FailedCycleAction: p.FailedCycleAction,
		Metadata: p.Metadata, Description: p.Description, Items: p.Items, Actions: []Action{},
		SuccessReturnURL: p.SuccessReturnURL, FailureReturnURL: p.FailureReturnURL, FailureCode: p.FailureCode,
		UsageCharges: p.UsageCharges, AmountLeadDays: p.AmountLeadDays, ReviewPolicy: p.ReviewPolicy,
		Created: billing.FormatTime(p.Created), Updated: billing.FormatTime(p.Updated),
	}
	if v.PaymentMethods == nil {
		v.PaymentMethods = []PaymentMethod{}
	}
	if v.UsageCharges == nil {
		v.UsageCharges = []UsageCharge{}
	}
	if p.Status == PlanStatusRequiresAction {
		a := Action{Action: "AUTH", URLType: "WEB", Method: "GET"}
		if p.authURL != "" {
			a.URL = &p.authURL
		}
		v.Actions = append(v.Actions, a)
	}
	if p.ActivatedAt != nil {
		s := billing.FormatTime(*p.ActivatedAt)
		v.ActivatedAt = &s
	}
	return json.Marshal(v)
}

// Cycle is one billing period of a plan: charged at its scheduled
// timestamp, for the usage of its window (SPEC §4.6, §5.2).
type Cycle struct {
	bun.BaseModel `bun:"table:recurring_cycles"`

	ID                 string    `bun:"id,pk"`
	BusinessID         string    `bun:"business_id"`
	PlanID             string    `bun:"plan_id"`
	CustomerID         string    `bun:"customer_id"`
	CycleNumber        int       `bun:"cycle_number"`
	Type               string    `bun:"type"`
	Status             string    `bun:"status"`
	ScheduledTimestamp time.Time `bun:"scheduled_timestamp"`
	Currency           string    `bun:"currency"`
	// Amount is the amount the engine fixed (NULL until then).
	Amount decimal.NullDecimal `bun:"amount,type:numeric"`
	// AmountOverride is the amount the utility set with PATCH, which the
	// engine honours when it fixes the amount (an ADJUSTMENT line).
	AmountOverride decimal.NullDecimal `bun:"amount_override,type:numeric"`
	AmountFixedAt  *time.Time          `bun:"amount_fixed_at"`
	// FixAt is the deadline of the amount (plans.FixAt), and the end of
	// the usage window [UsageWindowStart, UsageWindowEnd).
	FixAt            time.Time `bun:"fix_at"`
	UsageWindowStart time.Time `bun:"usage_window_start"`
	UsageWindowEnd   time.Time `bun:"usage_window_end"`
	InvoiceID        *string   `bun:"invoice_id"`
	// AttemptCount counts the cycle's scheduled attempts (INITIAL and
	// RETRY), which the retry budget (1 + total_retry) counts;
	// ForcedAttemptCount those made by force_attempt (at most 5).
	AttemptCount       int `bun:"attempt_count"`
	ForcedAttemptCount int `bun:"forced_attempt_count"`
	// RetryIntervalCount, TotalRetry and FailedAttemptNotifications are
	// the schedule's retry rules when the cycle was created, which its
	// failed attempts follow (nil: no retries).
	RetryIntervalCount         *int                       `bun:"retry_interval_count"`
	TotalRetry                 *int                       `bun:"total_retry"`
	FailedAttemptNotifications []int                      `bun:"failed_attempt_notifications,array"`
	Metadata                   map[string]json.RawMessage `bun:"metadata,type:jsonb"`
	// NextAction is the engine's next step for the cycle (FIX_AMOUNT at
	// creation), due at NextActionAt; both NULL once nothing is left to do.
	NextAction   *string    `bun:"next_action"`
	NextActionAt *time.Time `bun:"next_action_at"`
	Created      time.Time  `bun:"created"`
	Updated      time.Time  `bun:"updated"`

	// plan is the cycle's plan, whose reference_id and base amount the
	// API shows; set by bind.
	plan *Plan
	// attempts are the cycle's attempt rows in order, when loaded
	// (loadAttempts); the API shows them as attempt_details.
	attempts []*Attempt
}

// bind attaches the cycle's plan, which its JSON needs.
func (c *Cycle) bind(p *Plan) *Cycle {
	c.plan = p
	return c
}

// ShownAmount is the amount the API shows: the fixed amount once fixed
// (its invoice's total, which follows adjustments), else the utility's
// override when set, else the plan's base amount (what a new cycle would
// charge without usage, as Xendit shows it).
func (c *Cycle) ShownAmount() decimal.Decimal {
	switch {
	case c.Amount.Valid:
		return c.Amount.Decimal
	case c.AmountOverride.Valid:
		return c.AmountOverride.Decimal
	}
	return c.plan.Amount
}

type windowView struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type cycleView struct {
	ID                 string                     `json:"id"`
	ReferenceID        string                     `json:"reference_id"`
	PlanID             string                     `json:"plan_id"`
	CustomerID         string                     `json:"customer_id"`
	RecurringAction    string                     `json:"recurring_action"`
	Type               string                     `json:"type"`
	CycleNumber        int                        `json:"cycle_number"`
	AttemptCount       int                        `json:"attempt_count"`
	ForcedAttemptCount int                        `json:"forced_attempt_count"`
	AttemptDetails     []attemptView              `json:"attempt_details"`
	Status             string                     `json:"status"`
	ScheduledTimestamp string                     `json:"scheduled_timestamp"`
	Currency           string                     `json:"currency"`
	Amount             billing.Number             `json:"amount"`
	Metadata           map[string]json.RawMessage `json:"metadata"`
	UsageWindow        windowView                 `json:"usage_window"`
	FixAt              string                     `json:"fix_at"`
	AmountFixedAt      *string                    `json:"amount_fixed_at"`
	InvoiceID          *string                    `json:"invoice_id"`
	Created            string                     `json:"created"`
	Updated            string                     `json:"updated"`
}

// MarshalJSON writes the cycle in Xendit's recurring cycle shape, with the
// engine's usage_window, fix_at, amount_fixed_at and invoice_id.
func (c *Cycle) MarshalJSON() ([]byte, error) {
	v := cycleView{
		ID: c.ID, ReferenceID: c.plan.ReferenceID, PlanID: c.PlanID, CustomerID: c.CustomerID, RecurringAction: c.plan.RecurringAction,
		Type: c.Type, CycleNumber: c.CycleNumber, AttemptCount: c.AttemptCount, ForcedAttemptCount: c.ForcedAttemptCount,
		AttemptDetails: make([]attemptView, len(c.attempts)), Status: c.Status, ScheduledTimestamp: billing.FormatTime(c.ScheduledTimestamp), Currency: c.Currency,
		Amount: billing.NumberOf(c.ShownAmount()), Metadata: c.Metadata,
		UsageWindow: windowView{Start: billing.FormatTime(c.UsageWindowStart), End: billing.FormatTime(c.UsageWindowEnd)},
		FixAt:       billing.FormatTime(c.FixAt), InvoiceID: c.InvoiceID,
		Created: billing.FormatTime(c.Created), Updated: billing.FormatTime(c.Updated),
	}
	if c.AmountFixedAt != nil {
		s := billing.FormatTime(*c.AmountFixedAt)
		v.AmountFixedAt = &s
	}
	for i, a := range c.attempts {
		v.AttemptDetails[i] = a.view()
	}
	return json.Marshal(v)
}
