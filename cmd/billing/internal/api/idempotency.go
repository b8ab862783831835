package api

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// IdempotencyTTL is how long a stored response is replayed (real time, not
// a sandbox clock): Xendit keeps keys for 24 hours.
const IdempotencyTTL = 24 * time.Hour

// idempotencyLockTimeout bounds how long a request waits for another request
// with the same key to finish before answering 409.
const idempotencyLockTimeout = "10s"

// idempotencyRecord is a row of idempotency_keys.
type idempotencyRecord struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	BusinessID   string     `bun:"business_id,pk"`
	Key          string     `bun:"key,pk"`
	RequestHash  []byte     `bun:"request_hash"`
	Method       string     `bun:"method"`
	Path         string     `bun:"path"`
	StatusCode   int        `bun:"status_code"`
	ContentType  string     `bun:"content_type"`
	ResponseBody []byte     `bun:"response_body"`
	Created      time.Time  `bun:"created"`
	ExpiresAt    time.Time  `bun:"expires_at"`
	LockedUntil  *time.Time `bun:"locked_until"`
}

// idempotencyLease is how long a handler that commits in steps owns its
// key; a request that finds a lease older than this (its process died)
// takes the key over and runs again.
const idempotencyLease = 2 * time.Minute

// idempotencyWait bounds how long a request waits for another request with
// the same key to finish, before answering 409. A variable only so that
// tests can shorten it.
var idempotencyWait = 10 * time.Second

// idempotencyKeyFrom reads the idempotency-key header: absent, or 1–100
// printable characters.
func idempotencyKeyFrom(r *http.Request) (string, error) {
	vals := r.Header.Values("idempotency-key")
	if len(vals) == 0 {
		return "", nil
	}
	k := vals[0]
	if len(vals) > 1 || k == "" || utf8.RuneCountInString(k) > 100 || !utf8.ValidString(k) {
		return "", billing.Invalid("idempotency-key", "header must be one value of 1 to 100 characters")
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return "", billing.Invalid("idempotency-key", "header must not contain control characters")
		}
	}
	return k, nil
}

func requestHash(r *request) []byte {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.RequestURI() + "\n"))
	h.Write(r.body)
	return h.Sum(nil)
}

var errKeyInUse = &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonIdempotency,
	Message: "a request with this idempotency key is still in progress; retry it later"}

var errKeyReused = &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonIdempotency,
	Message: "idempotency key has been used before with a different request"}

// claimIdempotencyKey inserts the key's record in tx. It returns nil when
// this request owns the key and must run, or the stored record to replay.
// A concurrent request with the same key holds the row lock until it commits
// or rolls back; this one waits for it (up to idempotencyLockTimeout) and
// then replays its response, or runs itself if the other rolled back. A
// record older than IdempotencyTTL is taken over as if absent.
func claimIdempotencyKey(ctx context.Context, tx bun.Tx, r *request, key string, now time.Time) (*idempotencyRecord, error) {
	if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '"+idempotencyLockTimeout+"'"); err != nil {
		return nil, err
	}
	hash := requestHash(r)
	rec := &idempotencyRecord{
		BusinessID:   r.business.ID,
		Key:          key,
		RequestHash:  hash,
		Method:       r.Method,
		Path:         r.URL.Path,
		ContentType:  "",
		ResponseBody: []byte{},
		Created:      now,
		ExpiresAt:    now.Add(IdempotencyTTL),
	}
	res, err := tx.NewInsert().Model(rec).
		On("CONFLICT (business_id, key) DO UPDATE").
		Set("request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path, " +
			"status_code = 0, content_type = '', response_body = ''::bytea, created = EXCLUDED.created, expires_at = EXCLUDED.expires_at").
		Where("idempotency_record.expires_at <= EXCLUDED.created").
		Exec(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return nil, errKeyInUse
	}
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil, nil
	}
	stored := new(idempotencyRecord)
	if err := tx.NewSelect().Model(stored).Where("business_id = ?", r.business.ID).Where("key = ?", key).Scan(ctx); err != nil {
		return nil, err
	}
	if string(stored.RequestHash) != string(hash) {
		return nil, errKeyReused
	}
	if stored.StatusCode == 0 {
		return nil, errKeyInUse
	}
	return stored, nil
}

// withLeasedKey runs a handler that manages its own transactions (see
// apiOwnTx). With an idempotency key, it first claims the key in a
// transaction of its own, with a lease; runs the handler; then stores the
// response, or, when the handler fails, deletes the claim so that a retry
// runs again. A request that finds the key held waits for the holder (up to
// idempotencyWait) and replays its response.
func (s *Server) withLeasedKey(ctx context.Context, r *request, h handlerFunc) (status int, contentType string, body []byte, replayed bool, err error) {
	key := r.idempotencyKey
	if key != "" {
		rec, err := s.claimLeasedKey(ctx, r)
		if err != nil {
			return 0, "", nil, false, err
		}
		if rec != nil {
			return rec.StatusCode, rec.ContentType, rec.ResponseBody, true, nil
		}
	}
	status, v, err := h(ctx, r)
	if err == nil {
		body, err = json.Marshal(v)
	}
	if key == "" {
		return status, "application/json", body, false, err
	}
	// The outcome is recorded even when the client has gone away.
	done := context.WithoutCancel(ctx)
	if err != nil {
		if _, derr := s.db.Bun.NewDelete().Model((*idempotencyRecord)(nil)).
			Where("business_id = ?", r.business.ID).Where("key = ?", key).Where("status_code = 0").Exec(done); derr != nil {
			s.log.Error("release idempotency key", "request_id", infoFrom(ctx).id, "error", derr.Error())
		}
		return 0, "", nil, false, err
	}
	if err := storeIdempotentResponse(done, s.db.Bun, r.business.ID, key, status, "application/json", body); err != nil {
		return 0, "", nil, false, err
	}
	return status, "application/json", body, false, nil
}

// claimLeasedKey claims the key with a lease committed at once. It returns
// nil when this request owns the key, or the completed record to replay.
func (s *Server) claimLeasedKey(ctx context.Context, r *request) (*idempotencyRecord, error) {
	hash := requestHash(r)
	const poll = 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		now := s.clock.Now()
		lease := now.Add(idempotencyLease)
		rec := &idempotencyRecord{
			BusinessID: r.business.ID, Key: r.idempotencyKey, RequestHash: hash, Method: r.Method, Path: r.URL.Path,
			ResponseBody: []byte{}, Created: now, ExpiresAt: now.Add(IdempotencyTTL), LockedUntil: &lease,
		}
		res, err := s.db.Bun.NewInsert().Model(rec).
			On("CONFLICT (business_id, key) DO UPDATE").
			Set("request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path, " +
				"status_code = 0, content_type = '', response_body = ''::bytea, created = EXCLUDED.created, " +
				"expires_at = EXCLUDED.expires_at, locked_until = EXCLUDED.locked_until").
			Where("idempotency_record.expires_at <= EXCLUDED.created OR (idempotency_record.status_code = 0 " +
				"AND idempotency_record.locked_until <= EXCLUDED.created AND idempotency_record.request_hash = EXCLUDED.request_hash)").
			Exec(ctx)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil, nil
		}
		stored := new(idempotencyRecord)
		err = s.db.Bun.NewSelect().Model(stored).Where("business_id = ?", r.business.ID).Where("key = ?", r.idempotencyKey).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) { // released meanwhile: claim again
			continue
		}
		if err != nil {
			return nil, err
		}
		if string(stored.RequestHash) != string(hash) {
			return nil, errKeyReused
		}
		if stored.StatusCode != 0 {
			return stored, nil
		}
		if time.Duration(attempt)*poll >= idempotencyWait {
			return nil, errKeyInUse
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// storeIdempotentResponse records the response of the request that owns
// the key: in the same transaction as its changes, or after them for a
// handler that manages its own transactions.
func storeIdempotentResponse(ctx context.Context, db bun.IDB, businessID, key string, status int, contentType string, body []byte) error {
	_, err := db.NewUpdate().Model((*idempotencyRecord)(nil)).
		Set("status_code = ?", status).
		Set("content_type = ?", contentType).
		Set("response_body = ?", body).
		Set("locked_until = NULL").
		Where("business_id = ?", businessID).Where("key = ?", key).
		Exec(ctx)
	return err
}
