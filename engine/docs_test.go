package engine

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tagihan/billing/plans"
)

// TestBillingRulesCycles checks every `cycles` example of
// docs/billing-rules.md against nextCycle: cycle 1 created at the
// activation, each later one on its predecessor's scheduled timestamp,
// with its predecessor's amount fixed.
func TestBillingRulesCycles(t *testing.T) {
	raw, err := os.ReadFile("../docs/billing-rules.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```cycles\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d cycles examples; the page has more", len(blocks))
	}
	line := regexp.MustCompile(`^cycle (\d+): (\S+) fix (\S+) window (\S+)$`)
	for _, b := range blocks {
		f := map[string]string{}
		var cycles []string
		for _, l := range strings.Split(strings.TrimSpace(b[1]), "\n") {
			if strings.HasPrefix(l, "cycle ") {
				cycles = append(cycles, l)
				continue
			}
			k, v, ok := strings.Cut(l, ": ")
			if !ok {
				t.Fatalf("line %q has no key", l)
			}
			f[k] = v
		}
		count, _ := strconv.Atoi(f["interval_count"])
		lead, _ := strconv.Atoi(f["amount_lead_days"])
		activated := at(f["activated"])
		plan := &Plan{ID: "repl-doc", AmountLeadDays: lead, ActivatedAt: &activated,
			schedule: &Schedule{AnchorDate: at(f["anchor"]), Interval: plans.Interval(f["interval"]), IntervalCount: count}}
		var prev *Cycle
		now := activated
		for _, l := range cycles {
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("cannot read %q", l)
			}
			c := nextCycle(plan, prev, now)
			if c == nil || strconv.Itoa(c.CycleNumber) != m[1] || !c.ScheduledTimestamp.Equal(at(m[2])) || !c.FixAt.Equal(at(m[3])) ||
				!c.UsageWindowEnd.Equal(c.FixAt) || !c.UsageWindowStart.Equal(at(m[4])) {
				t.Errorf("doc says %q; code gives %+v", l, c)
				break
			}
			fixed := c.FixAt
			c.AmountFixedAt = &fixed
			prev, now = c, c.ScheduledTimestamp
		}
	}
}
