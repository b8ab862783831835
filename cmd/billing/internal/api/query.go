package api

import (
	"net/url"
	"strconv"

	"github.com/tagihan/billing"
)

// listResponse is the shape of every list (SPEC §3).
type listResponse[T any] struct {
	Data    []T  `json:"data"`
	HasMore bool `json:"has_more"`
}

func newList[T any](data []T, more bool) listResponse[T] {
	if data == nil {
		data = []T{}
	}
	return listResponse[T]{Data: data, HasMore: more}
}

// pageFrom reads limit (1–100, default 10), after_id and before_id.
func pageFrom(q url.Values) (billing.Page, error) {
	p := billing.Page{Limit: billing.DefaultPageLimit, AfterID: q.Get("after_id"), BeforeID: q.Get("before_id")}
	var v billing.Validation
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if v.Check(err == nil && n >= 1 && n <= billing.MaxPageLimit, "limit", "must be an integer from 1 to 100") {
			p.Limit = n
		}
	}
	v.Check(p.AfterID == "" || p.BeforeID == "", "before_id", "cannot be combined with after_id")
	return p, v.Err()
}
