package billing

import (
	"sync"
	"time"
)

// Clock tells the time. Production code reads "now" only through a Clock:
// SystemClock for live businesses, a SettableClock for sandbox businesses
// (whose time moves only when told) and for tests. Services read it once per
// operation and pass the instant down; pure functions take asOf time.Time.
type Clock interface {
	// Now returns the current instant in UTC.
	Now() time.Time
}

// SystemClock is the machine's wall clock. It is the only caller of
// time.Now in the engine.
type SystemClock struct{}

// Now returns time.Now in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// SettableClock is a Clock that stands still until Set or Advance moves it.
// It is safe for concurrent use.
type SettableClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewSettableClock returns a clock that reads t (converted to UTC).
func NewSettableClock(t time.Time) *SettableClock {
	return &SettableClock{now: t.UTC()}
}

// Now returns the instant last set.
func (c *SettableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, forwards or backwards.
func (c *SettableClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC()
}

// Advance moves the clock by d and returns the new instant.
func (c *SettableClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// FormatTime writes t as the API does: RFC 3339 in UTC with milliseconds,
// "2026-11-21T08:00:00.000Z", the shape Xendit's APIs use.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
