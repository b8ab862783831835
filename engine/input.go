package engine

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/plans"
	"github.com/tagihan/billing/providers"
)

// Limits on plan fields.
const (
	maxReference      = 255
	maxDescription    = 1000
	maxURL            = 2048
	maxPaymentMethods = 5
	maxItems          = 50
	maxUsageCharges   = 20
	maxItemQuantity   = 1_000_000
	maxUsageFactor    = 1000
)

// Bounds of a schedule (Xendit's): interval_count 1–365, total_recurrence
// 1–32000, retry_interval_count 1–365, total_retry 1–10. Anchors are
// taken from 2000 to 2099, far around any plan a utility has.
var (
	minAnchor = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxAnchor = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// PlanInput is the body of POST /recurring/plans: Xendit's recurring plan
// with the engine's usage_charges, amount_lead_days and review_policy.
// Unknown fields are ignored, as Xendit's SDKs send more.
type PlanInput struct {
	ReferenceID         string                     `json:"reference_id"`
	CustomerID          string                     `json:"customer_id"`
	RecurringAction     *string                    `json:"recurring_action"`
	Currency            string                     `json:"currency"`
	Amount              *billing.Number            `json:"amount"`
	Schedule            *ScheduleInput             `json:"schedule"`
	ScheduleID          *string                    `json:"schedule_id"`
	PaymentMethods      []PaymentMethodInput       `json:"payment_methods"`
	ImmediateActionType *string                    `json:"immediate_action_type"`
	NotificationConfig  *NotificationConfigInput   `json:"notification_config"`
	FailedCycleAction   *string                    `json:"failed_cycle_action"`
	Metadata            map[string]json.RawMessage `json:"metadata"`
	Description         *string                    `json:"description"`
	Items               []ItemInput                `json:"items"`
	SuccessReturnURL    *string                    `json:"success_return_url"`
	FailureReturnURL    *string                    `json:"failure_return_url"`
	UsageCharges        []UsageChargeInput         `json:"usage_charges"`
	AmountLeadDays      *int                       `json:"amount_lead_days"`
	ReviewPolicy        json.RawMessage            `json:"review_policy"`
}

// ScheduleInput is a plan's inline schedule.
type ScheduleInput struct {
	ReferenceID                string  `json:"reference_id"`
	Interval                   string  `json:"interval"`
	IntervalCount              *int    `json:"interval_count"`
	TotalRecurrence            *int    `json:"total_recurrence"`
	AnchorDate                 *string `json:"anchor_date"`
	RetryInterval              *string `json:"retry_interval"`
	RetryIntervalCount         *int    `json:"retry_interval_count"`
	TotalRetry                 *int    `json:"total_retry"`
	FailedAttemptNotifications []int   `json:"failed_attempt_notifications"`
}

// PaymentMethodInput names a saved token and its rank (1 is tried first);
// a missing rank is the entry's position.
type PaymentMethodInput struct {
	PaymentTokenID string `json:"payment_token_id"`
	Rank           *int   `json:"rank"`
}

// NotificationConfigInput is notification_config as sent.
type NotificationConfigInput struct {
	RecurringCreated   []string `json:"recurring_created"`
	RecurringSucceeded []string `json:"recurring_succeeded"`
	RecurringFailed    []string `json:"recurring_failed"`
	Locale             *string  `json:"locale"`
}

// ItemInput is an item as sent.
type ItemInput struct {
	Type          string                     `json:"type"`
	Name          string                     `json:"name"`
	NetUnitAmount *billing.Number            `json:"net_unit_amount"`
	Quantity      *int                       `json:"quantity"`
	URL           *string                    `json:"url"`
	Category      *string                    `json:"category"`
	Subcategory   *string                    `json:"subcategory"`
	Description   *string                    `json:"description"`
	Metadata      map[string]json.RawMessage `json:"metadata"`
}

// UsageChargeInput is a usage charge as sent.
type UsageChargeInput struct {
	Meter         string           `json:"meter"`
	Description   *string          `json:"description"`
	Price         *plans.PriceJSON `json:"price"`
	MinimumAmount *billing.Number  `json:"minimum_amount"`
}

// CreatePlanParams is a validated plan creation. What needs the database
// (the customer, the tokens, the meters, schedule_id) is checked by
// CreatePlan.
type CreatePlanParams struct {
	Plan Plan
	// Schedule is the inline schedule to create, or nil when ScheduleID
	// names an existing one.
	Schedule   *Schedule
	ScheduleID string
	// leadGiven says whether amount_lead_days was sent.
	leadGiven bool
}

// DecodePlan reads and validates a POST /recurring/plans body. Every
// problem is reported at once as an API_VALIDATION_ERROR naming the fields.
func DecodePlan(body []byte) (CreatePlanParams, error) {
	var in PlanInput
	if err := billing.DecodeJSON(body, &in, false); err != nil {
		return CreatePlanParams{}, err
	}
	var v billing.Validation
	p := Plan{
		ReferenceID: in.ReferenceID, CustomerID: in.CustomerID, RecurringAction: recurringActionPayment,
		FailedCycleAction: failedCycleResume, Metadata: in.Metadata, Description: in.Description,
		SuccessReturnURL: in.SuccessReturnURL, FailureReturnURL: in.FailureReturnURL, AmountLeadDays: 1,
		ReviewPolicy: defaultReviewPolicy(),
	}
	checkText(&v, "reference_id", &in.ReferenceID, true, maxReference)
	if v.Check(in.CustomerID != "", "customer_id", "is required") {
		v.Check(billing.ValidID(billing.PrefixCustomer, in.CustomerID), "customer_id", "must be a customer id (cust-…)")
	}
	if in.RecurringAction != nil {
		v.Check(*in.RecurringAction == recurringActionPayment, "recurring_action", "must be PAYMENT")
	}
	cur := checkCurrency(&v, "currency", in.Currency)
	p.Currency = cur
	if in.Amount == nil {
		v.Add("amount", "is required: the base fee charged every cycle whatever the usage (0 for none)")
	} else {
		p.Amount = checkMoney(&v, "amount", in.Amount.Decimal, cur)
	}
	out := CreatePlanParams{}
	switch {
	case in.Schedule != nil && in.ScheduleID != nil:
		v.Add("schedule_id", "cannot be combined with schedule; give one of them")
	case in.Schedule != nil:
		out.Schedule = scheduleFromInput(&v, "schedule", in.Schedule)
	case in.ScheduleID != nil:
		if v.Check(billing.ValidID(billing.PrefixSchedule, *in.ScheduleID), "schedule_id", "must be a schedule id (resc-…)") {
			out.ScheduleID = *in.ScheduleID
		}
	default:
		v.Add("schedule", "is required, unless schedule_id names an existing schedule")
	}
	p.PaymentMethods = checkPaymentMethods(&v, in.PaymentMethods)
	if in.ImmediateActionType != nil {
		v.Check(*in.ImmediateActionType == immediateFullAmount, "immediate_action_type", "must be FULL_AMOUNT (charge the first cycle now) or left out")
		p.ImmediateActionType = in.ImmediateActionType
	}
	p.NotificationConfig = checkNotificationConfig(&v, in.NotificationConfig)
	if in.FailedCycleAction != nil {
		p.FailedCycleAction = *in.FailedCycleAction
		checkFailedCycleAction(&v, p.FailedCycleAction)
	}
	checkCommon(&v, &p)
	p.Items = checkItems(&v, in.Items, cur)
	checkItemsTotal(&v, p.Items, p.Amount, cur, in.Amount != nil)
	p.UsageCharges = checkUsageCharges(&v, in.UsageCharges, cur)
	if in.AmountLeadDays != nil {
		out.leadGiven = true
		p.AmountLeadDays = *in.AmountLeadDays
		if out.Schedule != nil {
			checkLeadDays(&v, p.AmountLeadDays, out.Schedule)
		} else {
			v.Check(p.AmountLeadDays >= 1, "amount_lead_days", "must be an integer of at least 1")
		}
	}
	if in.ReviewPolicy != nil && string(in.ReviewPolicy) != "null" {
		p.ReviewPolicy = checkReviewPolicy(&v, in.ReviewPolicy, cur)
	}
	if err := v.Err(); err != nil {
		return CreatePlanParams{}, err
	}
	out.Plan = p
	return out, nil
}

// checkCommon checks the plan fields that creation and PATCH share as
// they are stored: metadata, description and the return URLs.
func checkCommon(v *billing.Validation, p *Plan) {
	customers.ValidateMetadata(v, "metadata", p.Metadata)
	checkText(v, "description", p.Description, false, maxDescription)
	checkURL(v, "success_return_url", p.SuccessReturnURL)
	checkURL(v, "failure_return_url", p.FailureReturnURL)
}

// checkCurrency accepts the currencies customers can save a payment method
// in (those of the payment countries).
func checkCurrency(v *billing.Validation, field, code string) billing.Currency {
	var allowed []string
	for _, country := range providers.Countries() {
		c, _ := providers.CurrencyOf(country)
		allowed = append(allowed, string(c))
		if string(c) == code {
			return c
		}
	}
	sort.Strings(allowed)
	if code == "" {
		v.Add(field, "is required: one of "+strings.Join(allowed, ", "))
	} else {
		v.Add(field, "must be one of "+strings.Join(allowed, ", "))
	}
	return ""
}

// checkMoney checks an amount of cur: not negative, in cur's precision.
func checkMoney(v *billing.Validation, field string, d decimal.Decimal, cur billing.Currency) decimal.Decimal {
	if !v.Check(!d.IsNegative(), field, "must not be negative") {
		return d
	}
	if cur.Valid() {
		v.Check(billing.DecimalPlaces(d) <= cur.Exponent(), field, fmt.Sprintf("%s amounts allow at most %d decimal places", cur, cur.Exponent()))
	}
	return d
}

// scheduleFromInput builds and validates an inline schedule.
func scheduleFromInput(v *billing.Validation, prefix string, in *ScheduleInput) *Schedule {
	s := &Schedule{ReferenceID: in.ReferenceID, Interval: plans.Interval(in.Interval), TotalRecurrence: in.TotalRecurrence,
		RetryInterval: in.RetryInterval, RetryIntervalCount: in.RetryIntervalCount, TotalRetry: in.TotalRetry,
		FailedAttemptNotifications: append([]int{}, in.FailedAttemptNotifications...)}
	checkText(v, prefix+".reference_id", &in.ReferenceID, true, maxReference)
	if in.IntervalCount == nil {
		v.Add(prefix+".interval_count", "is required: the number of intervals between cycles, 1 to 365")
	} else {
		s.IntervalCount = *in.IntervalCount
	}
	if in.AnchorDate == nil {
		v.Add(prefix+".anchor_date", "is required: the first cycle's date and time, such as 2026-02-15T08:00:00Z")
	} else if t, err := time.Parse(time.RFC3339Nano, *in.AnchorDate); v.Check(err == nil, prefix+".anchor_date", "must be an RFC 3339 time such as 2026-02-15T08:00:00Z") {
		s.AnchorDate = t.UTC().Truncate(time.Microsecond)
	}
	if in.TotalRetry != nil {
		if s.RetryInterval == nil {
			s.RetryInterval = ptr("DAY")
		}
		if s.RetryIntervalCount == nil {
			s.RetryIntervalCount = ptr(1)
		}
	}
	validateSchedule(v, prefix, s, in.IntervalCount != nil, in.AnchorDate != nil)
	return s
}

// validateSchedule checks a schedule as it will be stored; countGiven and
// anchorGiven say whether those required fields were sent (they are not
// checked again when missing).
func validateSchedule(v *billing.Validation, prefix string, s *Schedule, countGiven, anchorGiven bool) {
	f := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	v.Check(s.Interval.Valid(), f("interval"), "must be DAY, WEEK or MONTH")
	if countGiven {
		v.Check(s.IntervalCount >= 1 && s.IntervalCount <= 365, f("interval_count"), "must be an integer from 1 to 365")
	}
	if s.TotalRecurrence != nil {
		v.Check(*s.TotalRecurrence >= 1 && *s.TotalRecurrence <= 32000, f("total_recurrence"), "must be an integer from 1 to 32000, or null for no end")
	}
	if anchorGiven {
		v.Check(!s.AnchorDate.Before(minAnchor) && s.AnchorDate.Before(maxAnchor), f("anchor_date"), "must be from 2000-01-01 to 2099-12-31")
	}
	retries := 0
	if s.TotalRetry == nil {
		v.Check(s.RetryInterval == nil, f("retry_interval"), "needs total_retry: without it failed charges are not retried")
		v.Check(s.RetryIntervalCount == nil, f("retry_interval_count"), "needs total_retry: without it failed charges are not retried")
	} else {
		retries = *s.TotalRetry
		v.Check(retries >= 1 && retries <= 10, f("total_retry"), "must be an integer from 1 to 10")
		v.Check(s.RetryInterval != nil && *s.RetryInterval == "DAY", f("retry_interval"), "must be DAY")
		v.Check(s.RetryIntervalCount != nil && *s.RetryIntervalCount >= 1 && *s.RetryIntervalCount <= 365, f("retry_interval_count"), "must be an integer from 1 to 365: the days between retries")
	}
	seen := map[int]bool{}
	for i, n := range s.FailedAttemptNotifications {
		field := fmt.Sprintf("%s[%d]", f("failed_attempt_notifications"), i)
		switch {
		case n < 1 || n > retries+1:
			v.Add(field, fmt.Sprintf("must be an attempt number from 1 to %d (the first attempt and total_retry retries)", retries+1))
		case seen[n]:
			v.Add(field, fmt.Sprintf("repeats attempt %d", n))
		}
		seen[n] = true
	}
	sort.Ints(s.FailedAttemptNotifications)
}

// checkLeadDays checks amount_lead_days against the schedule's period.
func checkLeadDays(v *billing.Validation, lead int, s *Schedule) {
	if !s.Interval.Valid() || s.IntervalCount < 1 {
		v.Check(lead >= 1, "amount_lead_days", "must be an integer of at least 1")
		return
	}
	most := s.Timetable().PeriodDays()
	v.Check(lead >= 1 && lead <= most, "amount_lead_days",
		fmt.Sprintf("must be an integer from 1 to %d: at most the schedule's shortest period in days", most))
}

// checkPaymentMethods checks the tokens' shape: ids, ranks 1–5 unique, no
// token twice. It keeps the order given, so that errors name the index
// sent; checkTokens sorts them by rank.
func checkPaymentMethods(v *billing.Validation, in []PaymentMethodInput) []PaymentMethod {
	if !v.Check(len(in) <= maxPaymentMethods, "payment_methods", fmt.Sprintf("must have at most %d tokens", maxPaymentMethods)) {
		return nil
	}
	out := make([]PaymentMethod, 0, len(in))
	ranks, tokens := map[int]bool{}, map[string]bool{}
	for i, m := range in {
		f := fmt.Sprintf("payment_methods[%d]", i)
		rank := i + 1
		if m.Rank != nil {
			rank = *m.Rank
		}
		switch {
		case !billing.ValidID(billing.PrefixPaymentToken, m.PaymentTokenID):
			v.Add(f+".payment_token_id", "must be a payment token id (pt-…)")
		case tokens[m.PaymentTokenID]:
			v.Add(f+".payment_token_id", "is listed twice")
		}
		switch {
		case rank < 1 || rank > maxPaymentMethods:
			v.Add(f+".rank", fmt.Sprintf("must be an integer from 1 to %d", maxPaymentMethods))
		case ranks[rank]:
			v.Add(f+".rank", fmt.Sprintf("repeats rank %d", rank))
		}
		ranks[rank], tokens[m.PaymentTokenID] = true, true
		out = append(out, PaymentMethod{PaymentTokenID: m.PaymentTokenID, Rank: rank})
	}
	return out
}

// Notification channels and locales.
var (
	channels = []string{"WHATSAPP", "EMAIL", "SMS"}
	locales  = []string{"en", "id"}
)

// checkNotificationConfig checks and normalizes notification_config; the
// locale defaults to en.
func checkNotificationConfig(v *billing.Validation, in *NotificationConfigInput) *NotificationConfig {
	if in == nil {
		return nil
	}
	out := &NotificationConfig{Locale: "en"}
	list := func(name string, chs []string) []string {
		seen := map[string]bool{}
		res := []string{}
		for i, ch := range chs {
			f := fmt.Sprintf("notification_config.%s[%d]", name, i)
			switch {
			case !contains(channels, ch):
				v.Add(f, "must be WHATSAPP, EMAIL or SMS")
			case seen[ch]:
				v.Add(f, "repeats "+ch)
			}
			seen[ch] = true
			res = append(res, ch)
		}
		return res
	}
	out.RecurringCreated = list("recurring_created", in.RecurringCreated)
	out.RecurringSucceeded = list("recurring_succeeded", in.RecurringSucceeded)
	out.RecurringFailed = list("recurring_failed", in.RecurringFailed)
	if in.Locale != nil {
		out.Locale = *in.Locale
		v.Check(contains(locales, out.Locale), "notification_config.locale", "must be en or id")
	}
	return out
}

func checkFailedCycleAction(v *billing.Validation, a string) {
	v.Check(a == failedCycleStop || a == failedCycleResume, "failed_cycle_action",
		"must be STOP (inactivate the plan and suspend the service) or RESUME (go on to the next cycle)")
}

func checkURL(v *billing.Validation, field string, s *string) {
	if s == nil {
		return
	}
	u, err := url.Parse(*s)
	v.Check(len(*s) <= maxURL && err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", field,
		"must be an absolute http or https URL of at most 2048 characters")
}

// checkText checks a string field: not blank when required, valid UTF-8
// without control characters, at most max characters.
func checkText(v *billing.Validation, field string, s *string, required bool, max int) {
	switch {
	case s == nil || *s == "":
		v.Check(!required, field, "is required")
	case required && strings.TrimSpace(*s) == "":
		v.Add(field, "must not be blank")
	case !utf8.ValidString(*s):
		v.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(*s) > max:
		v.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(*s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0:
		v.Add(field, "must not contain control characters")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
