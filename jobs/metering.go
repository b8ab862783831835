package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/metering"
)

// usagePartitionsInterval is how often the usage partitions ahead are
// checked; once a day keeps two months ahead ready with room to spare.
const usagePartitionsInterval = 24 * time.Hour

// usagePartitionsAhead is how many months after the current one have their
// usage_events partition ready.
const usagePartitionsAhead = 2

// UsagePartitionsArgs asks for the usage_events partitions of this month
// and the next two to exist. It runs daily on the leader, and at start.
type UsagePartitionsArgs struct{}

// Kind names the job.
func (UsagePartitionsArgs) Kind() string { return "usage_partitions" }

// UsagePartitionsWorker creates the usage partitions ahead. Creating one is
// idempotent, so a repeated or late job does no harm; ingestion also creates
// any partition it finds missing.
type UsagePartitionsWorker struct {
	river.WorkerDefaults[UsagePartitionsArgs]
	partitions *metering.Partitions
	clock      billing.Clock
}

// Work makes sure the partitions exist.
func (w *UsagePartitionsWorker) Work(ctx context.Context, job *river.Job[UsagePartitionsArgs]) error {
	if err := w.partitions.EnsureAhead(ctx, w.clock.Now(), usagePartitionsAhead); err != nil {
		return fmt.Errorf("usage partitions ahead: %w", err)
	}
	return nil
}
