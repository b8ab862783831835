package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// request is what an API handler works with.
type request struct {
	*http.Request
	// business is the authenticated business, read at the start of the request.
	business *business.Business
	// keyID is the id of the API key used ("key-…").
	keyID string
	// db is the request's transaction for POST and PATCH handlers registered
	// with api (committed only when the handler succeeds, together with the
	// idempotency record), and the database otherwise.
	db bun.IDB
	// now is the business's clock, read once for the whole request.
	now time.Time
	// body is the request body (POST and PATCH), at most MaxBodyBytes.
	body []byte
	// idempotencyKey is the request's idempotency-key header, or "".
	idempotencyKey string
}

// handlerFunc handles an authenticated API request and returns the status
// and the value to encode as JSON, or an error.
type handlerFunc func(ctx context.Context, r *request) (int, any, error)

// api wraps an API handler with the conventions of SPEC §3, in this order:
// authentication (401), the per-key rate limit (429), the body limit (413),
// the content type (415), then, for POST and PATCH, one transaction that
// holds the idempotency record and the handler's writes. A handler error
// rolls everything back, so bad input changes nothing.
func (s *Server) api(h handlerFunc) http.Handler {
	return s.authenticated(func(w http.ResponseWriter, r *request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPatch {
			status, v, err := h(r.Context(), r)
			s.respond(w, r.Request, status, v, err)
			return
		}
		status, contentType, body, replayed, err := s.inTransaction(r.Context(), r, h)
		s.respondRaw(w, r.Request, status, contentType, body, replayed, err)
	})
}

// apiOwnTx is api for POST handlers that must commit in steps, such as
// those that call a payment provider between recording what they are about
// to do and recording its result. The handler gets the database, not a
// transaction, and manages its own. The idempotency key is claimed before
// the handler runs and completed after (see claimLeasedKey); because a
// handler cut short may have committed its first steps, it must make itself
// resumable: find what an earlier run with r.idempotencyKey left, and carry on.
func (s *Server) apiOwnTx(h handlerFunc) http.Handler {
	return s.authenticated(func(w http.ResponseWriter, r *request) {
		status, contentType, body, replayed, err := s.withLeasedKey(r.Context(), r, h)
		s.respondRaw(w, r.Request, status, contentType, body, replayed, err)
	})
}

// authenticated runs the checks every API endpoint shares — authentication
// (401), the per-key rate limit (429), and for POST and PATCH the body limit
// (413), content type (415) and idempotency-key header (400) — and calls
// next with the request.
func (s *Server) authenticated(next func(http.ResponseWriter, *request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		ctx := hr.Context()
		key := apiKeyFrom(hr)
		if key == "" {
			s.writeError(w, hr, business.ErrInvalidAPIKey, 0)
			return
		}
		biz, keyID, err := business.Authenticate(ctx, s.db.Bun, key)
		if err != nil {
			s.writeError(w, hr, err, 0)
			return
		}
		infoFrom(ctx).businessID = biz.ID
		if !s.limiter.allow(keyID) {
			w.Header().Set("Retry-After", "1")
			s.writeError(w, hr, &billing.Error{Code: billing.ERATELIMIT, Reason: billing.ReasonRateLimit,
				Message: "too many requests for this API key; slow down and retry after a second"}, 0)
			return
		}
		r := &request{Request: hr, business: biz, keyID: keyID, db: s.db.Bun, now: biz.Clock().Now()}
		if hr.Method == http.MethodPost || hr.Method == http.MethodPatch {
			if r.body, err = readBody(w, hr); err != nil {
				s.writeError(w, hr, err, 0)
				return
			}
			if r.idempotencyKey, err = idempotencyKeyFrom(hr); err != nil {
				s.writeError(w, hr, err, 0)
				return
			}
		}
		next(w, r)
	})
}

func (s *Server) respondRaw(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte, replayed bool, err error) {
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	if replayed {
		w.Header().Set("idempotent-replayed", "true")
	}
	writeRaw(w, status, contentType, body)
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.writeError(w, r, err, 0)
		return
	}
	writeJSON(w, status, v)
}

// inTransaction runs h in a transaction with the idempotency record (when
// the request has a key) and commits both or neither. It returns the
// response to send, replayed when the key was already used for the same
// request.
func (s *Server) inTransaction(ctx context.Context, r *request, h handlerFunc) (status int, contentType string, body []byte, replayed bool, err error) {
	idemKey := r.idempotencyKey
	tx, err := s.db.Bun.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		return 0, "", nil, false, err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	r.db = tx
	if idemKey != "" {
		rec, err := claimIdempotencyKey(ctx, tx, r, idemKey, s.clock.Now())
		if err != nil {
			return 0, "", nil, false, err
		}
		if rec != nil {
			return rec.StatusCode, rec.ContentType, rec.ResponseBody, true, nil
		}
	}
	status, v, err := h(ctx, r)
	if err != nil {
		return 0, "", nil, false, err
	}
	body, err = json.Marshal(v)
	if err != nil {
		return 0, "", nil, false, err
	}
	if idemKey != "" {
		if err := storeIdempotentResponse(ctx, tx, r.business.ID, idemKey, status, "application/json", body); err != nil {
			return 0, "", nil, false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, "", nil, false, err
	}
	return status, "application/json", body, false, nil
}

// apiKeyFrom reads the key from HTTP Basic (user name, empty password) or a
// Bearer token.
func apiKeyFrom(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		return user
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

var errTooLarge = &billing.Error{Code: billing.ETOOLARGE, Reason: billing.ReasonTooLarge,
	Message: "the request body is larger than 10 MiB"}

// readBody reads a POST or PATCH body of at most MaxBodyBytes, which must
// be JSON when it is not empty.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, billing.Invalid("body", "could not be read")
	}
	if len(body) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return nil, &billing.Error{Code: billing.EUNSUPPORTED, Reason: billing.ReasonUnsupportedContent,
				Message: "send the body as JSON with the header Content-Type: application/json"}
		}
	}
	return body, nil
}
