package jobs

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
)

// NotificationSendArgs asks for one queued notification to be sent when it
// is due (notify.Service.Send). The row is the truth: a job for a
// notification already sent, not yet due, or being sent elsewhere does
// nothing.
type NotificationSendArgs struct {
	NotificationID string `json:"notification_id"`
}

// Kind names the job.
func (NotificationSendArgs) Kind() string { return "notification_send" }

// InsertOpts puts the job on the notifications queue, unique per
// notification.
func (NotificationSendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotifications, UniqueOpts: uniqueQueued}
}

// NotificationSendWorker sends notifications.
type NotificationSendWorker struct {
	river.WorkerDefaults[NotificationSendArgs]
	deps Deps
}

// Work sends the notification. A failed send is recorded on the row with
// its next try, which the sweep enqueues when it is due; only a database
// error fails the job (and River retries it).
func (w *NotificationSendWorker) Work(ctx context.Context, job *river.Job[NotificationSendArgs]) error {
	if err := w.deps.Notify.Send(ctx, job.Args.NotificationID); err != nil {
		return fmt.Errorf("send notification %s: %w", job.Args.NotificationID, err)
	}
	return nil
}
