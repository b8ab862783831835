package plans_test

import (
	"testing"
	"time"

	"github.com/tagihan/billing/plans"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

func TestScheduledAt(t *testing.T) {
	tests := []struct {
		name string
		tt   plans.Timetable
		n    int
		want time.Time
	}{
		{"first cycle is the anchor", plans.Timetable{Anchor: utc(2026, 1, 15, 8, 30, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 1, utc(2026, 1, 15, 8, 30, 0)},
		{"monthly", plans.Timetable{Anchor: utc(2026, 1, 15, 8, 30, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 12, utc(2026, 12, 15, 8, 30, 0)},
		{"Jan 31 → Feb 28", plans.Timetable{Anchor: utc(2026, 1, 31, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 2, utc(2026, 2, 28, 0, 0, 0)},
		{"Jan 31 → Mar 31, no drift", plans.Timetable{Anchor: utc(2026, 1, 31, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 3, utc(2026, 3, 31, 0, 0, 0)},
		{"Jan 31 → Apr 30", plans.Timetable{Anchor: utc(2026, 1, 31, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 4, utc(2026, 4, 30, 0, 0, 0)},
		{"Jan 31 → Feb 29 in a leap year", plans.Timetable{Anchor: utc(2028, 1, 31, 23, 59, 59), Interval: plans.IntervalMonth, IntervalCount: 1}, 2, utc(2028, 2, 29, 23, 59, 59)},
		{"Feb 29 anchor → Mar 29", plans.Timetable{Anchor: utc(2028, 2, 29, 12, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 2, utc(2028, 3, 29, 12, 0, 0)},
		{"Feb 29 anchor, yearly by 12 months → Feb 28", plans.Timetable{Anchor: utc(2028, 2, 29, 12, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 12}, 2, utc(2029, 2, 28, 12, 0, 0)},
		{"Feb 29 anchor, 48 months → Feb 29", plans.Timetable{Anchor: utc(2028, 2, 29, 12, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 12}, 5, utc(2032, 2, 29, 12, 0, 0)},
		{"30th across a year end", plans.Timetable{Anchor: utc(2026, 11, 30, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}, 4, utc(2027, 2, 28, 0, 0, 0)},
		{"every 3 months from Aug 31", plans.Timetable{Anchor: utc(2026, 8, 31, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 3}, 2, utc(2026, 11, 30, 0, 0, 0)},
		{"an anchor with an offset is taken in UTC", plans.Timetable{Anchor: time.Date(2026, 3, 1, 6, 0, 0, 0, time.FixedZone("WIB", 7*3600)), Interval: plans.IntervalMonth, IntervalCount: 1}, 2, utc(2026, 3, 28, 23, 0, 0)},
		{"daily", plans.Timetable{Anchor: utc(2028, 2, 28, 10, 0, 0), Interval: plans.IntervalDay, IntervalCount: 1}, 2, utc(2028, 2, 29, 10, 0, 0)},
		{"every 10 days", plans.Timetable{Anchor: utc(2026, 12, 25, 0, 0, 0), Interval: plans.IntervalDay, IntervalCount: 10}, 2, utc(2027, 1, 4, 0, 0, 0)},
		{"weekly", plans.Timetable{Anchor: utc(2026, 12, 28, 0, 0, 0), Interval: plans.IntervalWeek, IntervalCount: 1}, 2, utc(2027, 1, 4, 0, 0, 0)},
		{"fortnightly", plans.Timetable{Anchor: utc(2026, 1, 1, 0, 0, 0), Interval: plans.IntervalWeek, IntervalCount: 2}, 27, utc(2026, 12, 31, 0, 0, 0)},
	}
	for _, tc := range tests {
		if got := tc.tt.ScheduledAt(tc.n); !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("%s: cycle %d = %v, want %v", tc.name, tc.n, got, tc.want)
		}
	}
}

func TestMonthEndsNeverDrift(t *testing.T) {
	tt := plans.Timetable{Anchor: utc(2026, 1, 31, 9, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}
	for n := 1; n <= 120; n++ {
		got := tt.ScheduledAt(n)
		last := time.Date(got.Year(), got.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
		if got.Day() != last || got.Hour() != 9 {
			t.Fatalf("cycle %d = %v, not the month's last day at 09:00", n, got)
		}
	}
}

func TestTotalRecurrence(t *testing.T) {
	three := 3
	tt := plans.Timetable{Anchor: utc(2026, 1, 1, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1, TotalRecurrence: &three}
	if tt.Has(0) || !tt.Has(1) || !tt.Has(3) || tt.Has(4) {
		t.Fatal("Has with a total of 3")
	}
	forever := plans.Timetable{Anchor: utc(2026, 1, 1, 0, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}
	if !forever.Has(32000) {
		t.Fatal("a plan without end has every cycle")
	}
}

func TestFixAtAndFreeze(t *testing.T) {
	scheduled := utc(2026, 3, 1, 10, 0, 0)
	if got := plans.FixAt(scheduled, 1); !got.Equal(utc(2026, 2, 28, 0, 0, 0)) {
		t.Fatalf("FixAt(lead 1) = %v", got)
	}
	if got := plans.FixAt(utc(2028, 3, 1, 0, 0, 0), 1); !got.Equal(utc(2028, 2, 29, 0, 0, 0)) {
		t.Fatalf("FixAt in a leap year = %v", got)
	}
	if got := plans.FixAt(utc(2027, 1, 1, 23, 59, 59), 3); !got.Equal(utc(2026, 12, 29, 0, 0, 0)) {
		t.Fatalf("FixAt(lead 3) across a year = %v", got)
	}
	// The date is the UTC date: 06:00 in Jakarta on Mar 1 is Feb 28 in UTC.
	wib := time.Date(2026, 3, 1, 6, 0, 0, 0, time.FixedZone("WIB", 7*3600))
	if got := plans.CycleDate(wib); !got.Equal(utc(2026, 2, 28, 0, 0, 0)) {
		t.Fatalf("CycleDate = %v", got)
	}
	if plans.Frozen(scheduled, utc(2026, 2, 28, 23, 59, 59)) {
		t.Fatal("frozen at 23:59:59 the day before")
	}
	if !plans.Frozen(scheduled, utc(2026, 3, 1, 0, 0, 0)) {
		t.Fatal("not frozen at 00:00:00 on the date")
	}
}

func TestWindows(t *testing.T) {
	tt := plans.Timetable{Anchor: utc(2026, 2, 15, 16, 23, 52), Interval: plans.IntervalMonth, IntervalCount: 1}
	activated := utc(2026, 1, 20, 9, 0, 0)
	start, end := tt.Window(1, 1, activated)
	if !start.Equal(activated) || !end.Equal(utc(2026, 2, 14, 0, 0, 0)) {
		t.Fatalf("window 1 = [%v, %v)", start, end)
	}
	start, end = tt.Window(2, 1, activated)
	if !start.Equal(utc(2026, 2, 14, 0, 0, 0)) || !end.Equal(utc(2026, 3, 14, 0, 0, 0)) {
		t.Fatalf("window 2 = [%v, %v)", start, end)
	}
	// Windows tile time: each starts where the previous ended.
	for n := 2; n < 40; n++ {
		_, prevEnd := tt.Window(n-1, 2, activated)
		s, e := tt.Window(n, 2, activated)
		if !s.Equal(prevEnd) || !e.After(s) {
			t.Fatalf("window %d = [%v, %v) after one ending %v", n, s, e, prevEnd)
		}
	}
	// Activated after cycle 1's fix time: cycle 1 bills no usage, and cycle
	// 2's window starts at the activation, not before.
	late := utc(2026, 2, 14, 12, 0, 0)
	if s, e := tt.Window(1, 1, late); !s.Equal(e) {
		t.Fatalf("window 1 after a late activation = [%v, %v)", s, e)
	}
	if s, _ := tt.Window(2, 1, late); !s.Equal(late) {
		t.Fatalf("window 2 after a late activation starts %v", s)
	}
}

func TestFirstAfter(t *testing.T) {
	monthly := plans.Timetable{Anchor: utc(2026, 1, 31, 8, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 1}
	daily := plans.Timetable{Anchor: utc(2000, 1, 1, 12, 0, 0), Interval: plans.IntervalDay, IntervalCount: 1}
	tests := []struct {
		name  string
		tt    plans.Timetable
		after time.Time
		want  int
	}{
		{"before the anchor", monthly, utc(2026, 1, 1, 0, 0, 0), 1},
		{"exactly the anchor is not after it", monthly, utc(2026, 1, 31, 8, 0, 0), 2},
		{"a second after a slot", monthly, utc(2026, 2, 28, 8, 0, 1), 3},
		{"a second before a clamped slot", monthly, utc(2026, 4, 30, 7, 59, 59), 4},
		{"decades of daily slots", daily, utc(2026, 3, 5, 11, 0, 0), 9561},
		{"the daily slot of that day has passed", daily, utc(2026, 3, 5, 12, 0, 0), 9562},
	}
	for _, tc := range tests {
		n := tc.tt.FirstAfter(tc.after)
		if n != tc.want {
			t.Errorf("%s: FirstAfter = %d, want %d", tc.name, n, tc.want)
		}
		if !tc.tt.ScheduledAt(n).After(tc.after) || (n > 1 && tc.tt.ScheduledAt(n-1).After(tc.after)) {
			t.Errorf("%s: slot %d (%v) is not the first after %v", tc.name, n, tc.tt.ScheduledAt(n), tc.after)
		}
	}
	// Against a walk over every slot, for many instants and timetables.
	for _, tt := range []plans.Timetable{monthly, daily,
		{Anchor: utc(2028, 2, 29, 23, 0, 0), Interval: plans.IntervalMonth, IntervalCount: 12},
		{Anchor: utc(2026, 12, 21, 0, 0, 0), Interval: plans.IntervalWeek, IntervalCount: 2}} {
		for h := 0; h < 24*800; h += 7 {
			after := utc(2026, 1, 1, 0, 0, 0).Add(time.Duration(h) * time.Hour)
			want := 1
			for !tt.ScheduledAt(want).After(after) {
				want++
			}
			if got := tt.FirstAfter(after); got != want {
				t.Fatalf("%+v after %v: %d, want %d", tt, after, got, want)
			}
		}
	}
}

func TestPeriodDays(t *testing.T) {
	for _, tc := range []struct {
		i     plans.Interval
		count int
		want  int
	}{{plans.IntervalDay, 1, 1}, {plans.IntervalDay, 10, 10}, {plans.IntervalWeek, 2, 14}, {plans.IntervalMonth, 1, 28}, {plans.IntervalMonth, 3, 84}} {
		if got := (plans.Timetable{Interval: tc.i, IntervalCount: tc.count}).PeriodDays(); got != tc.want {
			t.Errorf("%s × %d: %d days, want %d", tc.i, tc.count, got, tc.want)
		}
	}
}
