package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/metering"
)

func (s *Server) createMeter(ctx context.Context, r *request) (int, any, error) {
	p, err := metering.DecodeCreateMeter(r.body)
	if err != nil {
		return 0, nil, err
	}
	m, err := metering.CreateMeter(ctx, r.db, r.business.ID, r.now, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

func (s *Server) listMeters(ctx context.Context, r *request) (int, any, error) {
	page, err := pageFrom(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	ms, more, err := metering.ListMeters(ctx, r.db, r.business.ID, page)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(ms, more), nil
}

func (s *Server) getMeter(ctx context.Context, r *request) (int, any, error) {
	m, err := metering.GetMeter(ctx, r.db, r.business.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

func (s *Server) renameMeter(ctx context.Context, r *request) (int, any, error) {
	p, err := metering.DecodeRenameMeter(r.body)
	if err != nil {
		return 0, nil, err
	}
	m, err := metering.RenameMeter(ctx, r.db, r.business.ID, r.PathValue("id"), r.now, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

// ingestUsage answers POST /usage_events. A batch always answers 200 with
// the outcome of each event; a single event that is rejected answers with
// the error instead (400, 404 or 409), so that both forms reject bad input
// with a 4xx naming the field. It runs with its own transactions
// (apiOwnTx): the events go in through COPY on a pgx transaction, and a
// repeated request is naturally idempotent by event_id.
func (s *Server) ingestUsage(ctx context.Context, r *request) (int, any, error) {
	b, err := metering.DecodeBatch(r.body)
	if err != nil {
		return 0, nil, err
	}
	res, err := s.usage.Ingest(ctx, r.business.ID, r.now, b)
	if err != nil {
		return 0, nil, err
	}
	if b.Single && len(res.Rejected) == 1 {
		return 0, nil, res.Rejected[0].Error()
	}
	return http.StatusOK, res, nil
}

func (s *Server) listUsageEvents(ctx context.Context, r *request) (int, any, error) {
	q := r.URL.Query()
	page, err := pageFrom(q)
	if err != nil {
		return 0, nil, err
	}
	f := metering.EventFilter{CustomerID: q.Get("customer_id"), Meter: q.Get("meter"), Page: page}
	var v billing.Validation
	for _, bound := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(bound.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if v.Check(err == nil, bound.name, "must be an RFC 3339 time such as 2026-11-01T00:00:00Z") {
				*bound.dst = t
			}
		}
	}
	switch strings.ToLower(q.Get("billed")) {
	case "":
	case "true":
		t := true
		f.Billed = &t
	case "false":
		no := false
		f.Billed = &no
	default:
		v.Add("billed", "must be true or false")
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	events, more, err := metering.ListEvents(ctx, r.db, r.business.ID, f)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newList(events, more), nil
}
