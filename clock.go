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
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format("2006-01-02T15:04:05.000Z07:00")
	}
	// Written digit by digit: the engine writes several times into every
	// document it stores, and time.Format's layout walk was a few percent
	// of the engine's CPU when charging.
	hour, minute, second := t.Clock()
	var b [24]byte
	digits(b[0:4], year)
	b[4] = '-'
	digits(b[5:7], int(month))
	b[7] = '-'
	digits(b[8:10], day)
	b[10] = 'T'
	digits(b[11:13], hour)
	b[13] = ':'
	digits(b[14:16], minute)
	b[16] = ':'
	digits(b[17:19], second)
	b[19] = '.'
	digits(b[20:23], t.Nanosecond()/int(time.Millisecond))
	b[23] = 'Z'
	return string(b[:])
}

// digits writes n, zero-padded, into all of b.
func digits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}
