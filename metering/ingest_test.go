package metering_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/metering"
)

func TestIngestBatch(t *testing.T) {
	w := setup(t)
	c0, c1 := w.customers[0], w.customers[1]
	ts := w.now.Add(-time.Hour)
	res := w.ingest(
		ev("e1", c0, "kwh", "12.5", ts),
		ev("e2", c1, "kwh", "0.000000000001", ts, "customer_id", nil, "customer_reference_id", "PLN-1"),
		ev("e3", c0, "readings", "", ts),
		ev("e4", c0, "sites", "", ts, "properties", map[string]any{"site": "A-1", "note": "x"}),
		ev("e5", c0, "peak_kw", "7", ts.Add(-24*time.Hour*400)), // an old month: its partition is made on demand
	)
	if res.Accepted != 5 || res.Duplicates != 0 || len(res.Rejected) != 0 {
		t.Fatalf("result %+v", res)
	}
	if w.stored() != 5 {
		t.Fatalf("%d stored", w.stored())
	}
	// The same batch again: all duplicates. A changed event: rejected.
	res = w.ingest(ev("e1", c0, "kwh", "12.50", ts), ev("e3", c0, "readings", "1", ts), ev("e2", c1, "kwh", "1", ts))
	if res.Accepted != 0 || res.Duplicates != 2 || len(res.Rejected) != 1 || res.Rejected[0].Index != 2 ||
		res.Rejected[0].ErrorCode != "DUPLICATE_ERROR" || res.Rejected[0].Field != "event_id" {
		t.Fatalf("resend: %+v", res)
	}
	if w.stored() != 5 {
		t.Fatalf("%d stored after resend", w.stored())
	}
}

func TestIngestRejectsBadEventsAlone(t *testing.T) {
	w := setup(t)
	c := w.customers[0]
	ts := w.now.Add(-time.Minute)
	cases := []struct {
		event any
		code  string
		field string
	}{
		{ev("n1", c, "kwh", "-1", ts), "API_VALIDATION_ERROR", "quantity"},
		{ev("n2", c, "kwh", "1.0000000000001", ts), "API_VALIDATION_ERROR", "quantity"},
		{ev("n3", c, "kwh", "", ts), "API_VALIDATION_ERROR", "quantity"},
		{ev("n4", c, "water_m3", "1", ts), "DATA_NOT_FOUND", "meter"},
		{ev("n5", c, "kwh", "1", ts, "customer_id", "cust-01a1fd36-2c2d-7a15-8d5d-fafa8b5021a2"), "DATA_NOT_FOUND", "customer_id"},
		{ev("n6", c, "kwh", "1", ts, "customer_id", nil, "customer_reference_id", "nobody"), "DATA_NOT_FOUND", "customer_reference_id"},
		{ev("n7", c, "kwh", "1", ts, "customer_id", nil), "API_VALIDATION_ERROR", "customer_id"},
		{ev("n8", c, "kwh", "1", w.now.Add(5*time.Minute+time.Second)), "API_VALIDATION_ERROR", "timestamp"},
		{ev("n9", c, "kwh", "1", ts, "timestamp", "yesterday"), "API_VALIDATION_ERROR", "timestamp"},
		{ev("n10", c, "kwh", "1", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)), "API_VALIDATION_ERROR", "timestamp"},
		{ev("n11", c, "kwh", "1", ts, "timestamp", nil), "API_VALIDATION_ERROR", "timestamp"},
		{ev("n12", c, "kwh", "1", ts, "properties", map[string]any{"blob": strings.Repeat("x", 4096)}), "API_VALIDATION_ERROR", "properties"},
		{ev("n13", c, "kwh", "1", ts, "properties", []any{1}), "API_VALIDATION_ERROR", "properties"},
		{ev("n14", c, "sites", "", ts), "API_VALIDATION_ERROR", "properties.site"},
		{ev("n15", c, "kwh", "1", ts, "event_id", nil), "API_VALIDATION_ERROR", "event_id"},
		{ev("n16", c, "kwh", "1", ts, "event_id", strings.Repeat("i", 256)), "API_VALIDATION_ERROR", "event_id"},
		{ev("n17", c, "kwh", "1", ts, "colour", "red"), "API_VALIDATION_ERROR", "colour"},
		{ev("n18", c, "kwh", "", ts, "quantity", "ten"), "API_VALIDATION_ERROR", "quantity"},
		{ev("n19", c, "kwh", "1", ts, "meter", 5), "API_VALIDATION_ERROR", "meter"},
		{ev("n20", c, "readings", "1", ts, "correction_of", "n1"), "API_VALIDATION_ERROR", "correction_of"},
		{"not an object", "API_VALIDATION_ERROR", "event"},
		{ev("n22", c, "kwh", "1", ts, "customer_reference_id", "PLN-0"), "API_VALIDATION_ERROR", "customer_id"},
	}
	var batch []any
	for _, c := range cases {
		batch = append(batch, c.event)
	}
	batch = append(batch, ev("good", c, "kwh", "3", ts))
	res := w.ingest(batch...)
	if res.Accepted != 1 || len(res.Rejected) != len(cases) {
		t.Fatalf("accepted %d, rejected %d: %+v", res.Accepted, len(res.Rejected), res.Rejected)
	}
	for i, c := range cases {
		r := res.Rejected[i]
		if r.Index != i || r.ErrorCode != c.code || r.Field != c.field || r.Message == "" {
			t.Errorf("case %d: got %+v, want %s on %s", i, r, c.code, c.field)
		}
	}
	if w.stored() != 1 {
		t.Fatalf("%d stored", w.stored())
	}
}

func TestDecodeBatchWholeRequestErrors(t *testing.T) {
	for body, field := range map[string]string{
		``:                           "body",
		`[]`:                         "body",
		`{"events": {}}`:             "events",
		`{"events": []}`:             "events",
		`{"events": null}`:           "events",
		`{"events": [], "extra": 1}`: "extra",
		`{"events": [1,}`:            "body",
	} {
		if _, err := metering.DecodeBatch([]byte(body)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want one naming %s", body, err, field)
		}
	}
	big := `{"events": [` + strings.TrimSuffix(strings.Repeat(`{},`, metering.MaxBatch+1), ",") + `]}`
	if _, err := metering.DecodeBatch([]byte(big)); err == nil {
		t.Fatal("a batch of 10,001 events was accepted")
	}
	if b, err := metering.DecodeBatch([]byte(`{"event_id": "x"}`)); err != nil || !b.Single || len(b.Events) != 1 {
		t.Fatalf("single event: %+v %v", b, err)
	}
}

func TestDuplicatesInsideOneBatch(t *testing.T) {
	w := setup(t)
	c := w.customers[0]
	ts := w.now.Add(-time.Hour)
	res := w.ingest(ev("d", c, "kwh", "1", ts), ev("d", c, "kwh", "1.0", ts), ev("d", c, "kwh", "2", ts))
	if res.Accepted != 1 || res.Duplicates != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 2 || res.Rejected[0].ErrorCode != "DUPLICATE_ERROR" {
		t.Fatalf("%+v", res)
	}
}

// TestSameBatchFromTwoClientsAtOnce sends one batch from several goroutines
// at the same moment: each event is stored once, and every client is told
// each event is either accepted or a duplicate.
func TestSameBatchFromTwoClientsAtOnce(t *testing.T) {
	w := setup(t)
	var batch []any
	for i := 0; i < 500; i++ {
		batch = append(batch, ev(fmt.Sprintf("c-%04d", i), w.customers[i%3], "kwh", "1.5", w.now.Add(-time.Duration(i)*time.Minute)))
	}
	const clients = 4
	results := make([]*metering.Result, clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = w.ingest(batch...) }()
	}
	wg.Wait()
	accepted := 0
	for _, r := range results {
		if r.Accepted+r.Duplicates != len(batch) || len(r.Rejected) != 0 {
			t.Fatalf("result %+v", r)
		}
		accepted += r.Accepted
	}
	if accepted != len(batch) || w.stored() != len(batch) {
		t.Fatalf("accepted %d in all, %d stored; want %d", accepted, w.stored(), len(batch))
	}
}

func TestCorrections(t *testing.T) {
	w := setup(t)
	c0, c1 := w.customers[0], w.customers[1]
	ts := w.now.Add(-48 * time.Hour)
	res := w.ingest(ev("r1", c0, "kwh", "100", ts), ev("p1", c0, "peak_kw", "5", ts))
	if res.Accepted != 2 {
		t.Fatal(res)
	}
	cases := []struct {
		event any
		code  string
		field string
	}{
		{ev("x1", c0, "kwh", "-101", time.Time{}, "timestamp", nil, "correction_of", "r1"), "API_VALIDATION_ERROR", "quantity"},
		{ev("x2", c0, "kwh", "-1", time.Time{}, "timestamp", nil, "correction_of", "nope"), "DATA_NOT_FOUND", "correction_of"},
		{ev("x3", c1, "kwh", "-1", time.Time{}, "timestamp", nil, "correction_of", "r1"), "API_VALIDATION_ERROR", "correction_of"},
		{ev("x4", c0, "peak_kw", "-1", time.Time{}, "timestamp", nil, "correction_of", "r1"), "API_VALIDATION_ERROR", "correction_of"},
		{ev("x5", c0, "kwh", "-1", ts.Add(time.Hour), "correction_of", "r1"), "API_VALIDATION_ERROR", "timestamp"},
		{ev("x6", c0, "kwh", "-1", time.Time{}, "timestamp", nil, "correction_of", "x6"), "API_VALIDATION_ERROR", "correction_of"},
	}
	var batch []any
	for _, c := range cases {
		batch = append(batch, c.event)
	}
	batch = append(batch,
		ev("ok1", c0, "kwh", "-40", time.Time{}, "timestamp", nil, "correction_of", "r1"),
		ev("ok2", c0, "kwh", "-60", ts, "correction_of", "r1"), // brings the reading to exactly zero
		ev("bad", c0, "kwh", "-0.01", time.Time{}, "timestamp", nil, "correction_of", "r1"),
		ev("n1", c0, "kwh", "3", ts),
		ev("ok3", c0, "kwh", "2", time.Time{}, "timestamp", nil, "correction_of", "n1"), // its original is earlier in the batch
		ev("chain", c0, "kwh", "1", time.Time{}, "timestamp", nil, "correction_of", "ok1"),
	)
	res = w.ingest(batch...)
	if res.Accepted != 4 || len(res.Rejected) != len(cases)+2 {
		t.Fatalf("%+v", res)
	}
	for i, c := range cases {
		if r := res.Rejected[i]; r.ErrorCode != c.code || r.Field != c.field {
			t.Errorf("case %d: %+v, want %s on %s", i, r, c.code, c.field)
		}
	}
	if r := res.Rejected[len(cases)]; r.EventID == nil || *r.EventID != "bad" || r.Field != "quantity" {
		t.Errorf("over-correction: %+v", r)
	}
	if r := res.Rejected[len(cases)+1]; r.EventID == nil || *r.EventID != "chain" || r.Field != "correction_of" {
		t.Errorf("correction of a correction: %+v", r)
	}
	// A resent correction is a duplicate, not a second adjustment.
	if res := w.ingest(ev("ok1", c0, "kwh", "-40", time.Time{}, "timestamp", nil, "correction_of", "r1")); res.Duplicates != 1 {
		t.Fatalf("resent correction: %+v", res)
	}
	var rows []struct {
		EventID string    `bun:"event_id"`
		Ts      time.Time `bun:"timestamp"`
	}
	if err := w.db.Bun.NewSelect().Table("usage_events").Column("event_id", "timestamp").Where("correction_of IS NOT NULL").Where("business_id = ?", w.biz.ID).Scan(w.ctx, &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !r.Ts.Equal(ts) {
			t.Fatalf("correction %s stored at %v, want its original's %v", r.EventID, r.Ts, ts)
		}
	}
}

func TestPartitionsAhead(t *testing.T) {
	w := setup(t)
	p := metering.NewPartitions(w.db.Pool)
	if err := p.EnsureAhead(w.ctx, time.Date(2031, 12, 15, 0, 0, 0, 0, time.UTC), 2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"usage_events_2031_12", "usage_events_2032_01", "usage_events_2032_02"} {
		var ok bool
		if err := w.db.Pool.QueryRow(w.ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil || !ok {
			t.Fatalf("%s missing (%v)", name, err)
		}
	}
	if got := metering.PartitionName(time.Date(2028, 2, 29, 23, 59, 59, 0, time.FixedZone("x", -3600))); got != "usage_events_2028_03" {
		t.Fatalf("PartitionName = %s", got)
	}
	// Two Partitions (two processes) creating the same months at once.
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metering.NewPartitions(w.db.Pool).EnsureAhead(w.ctx, time.Date(2033, 5, 1, 0, 0, 0, 0, time.UTC), 3); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_ = json.Valid
}

// TestReferenceChangeIsSeen: an ingester remembers customer ids, never
// references, which a PATCH can move to another customer.
func TestReferenceChangeIsSeen(t *testing.T) {
	w := setup(t)
	c0 := w.customers[0]
	ts := w.now.Add(-time.Hour)
	byRef := func(id, ref string) any {
		return ev(id, c0, "kwh", "1", ts, "customer_id", nil, "customer_reference_id", ref)
	}
	if res := w.ingest(byRef("r1", "PLN-0")); res.Accepted != 1 {
		t.Fatalf("%+v", res)
	}
	newRef := "PLN-0-moved"
	if _, err := customers.Update(w.ctx, w.db.Bun, w.biz.ID, c0.ID, w.now, customers.PatchParams{ReferenceID: billing.Optional[string]{Set: true, Value: newRef}}); err != nil {
		t.Fatal(err)
	}
	res := w.ingest(byRef("r2", "PLN-0"), byRef("r3", newRef))
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Field != "customer_reference_id" {
		t.Fatalf("%+v", res)
	}
}

// TestResendWrittenDifferently: a resend whose bytes differ but whose
// content is the same (another key order, offset, number writing) is a
// duplicate; a real change is not.
func TestResendWrittenDifferently(t *testing.T) {
	w := setup(t)
	c := w.customers[0]
	ts := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	first := ev("w1", c, "kwh", "2.50", ts, "properties", json.RawMessage(`{"a": 1, "b": {"x": [1, 2.0]}}`))
	if res := w.ingest(first); res.Accepted != 1 {
		t.Fatal(res)
	}
	same := ev("w1", c, "kwh", "2.5", ts.In(time.FixedZone("WIB", 7*3600)), "properties", json.RawMessage(`{"b":{"x":[1,2]},"a":1.0}`))
	if res := w.ingest(same); res.Duplicates != 1 || len(res.Rejected) != 0 {
		t.Fatalf("same content written differently: %+v", res)
	}
	changed := ev("w1", c, "kwh", "2.5", ts, "properties", json.RawMessage(`{"a":1,"b":{"x":[1,3]}}`))
	if res := w.ingest(changed); len(res.Rejected) != 1 || res.Rejected[0].ErrorCode != "DUPLICATE_ERROR" {
		t.Fatalf("changed properties: %+v", res)
	}
	// Inside one batch too.
	res := w.ingest(ev("w2", c, "kwh", "1", ts, "properties", json.RawMessage(`{"a":1,"b":2}`)), ev("w2", c, "kwh", "1.0", ts, "properties", json.RawMessage(`{"b":2, "a":1}`)))
	if res.Accepted != 1 || res.Duplicates != 1 {
		t.Fatalf("in-batch: %+v", res)
	}
}
