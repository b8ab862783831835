package payments_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// settledCall is one call of SettledFunc.
type settledCall struct {
	id, status, token string
}

// TestLinkAndSettled: Link saves a payment method without charging (a Pay
// and Save of amount 0, idempotent by its key), and SettledFunc runs once
// per final state, in the transaction that records it, with the token a
// success saved; its error rolls the outcome back.
func TestLinkAndSettled(t *testing.T) {
	var mu sync.Mutex
	var calls []settledCall
	var failNext bool
	w := setup(t, func(w *world) {
		w.config = func(cfg *payments.Config) {
			cfg.SettledFunc = func(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
				mu.Lock()
				defer mu.Unlock()
				if failNext {
					failNext = false
					return errors.New("the plan could not activate")
				}
				c := settledCall{id: pr.ID, status: pr.Status}
				if tok != nil {
					c.token = tok.ID
				}
				// The token and the request's new state are visible in tx.
				if tok != nil {
					var n int
					if err := tx.NewRaw("SELECT count(*) FROM payment_tokens WHERE id = ? AND status = 'ACTIVE'", tok.ID).Scan(ctx, &n); err != nil || n != 1 {
						return errors.New("the token is not in the transaction")
					}
				}
				calls = append(calls, c)
				return nil
			}
		}
	})
	link := func(key, channel string) *payments.PaymentRequest {
		t.Helper()
		pr, err := w.svc.Link(w.ctx, w.biz, w.now(w.biz), payments.LinkParams{CustomerID: w.cust.ID, Country: "ID", ChannelCode: channel,
			ReferenceID: "plan-1", SuccessReturnURL: "https://u.example/ok", FailureReturnURL: "https://u.example/no", IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	pr := link("repl-1/auth/1", "OVO")
	if pr.Status != payments.StatusRequiresAction || pr.Type != payments.TypePayAndSave || !pr.RequestAmount.IsZero() || pr.Currency != "IDR" {
		t.Fatalf("link: %+v", pr)
	}
	if again := link("repl-1/auth/1", "DANA"); again.ID != pr.ID || again.ChannelCode != "OVO" {
		t.Fatalf("the same key made another request: %+v", again)
	}
	if _, err := w.svc.Link(w.ctx, w.biz, w.now(w.biz), payments.LinkParams{CustomerID: w.cust.ID, Country: "ID", ChannelCode: "GCASH",
		ReferenceID: "plan-1", SuccessReturnURL: "https://u.example/ok", FailureReturnURL: "ftp://x", IdempotencyKey: "k2"}); err == nil {
		t.Fatal("a bad channel and URL were accepted")
	} else {
		wantError(t, err, "API_VALIDATION_ERROR", "channel_code")
		wantError(t, err, "API_VALIDATION_ERROR", "failure_return_url")
	}

	// A failed linking settles without a token.
	w.simulate(w.biz, pr.ID, 21110)
	w.deliver(w.biz)
	wantStatus(t, w.get(w.biz, pr.ID), "FAILED", "INSUFFICIENT_BALANCE")
	// A successful one, whose SettledFunc fails once: the outcome is rolled
	// back (no token, the request still waiting) and recorded on the retry.
	second := link("repl-1/auth/2", "DANA")
	w.simulate(w.biz, second.ID, 0)
	failNext = true
	if _, err := w.svc.DeliverDueSandboxCallbacks(w.ctx, w.biz.ID); err == nil {
		t.Fatal("the SettledFunc error was not returned")
	}
	if got := w.get(w.biz, second.ID); got.Status == payments.StatusSucceeded || got.PaymentTokenID != nil ||
		w.count("SELECT count(*) FROM payment_tokens WHERE consent_payment_request_id = ?", second.ID) != 0 {
		t.Fatalf("rolled back outcome is visible: %+v", got)
	}
	w.deliver(w.biz)
	done := w.get(w.biz, second.ID)
	wantStatus(t, done, "SUCCEEDED", "")
	if w.count("SELECT count(*) FROM payments WHERE payment_request_id = ? AND amount = 0 AND status = 'SUCCEEDED'", second.ID) != 1 {
		t.Fatal("no payment of 0 recorded")
	}
	want := []settledCall{{pr.ID, "FAILED", ""}, {second.ID, "SUCCEEDED", *done.PaymentTokenID}}
	if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("SettledFunc calls %+v, want %+v", calls, want)
	}
	// A charge settles too, without a token; its callback, repeating the
	// answer, changes nothing and calls nothing again.
	charge, err := w.svc.Charge(w.ctx, w.biz, w.now(w.biz), payments.ChargeParams{PaymentTokenID: *done.PaymentTokenID,
		Amount: billing.Money{Amount: decimal.NewFromInt(5000), Currency: "IDR"}, ReferenceID: "c", IdempotencyKey: "recy-1/1/1"})
	if err != nil {
		t.Fatal(err)
	}
	w.deliver(w.biz)
	if want := (settledCall{charge.ID, "SUCCEEDED", ""}); len(calls) != 3 || calls[2] != want {
		t.Fatalf("SettledFunc calls %+v, want a third %+v", calls, want)
	}
}
