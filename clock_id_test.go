package billing_test

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
)

func TestSettableClock(t *testing.T) {
	start := time.Date(2028, 2, 28, 23, 59, 59, 0, time.FixedZone("WIB", 7*3600))
	c := billing.NewSettableClock(start)
	if got := c.Now(); !got.Equal(start) || got.Location() != time.UTC {
		t.Fatalf("Now = %v, want %v in UTC", got, start)
	}
	if got := c.Advance(time.Second); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("Advance = %v", got)
	}
	leap := time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)
	c.Set(leap)
	if !c.Now().Equal(leap) {
		t.Fatalf("Set: Now = %v", c.Now())
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Advance(time.Minute); _ = c.Now() }()
	}
	wg.Wait()
	if want := leap.Add(50 * time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after concurrent Advance: %v, want %v", c.Now(), want)
	}
}

func TestFormatTime(t *testing.T) {
	in := time.Date(2026, 11, 21, 7, 0, 0, 123456789, time.FixedZone("WIB", 7*3600))
	if got := billing.FormatTime(in); got != "2026-11-21T00:00:00.123Z" {
		t.Fatalf("FormatTime = %q", got)
	}
}

// TestFormatTimeAsTimeFormat: FormatTime writes what time.Format's layout
// would, at the edges of every field (years 0 to 9999, the last
// millisecond of a day, leap days, zones east and west that move the
// date) and at random instants, and falls back to it outside those years.
func TestFormatTimeAsTimeFormat(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	east, west := time.FixedZone("WIB", 7*3600), time.FixedZone("HST", -10*3600)
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999000000, time.UTC),
		time.Date(2026, 1, 1, 6, 59, 59, 999999, east),
		time.Date(2026, 12, 31, 14, 0, 0, 1000000, west),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(253402300800), r.Int64N(1e9)).In(east))
	}
	for _, tm := range times {
		if got, want := billing.FormatTime(tm), tm.UTC().Format(layout); got != want {
			t.Fatalf("FormatTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 1000; i++ {
		id := billing.NewID(billing.PrefixCustomer)
		if !billing.ValidID(billing.PrefixCustomer, id) {
			t.Fatalf("NewID gave %q, which ValidID rejects", id)
		}
		if id[len("cust-")+14] != '7' {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Ids of one process sort in the order they were made, also within a
	// millisecond.
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made one after the other do not sort in that order")
	}
	burst := make([]string, 10000) // more than 4,096 in a millisecond
	for i := range burst {
		burst[i] = billing.NewID(billing.PrefixEvent)
	}
	if !sort.StringsAreSorted(burst) {
		t.Fatal("a burst of ids does not sort in the order made")
	}
	for _, bad := range []string{"", "cust-", "cust-xyz", "mtr-" + ids[0][5:], strings.ToUpper(ids[0]), ids[0] + "0", "cust-0194f1c2_7b3a-7c4e-9a55-3f0e2d1c0b9a"} {
		if billing.ValidID(billing.PrefixCustomer, bad) {
			t.Errorf("ValidID accepted %q", bad)
		}
	}
}

func TestValidationCollectsEveryField(t *testing.T) {
	var v billing.Validation
	if v.Err() != nil {
		t.Fatal("empty Validation returned an error")
	}
	v.Check(false, "email", "must be an e-mail address")
	v.Check(true, "type", "never added")
	v.Merge("x", billing.Invalid("mobile_number", "must be E.164"))
	e, ok := billing.AsError(v.Err())
	if !ok || e.Reason != billing.ReasonValidation || len(e.Fields) != 2 || e.Fields[1].Field != "mobile_number" {
		t.Fatalf("Err = %#v", v.Err())
	}
	if billing.CodeOf(v.Err()) != billing.EINVALID || billing.CodeOf(errTest) != billing.EINTERNAL || billing.CodeOf(nil) != "" {
		t.Fatal("CodeOf wrong")
	}
}

var errTest = errors.ErrUnsupported
