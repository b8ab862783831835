package metering

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tagihan/billing"
)

var fuzzNow = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// FuzzParseEvent feeds arbitrary bytes to the usage event decoder: it must
// never panic; a rejection must be a 4xx error naming a field; an accepted
// event must respect every limit of SPEC §4.3.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"e1","customer_id":"cust-1","meter":"kwh","quantity":1.5,"timestamp":"2026-11-21T07:00:00Z"}`,
		`{"event_id":"e2","customer_reference_id":"PLN-1","meter":"kwh","quantity":"0.000000000001","timestamp":"2026-11-21T07:00:00+07:00","properties":{"site":"A","n":[1,2]}}`,
		`{"event_id":"e3","customer_id":"c","meter":"kwh","quantity":-2,"correction_of":"e1"}`,
		`{"event_id":"","meter":"","quantity":1e400,"timestamp":"soon","properties":[]}`,
		`{"event_id":"e4","customer_id":"c","customer_reference_id":"r","meter":"m","unknown":true}`,
		`"event"`, `null`, `{`, `{"quantity":"1e-13"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := parseEvent(0, raw, fuzzNow)
		if err != nil {
			if err.Code != billing.EINVALID || len(err.Fields) == 0 || err.Fields[0].Field == "" || err.Message == "" {
				t.Fatalf("parse %q: error %#v does not name a field", raw, err)
			}
			return
		}
		if ev.eventID == "" || ev.meterCode == "" || (ev.customerID == "") == (ev.customerRef == "") {
			t.Fatalf("accepted %q without its identifiers: %+v", raw, ev)
		}
		if ev.hasQuantity && (billing.DecimalPlaces(ev.quantity) > MaxQuantityPlaces || (ev.quantity.IsNegative() && ev.correctionOf == "")) {
			t.Fatalf("accepted %q with quantity %s", raw, ev.quantity)
		}
		if ev.hasTimestamp && (ev.timestamp.Before(MinTimestamp) || ev.timestamp.After(fuzzNow.Add(MaxFuture))) {
			t.Fatalf("accepted %q with timestamp %v", raw, ev.timestamp)
		}
		if !ev.hasTimestamp && ev.correctionOf == "" {
			t.Fatalf("accepted %q without a timestamp", raw)
		}
		if ev.properties != nil && !json.Valid(ev.properties) {
			t.Fatalf("accepted %q with properties %q", raw, ev.properties)
		}
		if again := *ev; again.contentHash() != ev.contentHash() {
			t.Fatal("content hash is not deterministic")
		}
	})
}

// FuzzDecodeBatch checks the whole-request decoder: it never panics, and a
// batch it accepts holds 1 to 10,000 events.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{`{"events":[{"event_id":"a"},{}]}`, `{"event_id":"a"}`, `{"events":{}}`, `{"events":[]}`, `[]`, `{"events":[1],"x":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBatch(body)
		if err != nil {
			if billing.CodeOf(err) != billing.EINVALID {
				t.Fatalf("decode %q: %v", body, err)
			}
			return
		}
		if b.Len() == 0 || b.Len() > MaxBatch || (b.Single && b.Len() != 1) {
			t.Fatalf("decode %q: %d events, single %v", body, b.Len(), b.Single)
		}
	})
}
