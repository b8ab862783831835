package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
)

// kwhTariff rates q kWh with the source document's graduated tariff,
// written out again here so that the test does not trust the engine's
// rating: 1,000 per kWh up to 100, 1,500 up to 200, then 2,000 plus a flat
// 5,000, rounded once to whole rupiah, half away from zero.
func kwhTariff(q decimal.Decimal) decimal.Decimal {
	d := decimal.RequireFromString
	amount := decimal.Min(q, d("100")).Mul(d("1000"))
	if q.GreaterThan(d("100")) {
		amount = amount.Add(decimal.Min(q, d("200")).Sub(d("100")).Mul(d("1500")))
	}
	if q.GreaterThan(d("200")) {
		amount = amount.Add(q.Sub(d("200")).Mul(d("2000"))).Add(d("5000"))
	}
	return amount.Round(0) // shopspring rounds half away from zero
}

// yearLine is what the test expects of an invoice line.
type yearLine struct {
	kind, qty, amount string
}

// TestYearOfMonthlyBilling is a year of the source document's plan for one
// customer, through the API of a sandbox business and nothing else: each
// month the utility reports three meter readings and advances the clock;
// in April it also reports 30 kWh late for March's window, and in
// September it corrects an August reading. Every invoice's lines and total
// are checked to the rupiah against an independent rating; the invoices
// with late usage wait for finance's approval and are charged on their
// date once approved; every cycle is paid once, numbers run gapless per
// year, and every event ends billed by exactly the cycle it belongs to.
func TestYearOfMonthlyBilling(t *testing.T) {
	b := setup(t)
	custID := b.utilitySetup()
	tokenID := b.tokenOf(custID, "ID", "IDR")
	body := sourcePlan(custID, tokenID)
	body["success_return_url"], body["failure_return_url"] = nil, nil
	r := b.call("POST", "/recurring/plans", body)
	if r.status != 200 {
		t.Fatalf("plan: %d %s", r.status, r.raw)
	}
	planID := r.body["id"].(string)

	d := decimal.RequireFromString
	activation := time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC)
	date := func(m int) time.Time { return time.Date(2026, time.Month(1+m), 15, 16, 23, 52, 0, time.UTC) } // cycle m's date
	fix := func(m int) time.Time {                                                                         // cycle m's amount-fix time: 00:00 UTC the day before
		if m == 0 {
			return activation
		}
		y, mo, day := date(m).Date()
		return time.Date(y, mo, day-1, 0, 0, 0, 0, time.UTC)
	}
	ts := billing.FormatTime // the API's time format

	sent := map[string]int{}               // event id → the cycle that must bill it
	onTime := map[int]decimal.Decimal{}    // kWh per window, as first billed
	windowNow := map[int]decimal.Decimal{} // kWh per window with late usage and corrections
	post := func(cycle int, events ...map[string]any) {
		t.Helper()
		for _, e := range events {
			e["customer_id"], e["meter"] = custID, "electricity_kwh"
			sent[e["event_id"].(string)] = cycle
		}
		r := b.call("POST", "/usage_events", map[string]any{"events": events})
		if r.status != 200 || fmt.Sprint(r.body["accepted"]) != fmt.Sprint(len(events)) {
			t.Fatalf("usage for cycle %d: %d %s", cycle, r.status, r.raw)
		}
	}

	number2026 := 0
	for m := 1; m <= 12; m++ {
		start, end := fix(m-1), fix(m)
		// Readings: three in the window, sent ten and a bit days into it.
		b.advance(ts(start.Add(11 * 24 * time.Hour)))
		q := []decimal.Decimal{d(fmt.Sprintf("%d.25", 40+m)), d("60.5"), d(fmt.Sprint(45 + 4*m))}
		var events []map[string]any
		for i, qty := range q {
			events = append(events, map[string]any{"event_id": fmt.Sprintf("m%02d-%d", m, i), "quantity": json.Number(qty.String()),
				"timestamp": ts(start.Add(time.Duration(1+4*i) * 24 * time.Hour))})
		}
		post(m, events...)
		onTime[m] = q[0].Add(q[1]).Add(q[2])
		windowNow[m] = onTime[m]

		lines := []yearLine{{"BASE", "1", "100000"}, {"USAGE", onTime[m].String(), kwhTariff(onTime[m]).String()}}
		var reasons []any
		switch m {
		case 4: // 30 kWh for March's window (cycle 3), reported late
			post(4, map[string]any{"event_id": "late-march", "quantity": 30, "timestamp": ts(fix(3).Add(-2 * 24 * time.Hour))})
			before := windowNow[3]
			windowNow[3] = before.Add(d("30"))
			lines = append(lines, yearLine{"LATE_USAGE", "30", kwhTariff(windowNow[3]).Sub(kwhTariff(before)).String()})
			reasons = []any{"LATE_USAGE"}
		case 9: // August's first reading was 10.5 kWh too high
			post(9, map[string]any{"event_id": "fix-m08-0", "quantity": -10.5, "correction_of": "m08-0"})
			before := windowNow[8]
			windowNow[8] = before.Sub(d("10.5"))
			lines = append(lines, yearLine{"LATE_USAGE", "-10.5", kwhTariff(windowNow[8]).Sub(kwhTariff(before)).String()})
			reasons = []any{"LATE_USAGE", "CORRECTION"}
		}
		total := decimal.Zero
		for _, l := range lines {
			total = total.Add(d(l.amount))
		}

		// The amount is fixed at the deadline.
		b.advance(ts(end.Add(time.Hour)))
		cycle := b.cycleNumber(planID, m)
		invoiceID, _ := cycle["invoice_id"].(string)
		if invoiceID == "" {
			t.Fatalf("cycle %d has no invoice after its fix time: %v", m, cycle)
		}
		inv := b.call("GET", "/invoices/"+invoiceID, nil).body
		what := fmt.Sprintf("cycle %d invoice", m)
		checkYearLines(t, what, inv, lines)
		wantNumber(t, what+" total", inv["total"], total)
		wantNumber(t, what+" subtotal", inv["subtotal"], total)
		wantNumber(t, fmt.Sprintf("cycle %d amount", m), cycle["amount"], total)
		want(t, what, inv, "period", map[string]any{"start": ts(start), "end": ts(end)}, "due_at", ts(date(m)))
		if reasons != nil {
			want(t, what+" held for review", inv, "status", "DRAFT", "review_status", "NEEDS_REVIEW", "review_reasons", reasons, "number", nil)
			if c := b.cycleNumber(planID, m); c["status"] != "SCHEDULED" {
				t.Fatalf("cycle %d under review is %v", m, c["status"])
			}
			if r := b.call("POST", "/invoices/"+invoiceID+"/approve", map[string]any{"note": "meter reading checked"}); r.status != 200 {
				t.Fatalf("approve %s: %d %s", what, r.status, r.raw)
			}
		}
		wantYear := date(m).Year()
		var number string
		if wantYear == 2026 {
			number2026++
			number = fmt.Sprintf("INV-2026-%06d", number2026)
		} else {
			number = "INV-2027-000001"
		}
		inv = b.call("GET", "/invoices/"+invoiceID, nil).body
		want(t, what+" finalized", inv, "status", "OPEN", "number", number, "amount_paid", 0)

		// Charged on its date, once.
		b.advance(ts(date(m).Add(time.Hour)))
		cycle = b.cycleNumber(planID, m)
		want(t, fmt.Sprintf("cycle %d charged", m), cycle, "status", "SUCCEEDED", "attempt_count", 1)
		inv = b.call("GET", "/invoices/"+invoiceID, nil).body
		want(t, what+" paid", inv, "status", "PAID", "amount_due", 0)
		wantNumber(t, what+" amount_paid", inv["amount_paid"], total)
	}

	// Cycle 13 is scheduled; nothing else moved.
	list := b.call("GET", "/recurring/plans/"+planID+"/cycles?limit=100", nil).body["data"].([]any)
	if len(list) != 13 {
		t.Fatalf("%d cycles after a year, want 13", len(list))
	}
	want(t, "cycle 13", b.cycleNumber(planID, 13), "status", "SCHEDULED", "invoice_id", nil)

	// Every event is billed, by the cycle it belongs to.
	if r := b.call("GET", "/usage_events?billed=false&limit=100", nil); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("unbilled events after a year: %s", r.raw)
	}
	cycleIDs := map[string]int{}
	for _, c := range list {
		c := c.(map[string]any)
		n, _ := c["cycle_number"].(json.Number).Int64()
		cycleIDs[c["id"].(string)] = int(n)
	}
	billed := map[string]int{}
	path := "/usage_events?billed=true&limit=10"
	for {
		r := b.call("GET", path, nil)
		data := r.body["data"].([]any)
		for _, e := range data {
			e := e.(map[string]any)
			id := e["event_id"].(string)
			if _, twice := billed[id]; twice {
				t.Errorf("event %s listed twice", id)
			}
			billed[id] = cycleIDs[fmt.Sprint(e["billed_cycle_id"])]
		}
		if r.body["has_more"] != true {
			break
		}
		path = "/usage_events?billed=true&limit=10&after_id=" + data[len(data)-1].(map[string]any)["id"].(string)
	}
	if len(billed) != len(sent) {
		t.Errorf("%d events billed, %d sent", len(billed), len(sent))
	}
	for id, c := range sent {
		if billed[id] != c {
			t.Errorf("event %s billed by cycle %d, want %d", id, billed[id], c)
		}
	}
}

// cycleNumber reads cycle n of planID through the API.
func (b *bundle) cycleNumber(planID string, n int) map[string]any {
	b.t.Helper()
	r := b.call("GET", "/recurring/plans/"+planID+"/cycles?limit=100", nil)
	for _, c := range r.body["data"].([]any) {
		c := c.(map[string]any)
		if fmt.Sprint(c["cycle_number"]) == fmt.Sprint(n) {
			return b.call("GET", "/recurring/plans/"+planID+"/cycles/"+c["id"].(string), nil).body
		}
	}
	b.t.Fatalf("plan %s has no cycle %d: %s", planID, n, r.raw)
	return nil
}

// checkYearLines compares an invoice's lines, in order, with want.
func checkYearLines(t *testing.T, what string, inv map[string]any, want []yearLine) {
	t.Helper()
	var got, exp []string
	for _, l := range inv["lines"].([]any) {
		l := l.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v %v", l["kind"], l["quantity"], l["amount"]))
	}
	for _, l := range want {
		exp = append(exp, fmt.Sprintf("%s %s %s", l.kind, l.qty, l.amount))
	}
	if strings.Join(got, "; ") != strings.Join(exp, "; ") {
		t.Errorf("%s lines:\n got  %s\n want %s", what, strings.Join(got, "; "), strings.Join(exp, "; "))
	}
}

// wantNumber checks that a JSON number equals want exactly.
func wantNumber(t *testing.T, what string, got any, want decimal.Decimal) {
	t.Helper()
	n, ok := got.(json.Number)
	if !ok {
		t.Errorf("%s = %v, want the number %s", what, got, want)
		return
	}
	if v, err := decimal.NewFromString(n.String()); err != nil || !v.Equal(want) {
		t.Errorf("%s = %s, want %s", what, n, want)
	}
}

// checkInvoiceInvariants fails the test for every breach of SPEC §8 in the
// bundle's business (engine.Violations); setup runs it after every test.
func (b *bundle) checkInvoiceInvariants() {
	b.t.Helper()
	bad, err := engine.Violations(context.Background(), b.db.Bun, b.biz.ID)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, v := range bad {
		b.t.Errorf("invariant: %s", v)
	}
}
