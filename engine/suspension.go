package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/uptrace/bun"
)

// Reasons of a customer's service status (SPEC §4.8).
const (
	// ServiceReasonCycleFailed: suspended because a cycle of a plan with
	// failed_cycle_action STOP failed.
	ServiceReasonCycleFailed = "CYCLE_FAILED"
	// ServiceReasonInvoicePaid: reinstated because the unpaid invoice was
	// paid.
	ServiceReasonInvoicePaid = "INVOICE_PAID"
)

// ServiceStatus is whether a customer's service is on (SPEC §4.8), what
// the utility's systems read to disconnect and reconnect. Since is when it
// last changed (the customer's creation when it never did). A suspended
// customer's PlanID and InvoiceID are the plan whose failed cycle
// suspended them and its unpaid invoice; a reinstated customer's, the
// invoice whose payment reinstated them.
type ServiceStatus struct {
	bun.BaseModel `bun:"table:customers"`

	CustomerID string     `bun:"id,pk"`
	BusinessID string     `bun:"business_id"`
	Status     string     `bun:"service_status"`
	Reason     *string    `bun:"service_status_reason"`
	Since      *time.Time `bun:"service_status_since"`
	PlanID     *string    `bun:"service_plan_id"`
	InvoiceID  *string    `bun:"service_invoice_id"`
	Created    time.Time  `bun:"created"`
	Updated    time.Time  `bun:"updated"`
}

type serviceView struct {
	CustomerID string  `json:"customer_id"`
	Status     string  `json:"status"`
	Reason     *string `json:"reason"`
	Since      string  `json:"since"`
	PlanID     *string `json:"plan_id"`
	InvoiceID  *string `json:"invoice_id"`
}

// MarshalJSON writes the status as GET /customers/{id}/service and the
// customer.service.* events show it.
func (st *ServiceStatus) MarshalJSON() ([]byte, error) {
	since := st.Created
	if st.Since != nil {
		since = *st.Since
	}
	return json.Marshal(serviceView{CustomerID: st.CustomerID, Status: st.Status, Reason: st.Reason, Since: billing.FormatTime(since),
		PlanID: st.PlanID, InvoiceID: st.InvoiceID})
}

// GetServiceStatus returns the service status of the business's customer
// id, or DATA_NOT_FOUND (also for another business's customer).
func (s *Service) GetServiceStatus(ctx context.Context, db bun.IDB, businessID, id string) (*ServiceStatus, error) {
	return serviceOf(ctx, db, businessID, id, false)
}

func serviceOf(ctx context.Context, db bun.IDB, businessID, id string, forUpdate bool) (*ServiceStatus, error) {
	if !billing.ValidID(billing.PrefixCustomer, id) {
		return nil, billing.NotFound("customer")
	}
	st := new(ServiceStatus)
	q := db.NewSelect().Model(st).Where("business_id = ?", businessID).Where("id = ?", id)
	if forUpdate {
		q = q.For("UPDATE")
	}
	if err := scanOne(ctx, q, "customer"); err != nil {
		return nil, err
	}
	return st, nil
}

func saveService(ctx context.Context, tx bun.IDB, st *ServiceStatus) error {
	if _, err := tx.NewUpdate().Model(st).WherePK().Column("service_status", "service_status_reason", "service_status_since",
		"service_plan_id", "service_invoice_id", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("update the service of customer %s: %w", st.CustomerID, err)
	}
	return nil
}

// suspend suspends the service of plan's customer at now because a cycle
// of plan failed, leaving inv unpaid: SUSPENDED with reason CYCLE_FAILED,
// customer.service.suspended, and the customer told (SERVICE_SUSPENDED on
// the plan's recurring_failed channels, with what is owed and a link to
// pay it). A customer suspended already stays as they are, suspended for
// the first unpaid invoice.
func (s *Service) suspend(ctx context.Context, tx bun.IDB, plan *Plan, inv *Invoice, now time.Time) error {
	st, err := serviceOf(ctx, tx, plan.BusinessID, plan.CustomerID, true)
	if err != nil {
		return err
	}
	if st.Status == customers.ServiceSuspended {
		return nil
	}
	st.Status, st.Reason, st.Since, st.PlanID, st.Updated = customers.ServiceSuspended, ptr(ServiceReasonCycleFailed), &now, &plan.ID, now
	st.InvoiceID = nil
	if inv != nil {
		st.InvoiceID = &inv.ID
	}
	if err := saveService(ctx, tx, st); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, st.BusinessID, outbox.CustomerServiceSuspended, now, st); err != nil {
		return err
	}
	m := notify.Message{}
	if inv != nil {
		m.Amount = plan.money(inv.AmountDue())
	}
	return s.notice(ctx, tx, plan, nil, notify.KindServiceSuspended, failedChannels, m, inv, now)
}

// reconsiderService looks again at the service of the customer of paid,
// an invoice just paid in full after its cycle failed, whose plan is
// plan. A customer suspended for a failed cycle is reinstated once no
// invoice of a plan with failed_cycle_action STOP is left UNCOLLECTIBLE:
// ACTIVE with reason INVOICE_PAID, customer.service.reinstated, and the
// customer told (SERVICE_REINSTATED on the plan's recurring_succeeded
// channels). While one is left, the suspension refers to the oldest.
func (s *Service) reconsiderService(ctx context.Context, tx bun.IDB, plan *Plan, paid *Invoice, now time.Time) error {
	st, err := serviceOf(ctx, tx, paid.BusinessID, paid.CustomerID, true)
	if err != nil {
		return err
	}
	if st.Status != customers.ServiceSuspended || st.Reason == nil || *st.Reason != ServiceReasonCycleFailed {
		return nil
	}
	var left []struct {
		ID     string `bun:"id"`
		PlanID string `bun:"plan_id"`
	}
	if err := tx.NewSelect().TableExpr("invoices AS i").Join("JOIN recurring_plans AS p ON p.id = i.plan_id").
		ColumnExpr("i.id, i.plan_id").Where("i.business_id = ?", paid.BusinessID).Where("i.customer_id = ?", paid.CustomerID).
		Where("i.status = ?", InvoiceStatusUncollectible).Where("p.failed_cycle_action = ?", failedCycleStop).
		OrderExpr("i.due_at, i.id").Limit(1).Scan(ctx, &left); err != nil {
		return fmt.Errorf("find the unpaid invoices of customer %s: %w", paid.CustomerID, err)
	}
	if len(left) == 1 {
		st.PlanID, st.InvoiceID, st.Updated = &left[0].PlanID, &left[0].ID, now
		return saveService(ctx, tx, st)
	}
	st.Status, st.Reason, st.Since, st.PlanID, st.InvoiceID, st.Updated =
		customers.ServiceActive, ptr(ServiceReasonInvoicePaid), &now, &paid.PlanID, &paid.ID, now
	if err := saveService(ctx, tx, st); err != nil {
		return err
	}
	if _, err := outbox.Emit(ctx, tx, st.BusinessID, outbox.CustomerServiceReinstated, now, st); err != nil {
		return err
	}
	return s.notice(ctx, tx, plan, nil, notify.KindServiceReinstated, succeededChannels,
		notify.Message{Amount: plan.money(paid.Total)}, nil, now)
}
