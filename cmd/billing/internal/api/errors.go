package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tagihan/billing"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[billing.ErrorCode]int{
	billing.EINVALID:      http.StatusBadRequest,
	billing.EUNAUTHORIZED: http.StatusUnauthorized,
	billing.EFORBIDDEN:    http.StatusForbidden,
	billing.ENOTFOUND:     http.StatusNotFound,
	billing.ECONFLICT:     http.StatusConflict,
	billing.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	billing.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	billing.ERATELIMIT:    http.StatusTooManyRequests,
	billing.EINTERNAL:     http.StatusInternalServerError,
}

// errorBody is the error envelope of SPEC §3.
type errorBody struct {
	ErrorCode string               `json:"error_code"`
	Message   string               `json:"message"`
	Errors    []billing.FieldError `json:"errors,omitempty"`
}

// errorResponse turns err into a status and envelope. An error that is not a
// *billing.Error is logged with the request id and answered as SERVER_ERROR
// with no detail.
func (s *Server) errorResponse(ctx context.Context, err error) (int, errorBody) {
	e, ok := billing.AsError(err)
	if !ok || e.Code == billing.EINTERNAL {
		ri := infoFrom(ctx)
		if errors.Is(err, context.Canceled) {
			s.log.Info("request canceled by the client", "request_id", ri.id)
		} else if err != nil {
			s.log.Error("internal error", "request_id", ri.id, "business_id", ri.businessID, "error", err.Error())
		}
		return http.StatusInternalServerError, errorBody{
			ErrorCode: billing.ReasonServer,
			Message:   "An internal error occurred. Quote request id " + ri.id + " when reporting it.",
		}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return status, errorBody{ErrorCode: e.Reason, Message: e.Message, Errors: e.Fields}
}

// writeError writes err as the API's error envelope; status, when not
// zero, overrides the status the error's code maps to.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, status int) {
	code, body := s.errorResponse(r.Context(), err)
	if status != 0 {
		code = status
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="billing", charset="UTF-8"`)
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error_code":"SERVER_ERROR","message":"response could not be encoded"}`)
	}
	writeRaw(w, status, "application/json", b)
}

func writeRaw(w http.ResponseWriter, status int, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
