package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/jobs"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startClient starts a River client that works the jobs of deps on db, as
// an engine process does, and stops it when the test ends.
func startClient(t *testing.T, db *postgres.DB, deps jobs.Deps) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := jobs.NewClient(db.Pool, deps, jobs.Config{Work: true, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return client
}

// TestIdempotencyCleanupRunsPeriodically starts a real River client, as
// billing serve does, and waits for its periodic job to delete the expired
// idempotency records and keep the live ones.
func TestIdempotencyCleanupRunsPeriodically(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := billing.NewSettableClock(now)
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Jobs", Mode: business.ModeLive})
	if err != nil {
		t.Fatal(err)
	}
	insert := func(key string, expires time.Time) {
		_, err := db.Bun.NewRaw(`INSERT INTO idempotency_keys (business_id, key, request_hash, method, path, status_code, content_type, response_body, created, expires_at)
			VALUES (?, ?, '\x00', 'POST', '/customers', 200, 'application/json', '{}', ?, ?)`, biz.ID, key, expires.Add(-24*time.Hour), expires).Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	insert("expired-long-ago", now.Add(-48*time.Hour))
	insert("expired-at-the-instant", now)
	insert("still-live", now.Add(time.Microsecond))

	startClient(t, db, jobs.Deps{DB: db.Bun, Clock: clock})

	deadline := time.After(20 * time.Second)
	for {
		var keys []string
		if err := db.Bun.NewRaw("SELECT key FROM idempotency_keys WHERE business_id = ? ORDER BY key", biz.ID).Scan(ctx, &keys); err != nil {
			t.Fatal(err)
		}
		if len(keys) == 1 {
			if keys[0] != "still-live" {
				t.Fatalf("kept %v", keys)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("expired records still there after 20s: %v", keys)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// River records the completion shortly after the work is done.
	for {
		var completed int
		if err := db.Bun.NewRaw("SELECT count(*) FROM river_job WHERE kind = ? AND state = 'completed'", jobs.IdempotencyCleanupArgs{}.Kind()).Scan(ctx, &completed); err != nil {
			t.Fatal(err)
		}
		if completed > 0 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("no completed cleanup job in river_job")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestUsagePartitionsAheadAtStart checks that a started client creates the
// usage partitions of this month and the next two.
func TestUsagePartitionsAheadAtStart(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	clock := billing.NewSettableClock(time.Date(2035, 12, 31, 23, 59, 0, 0, time.UTC))
	startClient(t, db, jobs.Deps{DB: db.Bun, Clock: clock})
	deadline := time.Now().Add(20 * time.Second)
	for _, name := range []string{"usage_events_2035_12", "usage_events_2036_01", "usage_events_2036_02"} {
		for {
			var ok bool
			if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %s not created within 20s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
