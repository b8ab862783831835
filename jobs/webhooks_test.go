package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/tagihan/billing/jobs"
	"github.com/uptrace/bun"
)

// engine is one engine process: its own pool, services, River client and
// wake listener, all on the test's database.
type engine struct {
	db     *postgres.DB
	deps   jobs.Deps
	client *river.Client[pgx.Tx]
}

// startEngine starts a process that works jobs, as billing serve does.
func startEngine(t *testing.T, clock billing.Clock, notifyCfg *notify.Config) *engine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := postgres.Open(ctx, pgtest.URL(t), 12)
	if err != nil {
		t.Fatal(err)
	}
	deps := jobs.Deps{DB: db.Bun, Clock: clock,
		Webhooks: webhooks.New(webhooks.Config{DB: db.Bun, Clock: clock, Timeout: 8 * time.Second, Guard: webhooks.Guard{AllowPrivateSandbox: true}})}
	if notifyCfg != nil {
		c := *notifyCfg
		c.DB, c.Clock = db.Bun, clock
		deps.Notify = notify.New(c)
	}
	client, err := jobs.NewClient(db.Pool, deps, jobs.Config{Work: true, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		jobs.Wake(ctx, db.Pool, client, deps, slog.New(slog.DiscardHandler), ready)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the wake listener did not start")
	}
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = client.StopAndCancel(stopCtx)
		cancel()
		<-done
		db.Close()
	})
	return &engine{db: db, deps: deps, client: client}
}

// hook is a webhook receiver that records event ids; with hang set it
// never answers.
type hook struct {
	srv  *httptest.Server
	hang atomic.Bool
	fail atomic.Bool
	mu   sync.Mutex
	ids  []string
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	stop := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &env)
		h.mu.Lock()
		h.ids = append(h.ids, env.ID)
		h.mu.Unlock()
		if h.hang.Load() {
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		}
		if h.fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		close(stop)
		h.srv.Close()
	})
	return h
}

func (h *hook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sandboxWithEndpoints(t *testing.T, db *postgres.DB, svc *webhooks.Service, clock billing.Clock, urls ...string) *business.Business {
	t.Helper()
	ctx := context.Background()
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: t.Name(), Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		err := db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := svc.CreateEndpoint(ctx, tx, biz, webhooks.CreateParams{URL: u, EnabledEvents: []string{"*"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return biz
}

func emitN(t *testing.T, db *postgres.DB, biz *business.Business, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ev, err := outbox.Emit(context.Background(), db.Bun, biz.ID, outbox.InvoiceFinalized, *biz.SandboxNow, map[string]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestHangingEndpointDoesNotBlockOthers: while one endpoint never answers,
// another endpoint of the same business gets every event at once, and the
// hanging one holds a single request open at a time.
func TestHangingEndpointDoesNotBlockOthers(t *testing.T) {
	clock := billing.SystemClock{}
	e := startEngine(t, clock, nil)
	stuck, fine := newHook(t), newHook(t)
	stuck.hang.Store(true)
	biz := sandboxWithEndpoints(t, e.db, e.deps.Webhooks, clock, stuck.srv.URL, fine.srv.URL)
	ids := emitN(t, e.db, biz, 10)
	started := time.Now()
	waitFor(t, 10*time.Second, "the answering endpoint gets every event", func() bool { return len(fine.received()) == len(ids) })
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("the answering endpoint waited %s, as long as the hanging one's timeout", took)
	}
	if n := len(stuck.received()); n > 1 {
		t.Fatalf("the hanging endpoint has %d requests open at once", n)
	}
}

// TestSeveralEnginesDeliverEachEventOnce runs three engine processes on
// one database: every event reaches each endpoint exactly once.
func TestSeveralEnginesDeliverEachEventOnce(t *testing.T) {
	clock := billing.SystemClock{}
	var engines []*engine
	for range 3 {
		engines = append(engines, startEngine(t, clock, nil))
	}
	a, b := newHook(t), newHook(t)
	biz := sandboxWithEndpoints(t, engines[0].db, engines[0].deps.Webhooks, clock, a.srv.URL, b.srv.URL)
	var wg sync.WaitGroup
	var all [3][]string
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i] = emitN(t, e.db, biz, 40)
		}()
	}
	wg.Wait()
	want := append(append(append([]string(nil), all[0]...), all[1]...), all[2]...)
	for name, h := range map[string]*hook{"A": a, "B": b} {
		waitFor(t, 20*time.Second, "endpoint "+name+" gets every event", func() bool { return len(h.received()) >= len(want) })
	}
	// Give a duplicate, were there one, the time to arrive.
	time.Sleep(300 * time.Millisecond)
	for name, h := range map[string]*hook{"A": a, "B": b} {
		counts := map[string]int{}
		for _, id := range h.received() {
			counts[id]++
		}
		for _, id := range want {
			if counts[id] != 1 {
				t.Fatalf("endpoint %s got %s %d times", name, id, counts[id])
			}
		}
		if len(counts) != len(want) {
			t.Fatalf("endpoint %s got %d distinct events, want %d", name, len(counts), len(want))
		}
	}
}

// TestSweepRetriesDueDeliveries: a delivery that failed is retried when
// its time comes by the sweep, with no wake-up.
func TestSweepRetriesDueDeliveries(t *testing.T) {
	e := startEngine(t, billing.SystemClock{}, nil)
	h := newHook(t)
	h.fail.Store(true)
	biz := sandboxWithEndpoints(t, e.db, e.deps.Webhooks, billing.SystemClock{}, h.srv.URL)
	ids := emitN(t, e.db, biz, 1)
	waitFor(t, 10*time.Second, "the first attempt", func() bool { return len(h.received()) == 1 })
	h.fail.Store(false)
	to := biz.SandboxNow.Add(time.Minute)
	if _, err := business.AdvanceClock(context.Background(), e.db.Bun, biz.ID, business.ClockAdvance{To: &to}); err != nil {
		t.Fatal(err)
	}
	// Nothing wakes the workers for a retry: the sweep (periodic, and
	// called here so that the test need not wait 15 seconds) finds it.
	if err := jobs.Sweep(context.Background(), e.client, e.deps); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the retry", func() bool { return len(h.received()) == 2 })
	if got := h.received(); got[1] != ids[0] {
		t.Fatalf("retried %s, want %s", got[1], ids[0])
	}
	waitFor(t, 5*time.Second, "the delivery recorded as succeeded", func() bool {
		ds, _, err := webhooks.ListDeliveries(context.Background(), e.db.Bun, biz.ID, ids[0], billing.Page{Limit: 10})
		return err == nil && ds[0].Status == webhooks.DeliverySucceeded
	})
}
