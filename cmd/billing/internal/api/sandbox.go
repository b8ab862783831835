package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
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
	now, err := business.AdvanceClock(ctx, r.db, r.business.ID, a)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, clockView{Now: billing.FormatTime(now)}, nil
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
