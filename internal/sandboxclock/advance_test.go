package sandboxclock_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/sandboxclock"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeWork is a runner over a list of items due at given times, some of
// which make more work when run (as a charge makes a callback).
type fakeWork struct {
	mu    sync.Mutex
	db    *bun.DB
	name  string
	due   []time.Time
	then  map[time.Time]time.Duration // running the item due at t adds one due at t+d
	log   *[]string
	other *fakeWork
}

func (f *fakeWork) NextDue(ctx context.Context, id string) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.due) == 0 {
		return time.Time{}, false, nil
	}
	sort.Slice(f.due, func(i, j int) bool { return f.due[i].Before(f.due[j]) })
	return f.due[0], true, nil
}

func (f *fakeWork) RunDue(ctx context.Context, id string) (int, error) {
	b, err := business.Get(ctx, f.db, id)
	if err != nil {
		return 0, err
	}
	now := *b.SandboxNow
	f.mu.Lock()
	var run []time.Time
	rest := f.due[:0]
	for _, t := range f.due {
		if !t.After(now) {
			run = append(run, t)
		} else {
			rest = append(rest, t)
		}
	}
	f.due = rest
	f.mu.Unlock()
	for _, t := range run {
		*f.log = append(*f.log, f.name+"@"+billing.FormatTime(now))
		if d, ok := f.then[t]; ok {
			f.other.mu.Lock()
			f.other.due = append(f.other.due, now.Add(d))
			f.other.mu.Unlock()
		}
	}
	return len(run), nil
}

func TestAdvanceRunsWorkInTimeOrder(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	start := time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)
	b, _, err := business.Create(ctx, db.Bun, billing.NewSettableClock(start), business.CreateParams{Name: "Advance", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	at := func(d time.Duration) time.Time { return start.Add(d) }
	charges := &fakeWork{db: db.Bun, name: "charge", log: &log, due: []time.Time{at(2 * time.Hour), at(48 * time.Hour), at(2000 * time.Hour)}}
	callbacks := &fakeWork{db: db.Bun, name: "callback", log: &log}
	charges.then = map[time.Time]time.Duration{at(2 * time.Hour): time.Minute, at(48 * time.Hour): 0}
	charges.other = callbacks
	c := sandboxclock.New(db.Bun, sandboxclock.Named{Name: "charges", Runner: charges}, sandboxclock.Named{Name: "callbacks", Runner: callbacks})

	by := 72 * time.Hour
	now, err := c.Advance(ctx, b.ID, business.ClockAdvance{By: &by})
	if err != nil {
		t.Fatal(err)
	}
	if !now.Equal(at(72 * time.Hour)) {
		t.Fatalf("now %v", now)
	}
	want := []string{
		"charge@2026-02-01T01:00:00.000Z",   // the clock stopped when the charge was due
		"callback@2026-02-01T01:01:00.000Z", // and again when its callback was
		"charge@2026-02-02T23:00:00.000Z",
		"callback@2026-02-02T23:00:00.000Z", // due at once: run at the same instant
	}
	if len(log) != len(want) {
		t.Fatalf("ran %v", log)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("ran %v, want %v", log, want)
		}
	}
	got, _ := business.Get(ctx, db.Bun, b.ID)
	if !got.SandboxNow.Equal(at(72 * time.Hour)) {
		t.Fatalf("clock %v", got.SandboxNow)
	}
	// Work after the target waits for a later advance.
	if len(charges.due) != 1 {
		t.Fatalf("work past the target ran: %v", charges.due)
	}
	// Backwards is refused and changes nothing.
	back := start
	if _, err := c.Advance(ctx, b.ID, business.ClockAdvance{To: &back}); billing.CodeOf(err) != billing.EINVALID {
		t.Fatalf("backwards: %v", err)
	}
}

// heldWork is one item due at a time that another worker holds: RunDue
// never takes it; it is done when done is closed.
type heldWork struct {
	at   time.Time
	done chan struct{}
}

func (h *heldWork) NextDue(ctx context.Context, id string) (time.Time, bool, error) {
	select {
	case <-h.done:
		return time.Time{}, false, nil
	default:
		return h.at, true, nil
	}
}

func (h *heldWork) RunDue(ctx context.Context, id string) (int, error) { return 0, nil }

// TestAdvanceWaitsForHeldWork: work due on the way that another worker
// holds is waited for, so the advance returns when the business is idle;
// work held for longer than HeldWait is left to its holder.
func TestAdvanceWaitsForHeldWork(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	start := time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)
	b, _, err := business.Create(ctx, db.Bun, billing.NewSettableClock(start), business.CreateParams{Name: "Held", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	h := &heldWork{at: start.Add(time.Hour), done: make(chan struct{})}
	c := sandboxclock.New(db.Bun, sandboxclock.Named{Name: "held", Runner: h})
	finished := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(h.done) // its holder finishes it
		close(finished)
	}()
	by := 2 * time.Hour
	if _, err := c.Advance(ctx, b.ID, business.ClockAdvance{By: &by}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("the advance returned while work due on the way was still held")
	}

	never := &heldWork{at: start.Add(3 * time.Hour), done: make(chan struct{})}
	c = sandboxclock.New(db.Bun, sandboxclock.Named{Name: "never", Runner: never})
	c.HeldWait = 60 * time.Millisecond
	now, err := c.Advance(ctx, b.ID, business.ClockAdvance{By: &by})
	if err != nil || !now.Equal(start.Add(4*time.Hour)) {
		t.Fatalf("advance past work held for good: %v %v", now, err)
	}
}
