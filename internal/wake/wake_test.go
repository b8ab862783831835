package wake_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/wake"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestNotifyOnlyOnCommit: a topic sent in a transaction that rolls back
// never arrives; one sent in a transaction that commits arrives after the
// commit, once however often it was sent.
func TestNotifyOnlyOnCommit(t *testing.T) {
	db := pgtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		wake.Listen(ctx, db.Pool, slog.New(slog.DiscardHandler), ready, func(_ context.Context, topic string) { got <- topic })
	}()
	<-ready

	rollback := errors.New("rollback")
	err := db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := wake.Notify(ctx, tx, "notification:ntf-rolled-back"); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	err = db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for range 3 {
			if err := wake.Notify(ctx, tx, "notification:ntf-committed"); err != nil {
				return err
			}
		}
		select {
		case topic := <-got:
			t.Errorf("%q arrived before the commit", topic)
		case <-time.After(100 * time.Millisecond):
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != "notification:ntf-committed" {
			t.Fatalf("got %q", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the committed topic did not arrive")
	}
	select {
	case topic := <-got:
		t.Fatalf("got %q as well", topic)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	<-done
}
