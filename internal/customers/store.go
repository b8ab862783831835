package customers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

func duplicateReference(ref string) error {
	return &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonDuplicate,
		Message: fmt.Sprintf("a customer with reference_id %q already exists", ref),
		Fields:  []billing.FieldError{{Field: "reference_id", Message: "is already used by another customer"}}}
}

// Create stores a new ACTIVE customer for the business. A reference_id the
// business already uses is a DUPLICATE_ERROR, and nothing is written.
func Create(ctx context.Context, db bun.IDB, businessID string, now time.Time, p CreateParams) (*Customer, error) {
	c := p.customer()
	c.ID = billing.NewID(billing.PrefixCustomer)
	c.BusinessID = businessID
	c.ServiceStatus = ServiceActive
	c.Created = now.UTC().Truncate(time.Microsecond)
	c.Updated = c.Created
	res, err := db.NewInsert().Model(c).On("CONFLICT (business_id, reference_id) DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert customer: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, duplicateReference(c.ReferenceID)
	}
	return c, nil
}

// Get returns the business's customer id, or DATA_NOT_FOUND (also for
// another business's customer).
func Get(ctx context.Context, db bun.IDB, businessID, id string) (*Customer, error) {
	return get(ctx, db, businessID, id, false)
}

func get(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*Customer, error) {
	if !billing.ValidID(billing.PrefixCustomer, id) {
		return nil, billing.NotFound("customer")
	}
	c := new(Customer)
	q := db.NewSelect().Model(c).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("customer")
	}
	if err != nil {
		return nil, fmt.Errorf("get customer %s: %w", id, err)
	}
	return c, nil
}

// Filter selects customers in List.
type Filter struct {
	// ReferenceID, when set, keeps only the customer with that reference_id.
	ReferenceID string
	Page        billing.Page
}

// List returns one page of the business's customers, newest first, and
// whether more follow.
func List(ctx context.Context, db bun.IDB, businessID string, f Filter) ([]*Customer, bool, error) {
	var rows []*Customer
	q := db.NewSelect().Model(&rows).Where("business_id = ?", businessID)
	if f.ReferenceID != "" {
		q = q.Where("reference_id = ?", f.ReferenceID)
	}
	if err := postgres.Paginate(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list customers: %w", err)
	}
	rows, more := postgres.PageResult(rows, f.Page)
	return rows, more, nil
}

// Update applies p to the business's customer id and returns the result.
// The row is locked for the rest of db's transaction.
func Update(ctx context.Context, db bun.IDB, businessID, id string, now time.Time, p PatchParams) (*Customer, error) {
	c, err := get(ctx, db, businessID, id, true)
	if err != nil {
		return nil, err
	}
	if err := p.Apply(c); err != nil {
		return nil, err
	}
	if p.ReferenceID.Set {
		taken, err := db.NewSelect().Model((*Customer)(nil)).
			Where("business_id = ?", businessID).Where("reference_id = ?", c.ReferenceID).Where("id <> ?", c.ID).Exists(ctx)
		if err != nil {
			return nil, fmt.Errorf("check reference_id: %w", err)
		}
		if taken {
			return nil, duplicateReference(c.ReferenceID)
		}
	}
	c.Updated = now.UTC().Truncate(time.Microsecond)
	_, err = db.NewUpdate().Model(c).WherePK().Where("business_id = ?", businessID).
		ExcludeColumn("id", "business_id", "created", "service_status", "service_status_reason", "service_status_since").
		Exec(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // a concurrent update took the reference_id
		return nil, duplicateReference(c.ReferenceID)
	}
	if err != nil {
		return nil, fmt.Errorf("update customer %s: %w", id, err)
	}
	return c, nil
}
