// Package plans holds the pure rules of recurring plans: the timetable of
// cycles (SPEC §5.1), the amount-fix deadline and usage windows (§5.2), and
// the price models that rate a quantity of usage (§4.4). Nothing here reads
// a clock or a database; every function is a function of its inputs.
package plans

import (
	"fmt"
	"time"
)

// Interval is the unit of a schedule's period.
type Interval string

// Intervals.
const (
	IntervalDay   Interval = "DAY"
	IntervalWeek  Interval = "WEEK"
	IntervalMonth Interval = "MONTH"
)

// Valid reports whether i is DAY, WEEK or MONTH.
func (i Interval) Valid() bool {
	return i == IntervalDay || i == IntervalWeek || i == IntervalMonth
}

// Timetable says when each cycle of a plan is scheduled.
type Timetable struct {
	// Anchor is the first cycle's scheduled timestamp; later cycles keep its
	// time of day (in UTC).
	Anchor time.Time
	// Interval and IntervalCount make the period: every IntervalCount days,
	// weeks or months.
	Interval      Interval
	IntervalCount int
	// TotalRecurrence is how many cycles the plan has; nil means no end.
	TotalRecurrence *int
}

// ScheduledAt returns cycle n's scheduled timestamp (n from 1), in UTC:
// Anchor + (n−1) × IntervalCount × Interval. For MONTH, a day the month does
// not have is clamped to its last day, and every cycle is counted from the
// anchor, so that clamping never drifts: an anchor on Jan 31 gives Feb 28
// (Feb 29 in a leap year), then Mar 31.
func (t Timetable) ScheduledAt(n int) time.Time {
	if n < 1 {
		panic(fmt.Sprintf("plans: cycle number %d", n))
	}
	a := t.Anchor.UTC()
	k := (n - 1) * t.IntervalCount
	switch t.Interval {
	case IntervalDay:
		return a.AddDate(0, 0, k)
	case IntervalWeek:
		return a.AddDate(0, 0, 7*k)
	case IntervalMonth:
		first := time.Date(a.Year(), a.Month(), 1, a.Hour(), a.Minute(), a.Second(), a.Nanosecond(), time.UTC).AddDate(0, k, 0)
		day := min(a.Day(), daysIn(first.Year(), first.Month()))
		return first.AddDate(0, 0, day-1)
	}
	panic(fmt.Sprintf("plans: interval %q", t.Interval))
}

// Has reports whether the plan has a cycle n: true for every n ≥ 1 when
// the plan has no end.
func (t Timetable) Has(n int) bool {
	return n >= 1 && (t.TotalRecurrence == nil || n <= *t.TotalRecurrence)
}

// daysIn returns the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// CycleDate returns the start (00:00 UTC) of the UTC calendar date of a
// scheduled timestamp: the cycle's "date" of SPEC §3. From that instant the
// cycle's amount is frozen.
func CycleDate(scheduled time.Time) time.Time {
	s := scheduled.UTC()
	return time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC)
}

// FixAt returns the deadline by which a cycle's amount is fixed: 00:00 UTC
// of its date minus leadDays days (SPEC §5.2).
func FixAt(scheduled time.Time, leadDays int) time.Time {
	return CycleDate(scheduled).AddDate(0, 0, -leadDays)
}

// Frozen reports whether a cycle's amount can no longer change at now: from
// 00:00 UTC of its date.
func Frozen(scheduled, now time.Time) bool {
	return !now.Before(CycleDate(scheduled))
}

// Window returns the usage window cycle n bills, [start, end): from the
// previous cycle's fix time (the plan's activation for cycle 1) to this
// cycle's. Usage before the activation is never the plan's, so no window
// starts before it; when the plan was activated after a cycle's fix time,
// that cycle's window is empty (start = end) and the usage goes to the next.
func (t Timetable) Window(n, leadDays int, activatedAt time.Time) (start, end time.Time) {
	end = FixAt(t.ScheduledAt(n), leadDays)
	start = activatedAt.UTC()
	if n > 1 {
		if prev := FixAt(t.ScheduledAt(n-1), leadDays); prev.After(start) {
			start = prev
		}
	}
	if start.After(end) {
		start = end
	}
	return start, end
}

// FirstAfter returns the number of the first slot of the timetable
// scheduled strictly after t: the smallest n ≥ 1 with ScheduledAt(n) > t
// (1 when the anchor itself is after t). Slots ascend strictly, so the
// answer is found by bisection, without walking every slot since the
// anchor. TotalRecurrence is not consulted.
func (t Timetable) FirstAfter(after time.Time) int {
	if t.ScheduledAt(1).After(after) {
		return 1
	}
	lo, hi := 1, 2 // ScheduledAt(lo) ≤ after; find hi with ScheduledAt(hi) > after
	for !t.ScheduledAt(hi).After(after) {
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if t.ScheduledAt(mid).After(after) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// PeriodDays returns the fewest days one period of the timetable can
// last: IntervalCount days, weeks (× 7) or months (× 28, February's
// length). A cycle's amount_lead_days may not exceed it, so that no
// cycle's amount falls due before the previous cycle's date begins.
func (t Timetable) PeriodDays() int {
	switch t.Interval {
	case IntervalWeek:
		return 7 * t.IntervalCount
	case IntervalMonth:
		return 28 * t.IntervalCount
	}
	return t.IntervalCount
}
