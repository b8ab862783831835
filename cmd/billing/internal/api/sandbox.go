package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/engine"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/sandboxclock"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

// clockView is the body of both sandbox clock endpoints.
type clockView struct {
	Now string `json:"now"`
}

func (s *Server) getSandboxClock(ctx context.Context, r *request) (int, any, error) {
	if !r.business.Sandbox() {
		return 0, nil, business.ErrNotSandbox
	}
	return http.StatusOK, clockView{Now: billing.FormatTime(r.now)}, nil
}

// advanceRequest is the body of POST /sandbox/clock/advance.
type advanceRequest struct {
	To *string `json:"to"`
	By *string `json:"by"`
}

func (s *Server) advanceSandboxClock(ctx context.Context, r *request) (int, any, error) {
	if !r.business.Sandbox() {
		return 0, nil, business.ErrNotSandbox
	}
	var in advanceRequest
	if err := billing.DecodeJSON(r.body, &in, true); err != nil {
		return 0, nil, err
	}
	var a business.ClockAdvance
	var v billing.Validation
	if in.To != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.To)
		if v.Check(err == nil, "to", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z") {
			a.To = &t
		}
	}
	if in.By != nil {
		d, err := parseDuration(*in.By)
		if v.Check(err == nil, "by", `must be a duration such as "720h", "90m" or "30d"`) {
			a.By = &d
		}
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	now, err := s.sandbox.Advance(ctx, r.business.ID, a)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, clockView{Now: billing.FormatTime(now)}, nil
}

// newSandboxClock returns the sandbox clock that runs, at every instant it
// stops at, the engine's due steps (fixing amounts, charges, retries,
// suspensions), then the payment service's (sandbox callbacks,
// reconciliation), then webhook deliveries and customer notifications —
// so that what one produces, the next sends in the same stop.
func newSandboxClock(db *bun.DB, e *engine.Service, pay *payments.Service, wh *webhooks.Service, nt *notify.Service) *sandboxclock.Clock {
	return sandboxclock.New(db,
		sandboxclock.Named{Name: "engine", Runner: engineRunner{db: db, e: e}},
		sandboxclock.Named{Name: "payments", Runner: pay},
		sandboxclock.Named{Name: "webhooks", Runner: wh},
		sandboxclock.Named{Name: "notifications", Runner: notifyRunner{nt}},
	)
}

// engineRunner runs a business's due cycle steps at its clock's reading.
type engineRunner struct {
	db *bun.DB
	e  *engine.Service
}

func (r engineRunner) NextDue(ctx context.Context, businessID string) (time.Time, bool, error) {
	t, err := r.e.NextDue(ctx, businessID)
	if err != nil || t == nil {
		return time.Time{}, false, err
	}
	return *t, true, nil
}

func (r engineRunner) RunDue(ctx context.Context, businessID string) (int, error) {
	b, err := business.Get(ctx, r.db, businessID)
	if err != nil {
		return 0, err
	}
	return r.e.RunDueBusiness(ctx, businessID, b.Clock().Now())
}

// notifyRunner sends a business's due notifications.
type notifyRunner struct{ nt *notify.Service }

func (r notifyRunner) NextDue(ctx context.Context, businessID string) (time.Time, bool, error) {
	return r.nt.NextDue(ctx, businessID)
}

func (r notifyRunner) RunDue(ctx context.Context, businessID string) (int, error) {
	return r.nt.SendDue(ctx, businessID)
}

// defaultNotify is the notification service of a server given none: no
// channel configured.
func defaultNotify(cfg Config) *notify.Service {
	var db *bun.DB
	if cfg.DB != nil {
		db = cfg.DB.Bun
	}
	return notify.New(notify.Config{DB: db, Clock: cfg.Clock, Logger: cfg.Logger})
}

// parseDuration reads a Go duration ("720h", "1h30m") or a whole number of
// days ("30d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err == nil && n >= 0 && n <= 36600 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}
