package postgres

import (
	"slices"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Paginate orders q newest first by idColumn (the engine's ids are version 7
// UUIDs, so they sort by creation) and applies p's cursor. It asks for one
// row more than p.Limit so that PageResult can tell whether more exist.
func Paginate(q *bun.SelectQuery, idColumn string, p billing.Page) *bun.SelectQuery {
	col := bun.Ident(idColumn)
	switch {
	case p.BeforeID != "":
		q = q.Where("? > ?", col, p.BeforeID).OrderExpr("? ASC", col)
	case p.AfterID != "":
		q = q.Where("? < ?", col, p.AfterID).OrderExpr("? DESC", col)
	default:
		q = q.OrderExpr("? DESC", col)
	}
	return q.Limit(int64(p.Limit) + 1)
}

// PageResult trims rows read with Paginate to p.Limit, newest first, and
// reports whether the list goes on in the direction asked.
func PageResult[T any](rows []T, p billing.Page) ([]T, bool) {
	more := len(rows) > p.Limit
	if more {
		rows = rows[:p.Limit]
	}
	if p.BeforeID != "" {
		slices.Reverse(rows)
	}
	return rows, more
}
