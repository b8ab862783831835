package api

import (
	"context"
	"time"

	"github.com/tagihan/billing/internal/payments"
	"github.com/uptrace/bun"
)

// OwnTxHandler is the test form of a handler registered with apiOwnTx.
type OwnTxHandler func(ctx context.Context, db bun.IDB, businessID, idempotencyKey string, body []byte) (int, any, error)

// HandleOwnTxForTest registers h at pattern ("POST /test/…") with apiOwnTx,
// so that tests can drive a handler that commits in steps.
func (s *Server) HandleOwnTxForTest(pattern string, h OwnTxHandler) {
	s.mux.Handle(pattern, s.apiOwnTx(func(ctx context.Context, r *request) (int, any, error) {
		return h(ctx, r.db, r.business.ID, r.idempotencyKey, r.body)
	}))
}

// SetIdempotencyWaitForTest shortens how long a request waits for another
// holding its key, and returns a function that restores it.
func SetIdempotencyWaitForTest(d time.Duration) func() {
	old := idempotencyWait
	idempotencyWait = d
	return func() { idempotencyWait = old }
}

// PaymentsForTest returns the server's payment service, so that tests can
// do what the engine's jobs do (deliver sandbox callbacks, reconcile).
func (s *Server) PaymentsForTest() *payments.Service { return s.payments }
