package api_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/internal/customers"
	"github.com/uptrace/bun"
)

// stepHandler is a handler that commits a customer in a transaction of its
// own, as a payment handler commits its intent before calling a provider.
type stepHandler struct {
	runs    atomic.Int32
	gate    chan struct{} // when set, the handler waits for it after committing
	entered chan struct{}
	fail    atomic.Bool
}

func (h *stepHandler) handle(ctx context.Context, db bun.IDB, businessID, key string, body []byte) (int, any, error) {
	n := h.runs.Add(1)
	p, err := customers.DecodeCreate(body)
	if err != nil {
		return 0, nil, err
	}
	p.ReferenceID = p.ReferenceID + "-run" + string(rune('0'+n))
	c, err := customers.Create(ctx, db, businessID, sandboxStart, p)
	if err != nil {
		return 0, nil, err
	}
	if h.entered != nil {
		h.entered <- struct{}{}
	}
	if h.gate != nil {
		<-h.gate
	}
	if h.fail.Load() {
		return 0, nil, errors.New("provider unreachable")
	}
	return 200, c, nil
}

func TestOwnTxIdempotency(t *testing.T) {
	b := setup(t)
	h := &stepHandler{}
	b.api.HandleOwnTxForTest("POST /test/steps", h.handle)

	first := b.call("POST", "/test/steps", siti, "idempotency-key", "k1")
	replay := b.call("POST", "/test/steps", siti, "idempotency-key", "k1")
	if first.status != 200 || string(replay.raw) != string(first.raw) || replay.header.Get("idempotent-replayed") != "true" || h.runs.Load() != 1 {
		t.Fatalf("replay: %d %s / %s, runs %d", first.status, first.raw, replay.raw, h.runs.Load())
	}
	b.call("POST", "/test/steps", map[string]any{"reference_id": "other"}, "idempotency-key", "k1").wantError(t, 409, "IDEMPOTENCY_ERROR", "")

	// A failed run releases the key: the retry runs again (a real handler
	// would find and resume what the first run committed).
	h.fail.Store(true)
	b.call("POST", "/test/steps", siti, "idempotency-key", "k2").wantError(t, 500, "SERVER_ERROR", "")
	h.fail.Store(false)
	if r := b.call("POST", "/test/steps", siti, "idempotency-key", "k2"); r.status != 200 || h.runs.Load() != 3 {
		t.Fatalf("retry after failure: %d %s, runs %d", r.status, r.raw, h.runs.Load())
	}

	// Without a key every request runs.
	b.call("POST", "/test/steps", siti)
	if h.runs.Load() != 4 {
		t.Fatalf("runs %d", h.runs.Load())
	}
}

func TestOwnTxConcurrentRequestWaitsAndReplays(t *testing.T) {
	b := setup(t)
	h := &stepHandler{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	b.api.HandleOwnTxForTest("POST /test/steps", h.handle)

	var wg sync.WaitGroup
	var first, second response
	wg.Add(1)
	go func() { defer wg.Done(); first = b.call("POST", "/test/steps", siti, "idempotency-key", "slow") }()
	<-h.entered // the first request holds the key and has committed its first step
	wg.Add(1)
	go func() { defer wg.Done(); second = b.call("POST", "/test/steps", siti, "idempotency-key", "slow") }()
	time.Sleep(300 * time.Millisecond) // the second is now polling
	close(h.gate)
	wg.Wait()
	if first.status != 200 || string(second.raw) != string(first.raw) || second.header.Get("idempotent-replayed") != "true" || h.runs.Load() != 1 {
		t.Fatalf("first %d %s, second %d %s, runs %d", first.status, first.raw, second.status, second.raw, h.runs.Load())
	}
}

func TestOwnTxExpiredLeaseIsTakenOver(t *testing.T) {
	b := setup(t)
	defer api.SetIdempotencyWaitForTest(time.Second)()
	h := &stepHandler{}
	b.api.HandleOwnTxForTest("POST /test/steps", h.handle)
	// The claim a process left when it died mid-request: the same request,
	// never completed, leased for one minute.
	body := `{"reference_id":"meter-001","individual_detail":{"given_names":"Siti"}}`
	if _, err := b.db.Bun.NewRaw(`INSERT INTO idempotency_keys (business_id, key, request_hash, method, path, status_code, content_type, response_body, created, expires_at, locked_until)
		VALUES (?, 'dead', sha256(convert_to(? || E'\n' || ?, 'UTF8')), 'POST', '/test/steps', 0, '', '', ?, ?, ?)`,
		b.biz.ID, "POST /test/steps", body, sandboxStart, sandboxStart.Add(24*time.Hour), sandboxStart.Add(time.Minute)).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Within the lease the key is in use: the request waits, then gets 409.
	b.clock.Set(sandboxStart.Add(30 * time.Second))
	start := time.Now()
	b.call("POST", "/test/steps", body, "idempotency-key", "dead").wantError(t, 409, "IDEMPOTENCY_ERROR", "")
	if time.Since(start) < 900*time.Millisecond || h.runs.Load() != 0 {
		t.Fatalf("answered 409 without waiting for the holder, or ran (%d)", h.runs.Load())
	}
	// After the lease it is taken over and runs, once.
	b.clock.Set(sandboxStart.Add(time.Minute))
	if r := b.call("POST", "/test/steps", body, "idempotency-key", "dead"); r.status != 200 || h.runs.Load() != 1 {
		t.Fatalf("takeover: %d %s, runs %d", r.status, r.raw, h.runs.Load())
	}
	if r := b.call("POST", "/test/steps", body, "idempotency-key", "dead"); r.header.Get("idempotent-replayed") != "true" || h.runs.Load() != 1 {
		t.Fatalf("after takeover: %d %s, runs %d", r.status, r.raw, h.runs.Load())
	}
}
