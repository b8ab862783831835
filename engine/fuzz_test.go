package engine

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
)

// planSeed is the source document's plan with a graduated usage charge.
const planSeed = `{"reference_id": "test_reference_id", "customer_id": "cust-239c16f4-866d-43e8-9341-7badafbc019f",
 "recurring_action": "PAYMENT", "currency": "IDR", "amount": 100000,
 "schedule": {"reference_id": "test_reference_id", "interval": "MONTH", "interval_count": 1, "anchor_date": "2022-02-15T16:23:52Z",
  "retry_interval": "DAY", "retry_interval_count": 3, "total_retry": 3, "failed_attempt_notifications": [1,2,3]},
 "notification_config": {"recurring_created": ["WHATSAPP"], "recurring_succeeded": ["WHATSAPP"], "recurring_failed": ["WHATSAPP"]},
 "failed_cycle_action": "STOP", "metadata": null,
 "success_return_url": "https://www.xendit.co/successisthesumoffailures",
 "failure_return_url": "https://www.xendit.co/failureisthemotherofsuccess",
 "usage_charges": [{"meter": "electricity_kwh", "price": {"model": "GRADUATED", "tiers": [{"up_to": 100, "unit_amount": 1000}, {"up_to": null, "unit_amount": 2000, "flat_amount": 5000}]}, "minimum_amount": 10000}],
 "amount_lead_days": 2, "review_policy": {"mode": "MANUAL", "max_total": 5000000, "usage_factor": 2.5}}`

// FuzzDecodePlan feeds DecodePlan arbitrary bodies: it never panics, every
// refusal is a validation error naming fields, and every plan it accepts
// keeps the rules a stored plan relies on.
func FuzzDecodePlan(f *testing.F) {
	for _, seed := range []string{
		planSeed,
		`{}`, `[]`, `null`, `{"amount": "1e400"}`, `{"schedule": {"interval": "DAY", "interval_count": 1e3}}`,
		`{"reference_id":"r","customer_id":"cust-00000000-0000-7000-8000-000000000000","currency":"PHP","amount":"10.005","schedule_id":"resc-00000000-0000-7000-8000-000000000000"}`,
		`{"reference_id":"r","customer_id":"cust-00000000-0000-7000-8000-000000000000","currency":"PHP","amount":20,"items":[{"type":"FEE","name":"x","net_unit_amount":10,"quantity":2}],"schedule":{"reference_id":"s","interval":"WEEK","interval_count":2,"anchor_date":"2026-01-01T00:00:00+07:00"},"review_policy":"AUTO","amount_lead_days":14}`,
		`{"usage_charges":[{"meter":"m","price":{"model":"PACKAGE","package_size":0}}],"review_policy":{"usage_factor":0.1}}`,
		`{"payment_methods":[{"payment_token_id":"pt-00000000-0000-7000-8000-000000000000","rank":0},{"payment_token_id":"pt-00000000-0000-7000-8000-000000000000"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePlan(body)
		if err != nil {
			e, ok := billing.AsError(err)
			if !ok || e.Code != billing.EINVALID || len(e.Fields) == 0 {
				t.Fatalf("refusal is not a validation error naming fields: %#v", err)
			}
			return
		}
		plan := p.Plan
		if !plan.Currency.Valid() || plan.Amount.IsNegative() || billing.DecimalPlaces(plan.Amount) > plan.Currency.Exponent() {
			t.Fatalf("accepted amount %s %s", plan.Amount, plan.Currency)
		}
		if (p.Schedule == nil) == (p.ScheduleID == "") {
			t.Fatalf("schedule %v and schedule_id %q", p.Schedule, p.ScheduleID)
		}
		if s := p.Schedule; s != nil {
			if !s.Interval.Valid() || s.IntervalCount < 1 || s.IntervalCount > 365 || plan.AmountLeadDays > s.Timetable().PeriodDays() {
				t.Fatalf("accepted schedule %+v with lead %d", s, plan.AmountLeadDays)
			}
			if (s.TotalRetry == nil) != (s.RetryInterval == nil) || (s.TotalRetry == nil) != (s.RetryIntervalCount == nil) {
				t.Fatalf("accepted retries %+v", s)
			}
			s.Timetable().ScheduledAt(1)
		}
		if plan.AmountLeadDays < 1 || (plan.ReviewPolicy.Mode != reviewAuto && plan.ReviewPolicy.Mode != reviewManual) {
			t.Fatalf("accepted lead %d, review %+v", plan.AmountLeadDays, plan.ReviewPolicy)
		}
		seen := map[string]bool{}
		for _, uc := range plan.UsageCharges {
			if seen[uc.Meter] || uc.Price.Price().Validate("price", plan.Currency) != nil {
				t.Fatalf("accepted usage charge %+v", uc)
			}
			seen[uc.Meter] = true
			if _, err := plans.Rate(uc.Price.Price(), decimal.RequireFromString("1234.5"), plan.Currency); err != nil {
				t.Fatalf("an accepted price cannot rate: %v", err)
			}
		}
		if _, err := json.Marshal(&plan); err != nil {
			t.Fatalf("an accepted plan cannot be written: %v", err)
		}
	})
}

// FuzzPatchDecoders feeds the PATCH decoders of plans and schedules
// arbitrary bodies and applies what they accept to a valid plan and its
// schedule: nothing panics, every refusal names fields, and what is
// accepted keeps a stored plan's and schedule's rules.
func FuzzPatchDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"amount": 150000, "amount_lead_days": 3, "review_policy": "MANUAL", "notification_config": null}`,
		`{"items": [{"type": "FEE", "name": "x", "net_unit_amount": 100000, "quantity": 1}], "usage_charges": null}`,
		`{"payment_methods": [{"payment_token_id": "pt-00000000-0000-7000-8000-000000000000"}], "currency": "PHP"}`,
		`{"interval": "DAY", "interval_count": 30, "total_retry": null, "failed_attempt_notifications": [1]}`,
		`{"anchor_date": "2026-03-20T08:00:00+07:00", "total_recurrence": null, "retry_interval_count": 5}`,
		`{"amount": null, "amount_lead_days": 1e2}`, `[]`, `{"total_retry": 11}`,
	} {
		f.Add([]byte(seed))
	}
	base, err := DecodePlan([]byte(planSeed))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		named := func(err error) {
			if e, ok := billing.AsError(err); !ok || e.Code != billing.EINVALID || len(e.Fields) == 0 {
				t.Fatalf("refusal is not a validation error naming fields: %#v", err)
			}
		}
		sched := *base.Schedule
		sched.FailedAttemptNotifications = append([]int{}, sched.FailedAttemptNotifications...)
		if sp, err := DecodeSchedulePatch(body); err != nil {
			named(err)
		} else if err := sp.apply(&sched); err != nil {
			named(err)
		} else if !sched.Interval.Valid() || sched.IntervalCount < 1 || sched.IntervalCount > 365 || sched.FailedAttemptNotifications == nil ||
			(sched.TotalRetry == nil) != (sched.RetryInterval == nil) || (sched.TotalRetry == nil) != (sched.RetryIntervalCount == nil) ||
			!sched.AnchorDate.Before(maxAnchor) || sched.AnchorDate.Before(minAnchor) {
			t.Fatalf("accepted schedule %+v", sched)
		}
		plan := base.Plan
		plan.schedule = base.Schedule
		if pp, err := DecodePlanPatch(body); err != nil {
			named(err)
		} else if err := pp.apply(&plan); err != nil {
			named(err)
		} else if plan.Amount.IsNegative() || billing.DecimalPlaces(plan.Amount) > plan.Currency.Exponent() || plan.AmountLeadDays < 1 ||
			plan.AmountLeadDays > base.Schedule.Timetable().PeriodDays() || plan.PaymentMethods == nil && pp.PaymentMethods.Set ||
			(plan.FailedCycleAction != failedCycleStop && plan.FailedCycleAction != failedCycleResume) {
			t.Fatalf("accepted plan %+v", plan)
		}
		if _, err := DecodeCyclePatch(body); err != nil {
			named(err)
		}
	})
}
