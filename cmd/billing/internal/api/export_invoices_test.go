package api

import (
	"context"
	"time"
)

// RunDueForTest runs everything due for a business at now, as the engine's
// jobs (and the sandbox clock's advance) do, so that API tests can have
// amounts fixed.
func (s *Server) RunDueForTest(ctx context.Context, businessID string, now time.Time) (int, error) {
	return s.engine.RunDueBusiness(ctx, businessID, now)
}
