// Package sandboxclock moves a sandbox business's clock forward and runs,
// in time order, every piece of the business's work that falls due on the
// way — amount fixing, charges, provider callbacks, reconciliation, retries,
// webhook deliveries, notifications — as if that time had passed (SPEC
// §6.7). It returns when the business is idle at the new time.
package sandboxclock

import (
	"context"
	"fmt"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// Runner is one kind of a business's timed work.
type Runner interface {
	// NextDue returns when the business's earliest pending work is due, by
	// its clock; ok is false when there is none.
	NextDue(ctx context.Context, businessID string) (t time.Time, ok bool, err error)
	// RunDue does the business's work due by its clock now and returns how
	// many items it handled.
	RunDue(ctx context.Context, businessID string) (int, error)
}

// Named is a Runner with a name for errors.
type Named struct {
	Name string
	Runner
}

// Clock advances sandbox clocks.
type Clock struct {
	db      *bun.DB
	runners []Named
	// HeldWait is how long one stop waits, in all, for due work that
	// another worker holds (see settle). New sets 30 seconds: more than a
	// webhook's 10-second timeout.
	HeldWait time.Duration
}

// New returns a Clock running runners, in this order, at every instant the
// clock stops at.
func New(db *bun.DB, runners ...Named) *Clock {
	return &Clock{db: db, runners: runners, HeldWait: 30 * time.Second}
}

// Limits that keep a runaway business from holding a request for ever.
const (
	maxStops  = 100_000 // instants the clock stops at in one advance
	maxRounds = 1_000   // passes over the runners at one instant
)

// Advance moves the sandbox clock of business id as a says (see
// business.ResolveAdvance for the rules and errors), stopping at every
// instant some work falls due, in time order, and running all the
// business's due work there until none is left. One advance of a business
// runs at a time; a second waits for the first. It returns the new time.
func (c *Clock) Advance(ctx context.Context, id string, a business.ClockAdvance) (time.Time, error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtextextended(?, 0))", "sandbox-clock/"+id); err != nil {
		return time.Time{}, fmt.Errorf("lock the sandbox clock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended(?, 0))", "sandbox-clock/"+id) //nolint:errcheck

	b, err := business.Get(ctx, c.db, id)
	if err != nil {
		return time.Time{}, err
	}
	target, err := business.ResolveAdvance(b, a)
	if err != nil {
		return time.Time{}, err
	}
	now := *b.SandboxNow
	for stop := 0; ; stop++ {
		if err := c.settle(ctx, id, now); err != nil {
			return now, err
		}
		next, ok, err := c.next(ctx, id, now)
		if err != nil {
			return now, err
		}
		if !ok || next.After(target) {
			break
		}
		if stop == maxStops {
			return now, fmt.Errorf("advance sandbox clock: more than %d stops before %s", maxStops, target)
		}
		if err := business.SetSandboxNow(ctx, c.db, id, next); err != nil {
			return now, err
		}
		now = next
	}
	if err := business.SetSandboxNow(ctx, c.db, id, target); err != nil {
		return now, err
	}
	return target, c.settle(ctx, id, target)
}

// settle runs every runner until none has anything left to do at the
// business's current time, now. Work due by now that a pass could not take
// is held by another worker (a River job of this or another process that
// picked it up first); settle waits for it to be done, polling, so that the
// advance returns only when the business is idle — for at most
// Clock.HeldWait in all, after which it goes on and leaves the work to its
// holder.
func (c *Clock) settle(ctx context.Context, id string, now time.Time) error {
	waited := time.Duration(0)
	for round := 0; round < maxRounds; {
		done := 0
		for _, r := range c.runners {
			n, err := r.RunDue(ctx, id)
			if err != nil {
				return fmt.Errorf("advance sandbox clock: %s: %w", r.Name, err)
			}
			done += n
		}
		if done > 0 {
			round++
			continue
		}
		held, err := c.dueBy(ctx, id, now)
		if err != nil || !held || waited >= c.HeldWait {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(heldPoll):
		}
		waited += heldPoll
	}
	return fmt.Errorf("advance sandbox clock: work still due after %d rounds", maxRounds)
}

// heldPoll is how often settle looks again at work another worker holds.
const heldPoll = 20 * time.Millisecond

// dueBy reports whether some runner has work due at or before now.
func (c *Clock) dueBy(ctx context.Context, id string, now time.Time) (bool, error) {
	for _, r := range c.runners {
		t, ok, err := r.NextDue(ctx, id)
		if err != nil {
			return false, fmt.Errorf("advance sandbox clock: %s: %w", r.Name, err)
		}
		if ok && !t.After(now) {
			return true, nil
		}
	}
	return false, nil
}

// next returns the earliest instant after now at which a runner has work.
// Work due at or before now that settle left (its holder outlasted
// HeldWait) is not a reason to stop: it runs at the next stop.
func (c *Clock) next(ctx context.Context, id string, now time.Time) (time.Time, bool, error) {
	var best time.Time
	found := false
	for _, r := range c.runners {
		t, ok, err := r.NextDue(ctx, id)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("advance sandbox clock: %s: %w", r.Name, err)
		}
		if ok && t.After(now) && (!found || t.Before(best)) {
			best, found = t, true
		}
	}
	return best, found, nil
}
