package metering_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tagihan/billing/metering"
)

func benchBody(b *testing.B, prefix string, n int, w *world) []byte {
	var events []any
	for i := 0; i < n; i++ {
		c := w.customers[i%len(w.customers)]
		events = append(events, map[string]any{
			"event_id": fmt.Sprintf("%s-%d", prefix, i), "customer_id": c.ID, "meter": "kwh",
			"quantity": "1.125", "timestamp": w.now.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339),
			"properties": map[string]any{"meter_serial": fmt.Sprintf("SN-%06d", i%100)},
		})
	}
	return mustJSON(b, map[string]any{"events": events})
}

// BenchmarkIngestBatch measures one batch of 1,000 new events through
// Ingest: decoding, validation, resolution, the id claim and COPY. make
// bench measures the whole engine; this isolates the ingestion path for
// profiling (go test -bench IngestBatch -cpuprofile).
func BenchmarkIngestBatch(b *testing.B) {
	w := setup(b)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = benchBody(b, fmt.Sprintf("b%d", i), 1000, w)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch, err := metering.DecodeBatch(bodies[i])
		if err != nil {
			b.Fatal(err)
		}
		res, err := w.ingester.Ingest(w.ctx, w.biz.ID, w.now, batch)
		if err != nil || res.Accepted != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeBatch measures decoding a batch of 1,000 events (the
// one-pass path) and checking each, without the database.
func BenchmarkDecodeBatch(b *testing.B) {
	ids := []string{"cust-01a1fd36-2c2d-7a15-8d5d-fafa8b5021a2", "cust-01a1fd36-2c2d-7a15-8d5d-fafa8b5021a3"}
	var events []any
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		events = append(events, map[string]any{
			"event_id": fmt.Sprintf("e-%d", i), "customer_id": ids[i%2], "meter": "kwh", "quantity": "1.125",
			"timestamp": now.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339), "properties": map[string]any{"meter_serial": "SN-000001"},
		})
	}
	body := mustJSON(b, map[string]any{"events": events})
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch, err := metering.DecodeBatch(body)
		if err != nil || batch.Len() != 1000 {
			b.Fatal(err)
		}
	}
}
