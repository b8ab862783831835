package plans_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
)

// TestBillingRulesDocExamples checks every `schedule` and `rating` example
// of docs/billing-rules.md against the code.
func TestBillingRulesDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/billing-rules.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(schedule|rating)\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	counts := map[string]int{}
	for _, b := range blocks {
		counts[b[1]]++
		fields := map[string]string{}
		var cycles []string
		for _, line := range strings.Split(strings.TrimSpace(b[2]), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("line %q of a %s block has no key", line, b[1])
			}
			if strings.HasPrefix(k, "cycle ") {
				cycles = append(cycles, line)
				continue
			}
			fields[k] = v
		}
		if b[1] == "schedule" {
			checkSchedule(t, fields, cycles)
		} else {
			checkRating(t, fields)
		}
	}
	if counts["schedule"] < 3 || counts["rating"] < 5 {
		t.Fatalf("found %v examples; the page has more", counts)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func checkSchedule(t *testing.T, f map[string]string, cycles []string) {
	count, _ := strconv.Atoi(f["interval_count"])
	lead, _ := strconv.Atoi(f["amount_lead_days"])
	tt := plans.Timetable{Anchor: mustTime(t, f["anchor"]), Interval: plans.Interval(f["interval"]), IntervalCount: count}
	activated := mustTime(t, f["activated"])
	for _, c := range cycles {
		var n int
		var sched, fix, start string
		m := regexp.MustCompile(`^cycle (\d+): (\S+) fix (\S+) window (\S+)$`).FindStringSubmatch(c)
		if m == nil {
			t.Fatalf("cannot read %q", c)
		}
		n, _ = strconv.Atoi(m[1])
		sched, fix, start = m[2], m[3], m[4]
		got := tt.ScheduledAt(n)
		gotStart, gotEnd := tt.Window(n, lead, activated)
		if !got.Equal(mustTime(t, sched)) || !gotEnd.Equal(mustTime(t, fix)) || !plans.FixAt(got, lead).Equal(mustTime(t, fix)) || !gotStart.Equal(mustTime(t, start)) {
			t.Errorf("doc says %q; code gives %s fix %s window %s", c, got.Format(time.RFC3339), gotEnd.Format(time.RFC3339), gotStart.Format(time.RFC3339))
		}
	}
}

func checkRating(t *testing.T, f map[string]string) {
	cur := billing.Currency(f["currency"])
	var pj plans.PriceJSON
	if err := json.Unmarshal([]byte(f["price"]), &pj); err != nil {
		t.Fatalf("price %s: %v", f["price"], err)
	}
	p := pj.Price()
	if err := p.Validate("price", cur); err != nil {
		t.Fatalf("price %s: %v", f["price"], err)
	}
	r, err := plans.Rate(p, d(f["quantity"]), cur)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Amount.Equal(d(f["amount"])) {
		t.Errorf("%s %s × %s: doc says %s, code gives %s (exact %s)", cur, f["price"], f["quantity"], f["amount"], r.Amount, r.Exact)
	}
	if want, ok := f["tiers"]; ok {
		parts := strings.Split(want, " + ")
		if len(parts) != len(r.Tiers) {
			t.Fatalf("%s: doc has %d tiers, code %d", f["price"], len(parts), len(r.Tiers))
		}
		for i, p := range parts {
			if !r.Tiers[i].Amount.Equal(d(p)) {
				t.Errorf("%s × %s: tier %d doc %s, code %s", f["price"], f["quantity"], i+1, p, r.Tiers[i].Amount)
			}
		}
	}
}
