package api

import (
	"context"
	"time"
)

// NextDueForTest returns when the business's next cycle step falls due
// (engine.Service.NextDue), so that API tests can move the sandbox clock
// from one due time to the next as advancing it does.
func (s *Server) NextDueForTest(ctx context.Context, businessID string) (*time.Time, error) {
	return s.engine.NextDue(ctx, businessID)
}
