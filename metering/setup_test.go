package metering_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world is one test's business with customers and meters.
type world struct {
	t         testing.TB
	ctx       context.Context
	db        *postgres.DB
	biz       *business.Business
	now       time.Time
	ingester  *metering.Ingester
	customers []*customers.Customer
	meters    map[string]*metering.Meter
}

var testNow = time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)

func setup(t testing.TB) *world {
	t.Helper()
	return setupOn(t, pgtest.New(t))
}

func setupOn(t testing.TB, db *postgres.DB) *world {
	t.Helper()
	ctx := context.Background()
	clock := billing.NewSettableClock(testNow)
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: t.Name(), Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ctx: ctx, db: db, biz: biz, now: testNow, meters: map[string]*metering.Meter{},
		ingester: metering.NewIngester(db.Pool, metering.NewPartitions(db.Pool))}
	for i := 0; i < 3; i++ {
		given := "Customer"
		c, err := customers.Create(ctx, db.Bun, biz.ID, testNow, customers.CreateParams{
			ReferenceID: fmt.Sprintf("PLN-%d", i), Type: customers.TypeIndividual,
			IndividualDetail: &customers.IndividualDetail{GivenNames: &given}})
		if err != nil {
			t.Fatal(err)
		}
		w.customers = append(w.customers, c)
	}
	site := "site"
	for code, agg := range map[string]metering.Aggregation{
		"kwh": metering.AggregationSum, "readings": metering.AggregationCount, "peak_kw": metering.AggregationMax,
		"index": metering.AggregationLatest, "sites": metering.AggregationUniqueCount,
	} {
		p := metering.CreateMeterParams{Code: code, Name: code, Unit: "u", Aggregation: agg}
		if agg == metering.AggregationUniqueCount {
			p.ValueProperty = &site
		}
		m, err := metering.CreateMeter(ctx, db.Bun, biz.ID, testNow, p)
		if err != nil {
			t.Fatal(err)
		}
		w.meters[code] = m
	}
	return w
}

// ev builds an event body.
func ev(id string, customer *customers.Customer, meter string, qty string, ts time.Time, extra ...any) map[string]any {
	m := map[string]any{"event_id": id, "customer_id": customer.ID, "meter": meter, "timestamp": ts.Format(time.RFC3339Nano)}
	if qty != "" {
		m["quantity"] = json.Number(qty)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(m, extra[i].(string))
		} else {
			m[extra[i].(string)] = extra[i+1]
		}
	}
	return m
}

// ingest sends events as one batch and returns the result.
func (w *world) ingest(events ...any) *metering.Result {
	w.t.Helper()
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := metering.DecodeBatch(body)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.ingester.Ingest(w.ctx, w.biz.ID, w.now, b)
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

func (w *world) stored() int {
	w.t.Helper()
	n, err := w.db.Bun.NewSelect().Table("usage_events").Where("business_id = ?", w.biz.ID).Count(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return int(n)
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
