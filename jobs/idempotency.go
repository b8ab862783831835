package jobs

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
)

// IdempotencyCleanupArgs asks for the deletion of idempotency records whose
// 24 hours are over. It runs periodically on the leader.
type IdempotencyCleanupArgs struct{}

// Kind names the job.
func (IdempotencyCleanupArgs) Kind() string { return "idempotency_cleanup" }

// cleanupBatch bounds the rows deleted per statement, so that a large
// backlog never holds locks for long.
const cleanupBatch = 5000

// IdempotencyCleanupWorker deletes expired idempotency records.
type IdempotencyCleanupWorker struct {
	river.WorkerDefaults[IdempotencyCleanupArgs]
	deps Deps
}

// Work deletes, in batches, every record expired at the clock's reading.
func (w *IdempotencyCleanupWorker) Work(ctx context.Context, job *river.Job[IdempotencyCleanupArgs]) error {
	now := w.deps.Clock.Now()
	for {
		res, err := w.deps.DB.NewRaw(`DELETE FROM idempotency_keys WHERE ctid IN (
			SELECT ctid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)`, now, cleanupBatch).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete expired idempotency records: %w", err)
		}
		if n, _ := res.RowsAffected(); n < cleanupBatch {
			return nil
		}
	}
}
