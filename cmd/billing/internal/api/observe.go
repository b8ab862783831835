package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/tagihan/billing"
)

// requestInfo is what the request's log line needs from deeper layers.
type requestInfo struct {
	id         string
	businessID string
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// observe gives each request an id (the request-id response header),
// recovers panics as SERVER_ERROR, and logs and measures every request. The
// log line carries the method, path, route, status, duration, request id and
// business id, and never a header or a body.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.clock.Now()
		ri := &requestInfo{id: newRequestID()}
		w.Header().Set("request-id", ri.id)
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p == http.ErrAbortHandler {
				// The handler cut a streamed response short on purpose;
				// net/http then aborts the connection, so that the client
				// sees it incomplete. It has logged why.
				defer panic(p)
			} else if p != nil {
				s.log.Error("panic", "request_id", ri.id, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, &billing.Error{Code: billing.EINTERNAL}, 0)
				}
			}
			elapsed := s.clock.Now().Sub(start)
			route := r.Pattern
			if route == "" || route == "/" {
				route = "unmatched"
			}
			s.metrics.observe(r.Method, route, rec.status, elapsed)
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", ri.id),
				slog.String("business_id", ri.businessID),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", route),
				slog.Int("status", rec.status),
				slog.Int("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(elapsed)/float64(time.Millisecond)),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}
