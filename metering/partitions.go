package metering

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Partitions creates the monthly partitions of usage_events. It remembers
// the months it knows exist, so that ingestion asks the database only for a
// month it has not seen. One Partitions serves one database.
type Partitions struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	known map[time.Time]bool // first instant of each month known to exist
}

// NewPartitions returns a Partitions for the database behind pool.
func NewPartitions(pool *pgxpool.Pool) *Partitions {
	return &Partitions{pool: pool, known: map[time.Time]bool{}}
}

// monthOf returns the first instant (UTC) of t's month.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName returns the name of the partition holding usage timestamp t,
// such as usage_events_2026_11.
func PartitionName(t time.Time) string {
	m := monthOf(t)
	return fmt.Sprintf("usage_events_%04d_%02d", m.Year(), int(m.Month()))
}

// Ensure makes sure a partition exists for the month of each of times.
func (p *Partitions) Ensure(ctx context.Context, times ...time.Time) error {
	var missing []time.Time
	p.mu.Lock()
	for _, t := range times {
		m := monthOf(t)
		if !p.known[m] {
			missing = append(missing, m)
			p.known[m] = true // optimistic; undone below on failure
		}
	}
	p.mu.Unlock()
	for i, m := range missing {
		if err := p.create(ctx, m); err != nil {
			p.mu.Lock()
			for _, undo := range missing[i:] {
				delete(p.known, undo)
			}
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// EnsureAhead makes sure the partitions of the month of now and the next
// months ahead exist. The partition job calls it daily.
func (p *Partitions) EnsureAhead(ctx context.Context, now time.Time, ahead int) error {
	times := make([]time.Time, 0, ahead+1)
	for i := 0; i <= ahead; i++ {
		times = append(times, monthOf(now).AddDate(0, i, 0))
	}
	return p.Ensure(ctx, times...)
}

// Forget drops what p knows, so that the next Ensure asks the database
// again (after an insert found a partition missing).
func (p *Partitions) Forget() {
	p.mu.Lock()
	p.known = map[time.Time]bool{}
	p.mu.Unlock()
}

// create creates the partition of month m unless it exists. An advisory
// lock keeps concurrent creators (other requests, other processes) apart.
func (p *Partitions) create(ctx context.Context, m time.Time) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(0x75736167655f7074)); err != nil {
		return err
	}
	name := PartitionName(m)
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		sql := fmt.Sprintf(`CREATE TABLE %s PARTITION OF usage_events FOR VALUES FROM ('%s') TO ('%s')`,
			name, m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339))
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	return tx.Commit(ctx)
}
