package metering_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/metering"
	"github.com/tagihan/billing/migrations"
)

// TestDatabaseRestartDuringIngestion restarts PostgreSQL while clients send
// batches, each client retrying a batch with the same event_ids until it is
// acknowledged. In the end exactly the events sent are stored, each once.
// It runs on a private cluster of its own, so that restarting it disturbs no
// other test.
func TestDatabaseRestartDuringIngestion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // reachable by the cluster's user when root
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := postgres.NewCluster(filepath.Join(dir, "pg"))
	if err != nil {
		if os.Getenv("CI") == "" && strings.Contains(err.Error(), "not found") {
			t.Skip("PostgreSQL server programs are not installed")
		}
		t.Fatal(err)
	}
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Restart(context.Background()); _ = cl.Stop(context.Background()) })
	if err := postgres.EnsureDatabase(ctx, cl.URL("postgres"), "billing"); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, cl.URL("billing"), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	w := setupOn(t, db)

	const clients, batches, size = 4, 20, 250
	var sent, attempts atomic.Int64
	restarted := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				var events []any
				for i := 0; i < size; i++ {
					events = append(events, ev(fmt.Sprintf("c%d-b%d-e%d", c, b, i), w.customers[i%3], "kwh", "0.5", w.now.Add(-time.Duration(i)*time.Minute)))
				}
				body := mustJSON(t, map[string]any{"events": events})
				for try := 0; ; try++ {
					attempts.Add(1)
					batch, err := metering.DecodeBatch(body)
					if err != nil {
						t.Error(err)
						return
					}
					res, err := w.ingester.Ingest(ctx, w.biz.ID, w.now, batch)
					if err == nil {
						if res.Accepted+res.Duplicates != size || len(res.Rejected) != 0 {
							t.Errorf("client %d batch %d: %+v", c, b, res)
						}
						break
					}
					if try > 200 {
						t.Errorf("client %d batch %d: still failing: %v", c, b, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				sent.Add(size)
				if c == 0 && b == batches/3 {
					close(restarted) // the restart happens while the others are mid-flight
				}
			}
		}()
	}
	<-restarted
	if err := cl.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var stored, distinct, ids int
	for q, dst := range map[string]*int{
		"SELECT count(*) FROM usage_events WHERE business_id = $1":                 &stored,
		"SELECT count(DISTINCT event_id) FROM usage_events WHERE business_id = $1": &distinct,
		"SELECT count(*) FROM usage_event_ids WHERE $1 <> ''":                      &ids, // this cluster has one business
	} {
		for try := 0; ; try++ {
			err := db.Pool.QueryRow(ctx, q, w.biz.ID).Scan(dst)
			if err == nil {
				break
			}
			if try > 100 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	want := int(sent.Load())
	if want != clients*batches*size || stored != want || distinct != want || ids != want {
		t.Fatalf("sent %d events: %d stored, %d distinct, %d ids", want, stored, distinct, ids)
	}
	if attempts.Load() == clients*batches {
		t.Log("no request failed during the restart; the restart came between batches")
	}
	t.Logf("%d events in %d attempts", want, attempts.Load())
}
