package business_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var start = time.Date(2028, 2, 28, 23, 0, 0, 0, time.UTC)

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	clock := billing.NewSettableClock(start)

	sb, key, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: " Demo Utility ", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "sk_test_") || len(key) != len("sk_test_")+43 {
		t.Fatalf("sandbox key %q", key)
	}
	if sb.Name != "Demo Utility" || !sb.Sandbox() || !sb.Clock().Now().Equal(start) {
		t.Fatalf("business %+v", sb)
	}
	live, liveKey, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Live Co", Mode: business.ModeLive})
	if err != nil || !strings.HasPrefix(liveKey, "sk_live_") || live.SandboxNow != nil {
		t.Fatalf("live business %+v %q %v", live, liveKey, err)
	}
	if _, ok := live.Clock().(billing.SystemClock); !ok {
		t.Fatal("a live business does not use the system clock")
	}

	got, keyID, err := business.Authenticate(ctx, db.Bun, key)
	if err != nil || got.ID != sb.ID || !billing.ValidID(billing.PrefixAPIKey, keyID) {
		t.Fatalf("Authenticate = %+v %q %v", got, keyID, err)
	}
	// Only the hash is stored.
	var stored int
	if err := db.Bun.NewRaw("SELECT count(*) FROM api_keys WHERE key_hint LIKE ? AND encode(key_hash, 'escape') LIKE ?", "sk_test_%", "%"+key[10:]+"%").Scan(ctx, &stored); err != nil || stored != 0 {
		t.Fatalf("key found in storage: %d, %v", stored, err)
	}
	for _, bad := range []string{"", key + "x", key[:len(key)-1], strings.Replace(key, "sk_test_", "sk_live_", 1), "Bearer " + key, strings.Repeat("sk_test_", 20)} {
		if _, _, err := business.Authenticate(ctx, db.Bun, bad); err != business.ErrInvalidAPIKey {
			t.Errorf("Authenticate(%q) err = %v", bad, err)
		}
	}
	if _, err := db.Bun.NewUpdate().Table("api_keys").Set("revoked_at = ?", start).Where("id = ?", keyID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := business.Authenticate(ctx, db.Bun, key); err != business.ErrInvalidAPIKey {
		t.Fatalf("revoked key accepted: %v", err)
	}

	for _, p := range []business.CreateParams{{Name: "", Mode: business.ModeLive}, {Name: "x", Mode: "TEST"}, {Name: strings.Repeat("n", 256), Mode: business.ModeLive}} {
		if _, _, err := business.Create(ctx, db.Bun, clock, p); billing.CodeOf(err) != billing.EINVALID {
			t.Errorf("Create(%+v) err = %v", p, err)
		}
	}
	if m, err := business.ParseMode("Sandbox"); err != nil || m != business.ModeSandbox {
		t.Fatal("ParseMode")
	}
}

func TestAdvanceClock(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	clock := billing.NewSettableClock(start)
	sb, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Clock", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	advance := func(a business.ClockAdvance) (time.Time, error) {
		var now time.Time
		err := db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			now, err = business.AdvanceClock(ctx, tx, sb.ID, a)
			return err
		})
		return now, err
	}
	hour := time.Hour
	// Across the leap day.
	now, err := advance(business.ClockAdvance{By: &hour})
	if want := time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC); err != nil || !now.Equal(want) {
		t.Fatalf("by 1h = %v, %v; want %v", now, err, want)
	}
	to := time.Date(2028, 3, 1, 7, 0, 0, 0, time.FixedZone("WIB", 7*3600)) // 00:00 UTC
	if now, err = advance(business.ClockAdvance{To: &to}); err != nil || !now.Equal(to) {
		t.Fatalf("to = %v, %v", now, err)
	}
	if now, err = advance(business.ClockAdvance{To: &to}); err != nil || !now.Equal(to) {
		t.Fatalf("to the same instant = %v, %v", now, err)
	}
	earlier := to.Add(-time.Nanosecond * 1000)
	neg := -time.Second
	tooFar := 11 * 366 * 24 * time.Hour
	for name, a := range map[string]business.ClockAdvance{
		"to":  {To: &earlier},
		"by":  {By: &neg},
		"by ": {By: &tooFar},
		"to ": {},
	} {
		_, err := advance(a)
		e, ok := billing.AsError(err)
		if !ok || e.Code != billing.EINVALID || e.Fields[0].Field != strings.TrimSpace(name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	got, _ := business.Get(ctx, db.Bun, sb.ID)
	if !got.SandboxNow.Equal(to) {
		t.Fatalf("rejected advances moved the clock to %v", got.SandboxNow)
	}

	// Concurrent advances by one day each all apply.
	day := 24 * time.Hour
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := advance(business.ClockAdvance{By: &day}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ = business.Get(ctx, db.Bun, sb.ID)
	if want := to.Add(5 * day); !got.SandboxNow.Equal(want) {
		t.Fatalf("after 5 concurrent advances: %v, want %v", got.SandboxNow, want)
	}

	live, _, _ := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: "Live", Mode: business.ModeLive})
	err = db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := business.AdvanceClock(ctx, tx, live.ID, business.ClockAdvance{By: &day})
		return err
	})
	if err != business.ErrNotSandbox {
		t.Fatalf("live business: %v", err)
	}
}
