package api

import (
	"sync"

	"golang.org/x/time/rate"
)

// keyLimiter is a token bucket per API key, kept in this process: with N
// engine processes behind a load balancer a key may reach N times the
// configured rate. That is a deliberate trade (no database round trip per
// request) documented in docs/operations.md.
type keyLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
}

func newKeyLimiter(limit rate.Limit, burst int) *keyLimiter {
	return &keyLimiter{limit: limit, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for keyID and reports whether there was one.
func (l *keyLimiter) allow(keyID string) bool {
	l.mu.Lock()
	b, ok := l.buckets[keyID]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[keyID] = b
	}
	l.mu.Unlock()
	return b.Allow()
}
