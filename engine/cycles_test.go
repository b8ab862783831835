package engine

import (
	"testing"
	"time"

	"github.com/tagihan/billing/plans"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestNextCycle checks the timetable of created cycles: the first slot
// after the previous cycle whose date has not begun, the fix time, the
// window and the engine's next action.
func TestNextCycle(t *testing.T) {
	monthly := func(anchor string, total *int) *Schedule {
		return &Schedule{Interval: plans.IntervalMonth, IntervalCount: 1, AnchorDate: at(anchor), TotalRecurrence: total}
	}
	two := 2
	fixed := at("2026-03-14T00:00:05Z")
	tests := []struct {
		name      string
		sched     *Schedule
		lead      int
		activated string
		prev      *Cycle
		now       string
		// want: number, scheduled, fix (= window end), window start; "" for no cycle
		n                      int
		scheduled, fix, wstart string
	}{
		{"an anchor in the past: the next slot whose date has not begun", monthly("2022-02-15T16:23:52Z", nil), 1,
			"2026-01-31T23:59:59Z", nil, "2026-01-31T23:59:59Z", 1, "2026-02-15T16:23:52Z", "2026-02-14T00:00:00Z", "2026-01-31T23:59:59Z"},
		{"an anchor later today is skipped: its date has begun", monthly("2026-01-10T18:00:00Z", nil), 1,
			"2026-01-10T09:00:00Z", nil, "2026-01-10T09:00:00Z", 1, "2026-02-10T18:00:00Z", "2026-02-09T00:00:00Z", "2026-01-10T09:00:00Z"},
		{"an anchor tomorrow: fix time already passed, empty window", monthly("2026-01-11T08:00:00Z", nil), 1,
			"2026-01-10T09:00:00Z", nil, "2026-01-10T09:00:00Z", 1, "2026-01-11T08:00:00Z", "2026-01-10T00:00:00Z", "2026-01-10T00:00:00Z"},
		{"month ends clamp", monthly("2026-01-31T08:00:00Z", nil), 3,
			"2026-01-01T00:00:00Z", nil, "2026-02-01T00:00:00Z", 1, "2026-02-28T08:00:00Z", "2026-02-25T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"after a fixed cycle: the window starts at its end", monthly("2026-02-15T16:23:52Z", nil), 1, "2026-01-31T23:59:59Z",
			&Cycle{CycleNumber: 1, ScheduledTimestamp: at("2026-02-15T16:23:52Z"), UsageWindowStart: at("2026-01-31T23:59:59Z"),
				UsageWindowEnd: at("2026-02-14T00:00:00Z"), AmountFixedAt: &fixed},
			"2026-02-15T16:24:00Z", 2, "2026-03-15T16:23:52Z", "2026-03-14T00:00:00Z", "2026-02-14T00:00:00Z"},
		{"after a cycle cancelled before its fix: its usage rolls over", monthly("2026-02-15T16:23:52Z", nil), 1, "2026-01-31T23:59:59Z",
			&Cycle{CycleNumber: 1, ScheduledTimestamp: at("2026-02-15T16:23:52Z"), UsageWindowStart: at("2026-01-31T23:59:59Z"),
				UsageWindowEnd: at("2026-02-14T00:00:00Z")},
			"2026-02-02T10:00:00Z", 2, "2026-03-15T16:23:52Z", "2026-03-14T00:00:00Z", "2026-01-31T23:59:59Z"},
		{"a schedule moved since: its first slot after the previous cycle", monthly("2026-04-20T08:00:00Z", nil), 1, "2026-01-31T23:59:59Z",
			&Cycle{CycleNumber: 1, ScheduledTimestamp: at("2026-02-15T16:23:52Z"), UsageWindowStart: at("2026-01-31T23:59:59Z"),
				UsageWindowEnd: at("2026-02-14T00:00:00Z"), AmountFixedAt: &fixed},
			"2026-02-16T00:00:00Z", 2, "2026-04-20T08:00:00Z", "2026-04-19T00:00:00Z", "2026-02-14T00:00:00Z"},
		{"a slot whose date has begun is skipped after a long retry", monthly("2026-02-15T16:23:52Z", nil), 1, "2026-01-31T23:59:59Z",
			&Cycle{CycleNumber: 1, ScheduledTimestamp: at("2026-02-15T16:23:52Z"), UsageWindowStart: at("2026-01-31T23:59:59Z"),
				UsageWindowEnd: at("2026-02-14T00:00:00Z"), AmountFixedAt: &fixed},
			"2026-03-15T20:00:00Z", 2, "2026-04-15T16:23:52Z", "2026-04-14T00:00:00Z", "2026-02-14T00:00:00Z"},
		{"the window never starts before the activation", monthly("2026-03-01T10:00:00Z", nil), 1, "2026-02-28T12:00:00Z",
			&Cycle{CycleNumber: 1, ScheduledTimestamp: at("2026-03-01T10:00:00Z"), UsageWindowStart: at("2026-02-28T00:00:00Z"),
				UsageWindowEnd: at("2026-02-28T00:00:00Z"), AmountFixedAt: &fixed},
			"2026-03-01T10:00:00Z", 2, "2026-04-01T10:00:00Z", "2026-03-31T00:00:00Z", "2026-02-28T12:00:00Z"},
		{"total_recurrence counts the cycles created", monthly("2026-02-15T16:23:52Z", &two), 1, "2026-01-31T23:59:59Z",
			&Cycle{CycleNumber: 2, ScheduledTimestamp: at("2026-03-15T16:23:52Z"), UsageWindowEnd: at("2026-03-14T00:00:00Z"), AmountFixedAt: &fixed},
			"2026-03-15T16:24:00Z", 0, "", "", ""},
		{"weekly", &Schedule{Interval: plans.IntervalWeek, IntervalCount: 2, AnchorDate: at("2026-12-21T00:00:00Z")}, 7,
			"2026-12-01T00:00:00Z", nil, "2026-12-14T12:00:00Z", 1, "2026-12-21T00:00:00Z", "2026-12-14T00:00:00Z", "2026-12-01T00:00:00Z"},
	}
	for _, tc := range tests {
		activated := at(tc.activated)
		plan := &Plan{ID: "repl-x", BusinessID: "biz-x", CustomerID: "cust-x", Currency: "IDR", AmountLeadDays: tc.lead, ActivatedAt: &activated, schedule: tc.sched}
		c := nextCycle(plan, tc.prev, at(tc.now))
		if tc.n == 0 {
			if c != nil {
				t.Errorf("%s: got cycle %d, want none", tc.name, c.CycleNumber)
			}
			continue
		}
		if c == nil {
			t.Errorf("%s: no cycle", tc.name)
			continue
		}
		if c.CycleNumber != tc.n || !c.ScheduledTimestamp.Equal(at(tc.scheduled)) || !c.FixAt.Equal(at(tc.fix)) ||
			!c.UsageWindowEnd.Equal(c.FixAt) || !c.UsageWindowStart.Equal(at(tc.wstart)) {
			t.Errorf("%s: cycle %d at %v, fix %v, window [%v, %v); want %d at %s, fix %s, window from %s", tc.name, c.CycleNumber,
				c.ScheduledTimestamp, c.FixAt, c.UsageWindowStart, c.UsageWindowEnd, tc.n, tc.scheduled, tc.fix, tc.wstart)
		}
		if c.Status != CycleStatusScheduled || c.Type != CycleTypeScheduled || c.NextAction == nil || *c.NextAction != ActionFixAmount ||
			c.NextActionAt == nil || !c.NextActionAt.Equal(c.FixAt) || c.Amount.Valid || c.Currency != "IDR" {
			t.Errorf("%s: %+v", tc.name, c)
		}
		if plans.Frozen(c.ScheduledTimestamp, at(tc.now)) {
			t.Errorf("%s: created a cycle whose date has begun", tc.name)
		}
	}
}
