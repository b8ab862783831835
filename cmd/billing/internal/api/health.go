package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tagihan/billing"
)

// healthz answers 200 while the process runs.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the database is reachable and its migrations are
// current, else 503 with the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		// The endpoint needs no key, so the reason shown is a safe sentence;
		// the detail (hosts, users) goes to the log only.
		s.log.Warn("not ready", "error", err.Error())
		reason := "the database is unreachable; see the engine's log"
		if e, ok := billing.AsError(err); ok {
			reason = e.Message
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
