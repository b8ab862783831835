package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
)

const (
	batchSize    = 1000
	benchClients = 1000 // customers the events are spread over
)

// sample is one synthetic usage event: an hourly kWh reading.
type sample struct {
	eventID  string
	customer string
	qty      string
	ts       time.Time
	serial   string
}

func makeSamples(prefix string, n int, customerIDs []string, now time.Time) []sample {
	out := make([]sample, n)
	for i := range out {
		c := i % len(customerIDs)
		out[i] = sample{
			eventID:  fmt.Sprintf("%s-%08d", prefix, i),
			customer: customerIDs[c],
			qty:      strconv.FormatFloat(float64(i%5000)/1000+0.125, 'f', 3, 64),
			ts:       now.Add(-time.Duration(i%(40*24)) * time.Hour), // the last 40 days: two monthly partitions
			serial:   fmt.Sprintf("SN-%06d", c),
		}
	}
	return out
}

func benchIngestion(ctx context.Context, db *postgres.DB, eng *engine, clients, events int) error {
	if events%(clients*batchSize) != 0 {
		return fmt.Errorf("-events must be a multiple of clients × %d", batchSize)
	}
	clock := billing.SystemClock{}
	biz, key, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Bench Utility", Mode: business.ModeSandbox})
	if err != nil {
		return err
	}
	now := *biz.SandboxNow
	customerIDs := make([]string, benchClients)
	for i := range customerIDs {
		given := "Bench"
		c, err := customers.Create(ctx, db.Bun, biz.ID, now, customers.CreateParams{
			ReferenceID: fmt.Sprintf("BENCH-%05d", i), Type: customers.TypeIndividual,
			IndividualDetail: &customers.IndividualDetail{GivenNames: &given}})
		if err != nil {
			return err
		}
		customerIDs[i] = c.ID
	}
	if _, err := metering.CreateMeter(ctx, db.Bun, biz.ID, now, metering.CreateMeterParams{Code: "electricity_kwh", Name: "Electricity", Unit: "kWh", Aggregation: metering.AggregationSum}); err != nil {
		return err
	}
	if err := metering.NewPartitions(db.Pool).Ensure(ctx, now, now.AddDate(0, -1, 0), now.AddDate(0, -2, 0)); err != nil {
		return err
	}
	if err := quiet(ctx, db); err != nil {
		return err
	}
	fmt.Printf("\nIngestion: %d events per run, %d concurrent clients, batches of %d, %d customers, %d rounds\n",
		events, clients, batchSize, benchClients, rounds)

	// Rounds alternate the baseline and the engine, each after a CHECKPOINT,
	// so that neither pays more than its share of the server's background
	// writing; the medians are compared.
	var apiRates, copyRates []float64
	for round := 0; round < rounds; round++ {
		if err := checkpoint(ctx, db); err != nil {
			return err
		}
		// Baseline: COPY of as many rows into the same table, in as many streams.
		copyRows := makeSamples(fmt.Sprintf("copy%d", round), events, customerIDs, now)
		copyTime, err := timeCopy(ctx, db, biz.ID, now, copyRows, clients)
		if err != nil {
			return fmt.Errorf("copy baseline: %w", err)
		}
		if err := checkpoint(ctx, db); err != nil {
			return err
		}
		// The engine: as many events through POST /usage_events.
		apiRows := makeSamples(fmt.Sprintf("api%d", round), events, customerIDs, now)
		bodies := make([][]byte, 0, events/batchSize)
		for i := 0; i < events; i += batchSize {
			bodies = append(bodies, batchBody(apiRows[i:i+batchSize]))
		}
		apiTime, err := timeAPI(ctx, eng.addr, key, bodies, clients)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		apiRates = append(apiRates, float64(events)/apiTime.Seconds())
		copyRates = append(copyRates, float64(events)/copyTime.Seconds())
		fmt.Printf("  round %d: POST /usage_events %7.0f events/s, COPY %7.0f rows/s\n", round+1, apiRates[round], copyRates[round])
	}
	var stored int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM usage_events WHERE business_id = $1`, biz.ID).Scan(&stored); err != nil {
		return err
	}
	if stored != 2*rounds*events {
		return fmt.Errorf("%d events stored, want %d", stored, 2*rounds*events)
	}
	apiRate, copyRate := median(apiRates), median(copyRates)
	fmt.Printf("  POST /usage_events  %9.0f events/s  (median)\n", apiRate)
	fmt.Printf("  COPY baseline       %9.0f rows/s    (median, %d streams)\n", copyRate, clients)
	fmt.Printf("  ratio               %8.1f%% of COPY  (target ≥ 50%%)\n", 100*apiRate/copyRate)
	fmt.Printf("  engine peak RSS     %s\n", eng.peakRSS())
	return nil
}

// rounds is how many times each side of the ingestion benchmark runs.
const rounds = 3

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// checkpoint settles the server between phases: autovacuum is off for the
// usage tables of the benchmark database (see quiet), so they are vacuumed
// here, and a checkpoint writes out what the last phase left dirty. Neither
// phase then pays for the other's background work.
func checkpoint(ctx context.Context, db *postgres.DB) error {
	for _, sql := range []string{"VACUUM (ANALYZE) usage_events", "VACUUM (ANALYZE) usage_event_ids", "CHECKPOINT"} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// quiet turns autovacuum off for the usage tables of the benchmark
// database, whose runs would otherwise land on whichever phase is running.
func quiet(ctx context.Context, db *postgres.DB) error {
	rows, err := db.Pool.Query(ctx, `SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'usage_events'::regclass`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range append(tables, "usage_event_ids") {
		if _, err := db.Pool.Exec(ctx, "ALTER TABLE "+t+" SET (autovacuum_enabled = false)"); err != nil {
			return err
		}
	}
	return nil
}

func batchBody(rows []sample) []byte {
	type event struct {
		EventID    string            `json:"event_id"`
		CustomerID string            `json:"customer_id"`
		Meter      string            `json:"meter"`
		Quantity   json.Number       `json:"quantity"`
		Timestamp  string            `json:"timestamp"`
		Properties map[string]string `json:"properties"`
	}
	evs := make([]event, len(rows))
	for i, r := range rows {
		evs[i] = event{r.eventID, r.customer, "electricity_kwh", json.Number(r.qty), r.ts.Format(time.RFC3339), map[string]string{"meter_serial": r.serial}}
	}
	b, _ := json.Marshal(map[string]any{"events": evs})
	return b
}

func timeAPI(ctx context.Context, addr, key string, bodies [][]byte, clients int) (time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 2 * time.Minute}
	work := make(chan []byte, len(bodies))
	for _, b := range bodies {
		work <- b
	}
	close(work)
	errs := make(chan error, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/usage_events", bytes.NewReader(body))
				req.SetBasicAuth(key, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var res metering.Result
				if resp.StatusCode != 200 || json.Unmarshal(raw, &res) != nil || res.Accepted != batchSize {
					errs <- fmt.Errorf("batch answered %d: %.300s", resp.StatusCode, raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

func timeCopy(ctx context.Context, db *postgres.DB, businessID string, now time.Time, rows []sample, streams int) (time.Duration, error) {
	per := len(rows) / streams
	errs := make(chan error, streams)
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < streams; s++ {
		part := rows[s*per : (s+1)*per]
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := pgx.CopyFromSlice(len(part), func(i int) ([]any, error) {
				r := part[i]
				q, _ := new(big.Int).SetString(r.qty[:len(r.qty)-4]+r.qty[len(r.qty)-3:], 10)
				props := []byte(`{"meter_serial":"` + r.serial + `"}`)
				return []any{businessID, billing.NewID(billing.PrefixUsageEvent), r.eventID, r.customer, "electricity_kwh",
					pgtype.Numeric{Int: q, Exp: -3, Valid: true}, r.ts, props, nil, nil, now}, nil
			})
			_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"usage_events"},
				[]string{"business_id", "id", "event_id", "customer_id", "meter", "quantity", "timestamp", "properties", "unique_value", "correction_of", "received_at"}, src)
			errs <- err
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return elapsed, nil
}
