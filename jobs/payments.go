package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Payment job timings.
const (
	// reconcileInterval is how often the leader looks for payment requests
	// whose check is due. Each is asked about 15 minutes after it was sent
	// (business clock), then at doubling intervals (see payments).
	reconcileInterval = time.Minute
	// reconcileBatch bounds the requests one run asks about before it
	// checks for more.
	reconcileBatch = 100
	// sandboxSweepInterval is how often the leader delivers sandbox
	// callbacks that fell due without a trigger (their trigger was lost, or
	// a business clock reached them).
	sandboxSweepInterval = 30 * time.Second
)

// PaymentReconcileArgs asks the reconciler to settle every payment request
// whose check is due by its business's clock. It runs periodically on the
// leader.
type PaymentReconcileArgs struct{}

// Kind names the job.
func (PaymentReconcileArgs) Kind() string { return "payment_reconcile" }

// PaymentReconcileWorker settles due payment requests by asking their
// providers (payments.Service.ReconcileDue).
type PaymentReconcileWorker struct {
	river.WorkerDefaults[PaymentReconcileArgs]
	deps Deps
}

// Work reconciles due requests in batches until a batch comes back short.
func (w *PaymentReconcileWorker) Work(ctx context.Context, job *river.Job[PaymentReconcileArgs]) error {
	for {
		n, err := w.deps.Payments.ReconcileDue(ctx, reconcileBatch)
		if err != nil {
			return fmt.Errorf("reconcile payment requests: %w", err)
		}
		if n < reconcileBatch {
			return nil
		}
	}
}

// SandboxCallbacksArgs asks for the delivery of the sandbox callbacks due
// by the business's clock; with BusinessID empty, of every business (the
// periodic sweep). The rows are the truth: a lost or repeated job only
// delays or repeats a delivery, which the callback processing treats as a
// duplicate.
type SandboxCallbacksArgs struct {
	BusinessID string `json:"business_id,omitempty"`
}

// Kind names the job.
func (SandboxCallbacksArgs) Kind() string { return "sandbox_callbacks" }

// SandboxCallbacksWorker delivers due sandbox callbacks through the same
// processing as callbacks that arrive over HTTP.
type SandboxCallbacksWorker struct {
	river.WorkerDefaults[SandboxCallbacksArgs]
	deps Deps
}

// Work delivers the due callbacks, in time order per business.
func (w *SandboxCallbacksWorker) Work(ctx context.Context, job *river.Job[SandboxCallbacksArgs]) error {
	if _, err := w.deps.Payments.DeliverDueSandboxCallbacks(ctx, job.Args.BusinessID); err != nil {
		return fmt.Errorf("deliver sandbox callbacks: %w", err)
	}
	return nil
}
