package engine

import (
	"testing"
	"time"
)

// BenchmarkChargeCycles times the charging of a month's cycles of 200
// plans, due at one moment, through the payment service and the sandbox
// provider, in this process (no River, no callbacks delivered): the
// engine's CHARGE step, the provider calls and the settlement of each
// outcome. Amounts are fixed outside the timer. Profile it with
//
//	go test ./engine -run '^$' -bench ChargeCycles -benchtime 5x -cpuprofile cpu.out
func BenchmarkChargeCycles(b *testing.B) {
	const plans = 200
	w := newChargeWorld(b)
	tok := w.token("")
	for i := 0; i < plans; i++ {
		body := w.planBody(tok)
		delete(body, "notification_config")
		w.plan(body)
	}
	b.ResetTimer()
	month := at("2026-02-15T08:00:00Z")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w.holdCallbacks = true
		w.to(month.AddDate(0, 0, -1).Format(time.RFC3339))
		b.StartTimer()
		w.setClock(month)
		n := w.runDue()
		b.StopTimer()
		if n < plans || w.count("SELECT count(*) FROM recurring_cycles WHERE business_id = ? AND status = 'SUCCEEDED'", w.biz.ID) != (i+1)*plans {
			b.Fatalf("month %d: %d moved", i, n)
		}
		month = month.AddDate(0, 1, 0)
		b.StartTimer()
	}
	b.ReportMetric(float64(plans*b.N)/b.Elapsed().Seconds(), "cycles/s")
}
