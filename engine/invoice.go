package engine

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Invoice statuses (SPEC §4.7).
const (
	// InvoiceStatusDraft: fixed but not finalized (it waits for review); no
	// number yet.
	InvoiceStatusDraft = "DRAFT"
	// InvoiceStatusOpen: finalized, numbered, owed.
	InvoiceStatusOpen = "OPEN"
	// InvoiceStatusPaid: paid in full.
	InvoiceStatusPaid = "PAID"
	// InvoiceStatusUncollectible: its cycle failed; still owed (arrears)
	// and payable later.
	InvoiceStatusUncollectible = "UNCOLLECTIBLE"
	// InvoiceStatusVoid: cancelled unpaid; it keeps its number.
	InvoiceStatusVoid = "VOID"
)

// Review statuses (SPEC §5.6). An invoice is charged only when it is OPEN
// and its review status is NOT_REQUIRED or APPROVED.
const (
	ReviewNotRequired = "NOT_REQUIRED"
	ReviewNeedsReview = "NEEDS_REVIEW"
	ReviewApproved    = "APPROVED"
	ReviewOnHold      = "ON_HOLD"
)

// Line kinds.
const (
	LineBase       = "BASE"
	LineUsage      = "USAGE"
	LineLateUsage  = "LATE_USAGE"
	LineAdjustment = "ADJUSTMENT"
	LineMinimum    = "MINIMUM"
)

// ActorEngine is the actor of what the engine does on its own in an
// invoice's audit trail; API actions record the API key's id ("key-…").
const ActorEngine = "engine"

// Invoice is the bill of one cycle: its lines, the review it went through,
// and what was paid. Its total is the sum of its lines (each rounded to the
// currency) and equals the cycle's amount.
type Invoice struct {
	bun.BaseModel `bun:"table:invoices"`

	ID         string `bun:"id,pk"`
	BusinessID string `bun:"business_id"`
	// Number (INV-<year>-<6 digits>) is given when the invoice is
	// finalized, gapless per business and year of finalization.
	Number      *string          `bun:"number"`
	NumberYear  *int             `bun:"number_year"`
	CycleID     string           `bun:"cycle_id"`
	PlanID      string           `bun:"plan_id"`
	CustomerID  string           `bun:"customer_id"`
	Currency    billing.Currency `bun:"currency"`
	PeriodStart time.Time        `bun:"period_start"`
	PeriodEnd   time.Time        `bun:"period_end"`
	Status      string           `bun:"status"`
	// ReviewStatus and the reasons that put the invoice in review.
	ReviewStatus  string   `bun:"review_status"`
	ReviewReasons []string `bun:"review_reasons,array"`
	// HeldReviewStatus is the review status an ON_HOLD invoice returns to
	// on release; HeldChargeAt when its cycle's charge was due when held.
	HeldReviewStatus *string         `bun:"held_review_status"`
	HeldChargeAt     *time.Time      `bun:"held_charge_at"`
	Subtotal         decimal.Decimal `bun:"subtotal,type:numeric"`
	Total            decimal.Decimal `bun:"total,type:numeric"`
	AmountPaid       decimal.Decimal `bun:"amount_paid,type:numeric"`
	// DueAt is the cycle's scheduled timestamp: when it is charged.
	DueAt       time.Time  `bun:"due_at"`
	FinalizedAt *time.Time `bun:"finalized_at"`
	PaidAt      *time.Time `bun:"paid_at"`
	VoidedAt    *time.Time `bun:"voided_at"`
	Created     time.Time  `bun:"created"`
	Updated     time.Time  `bun:"updated"`

	// Version is the row version (xmin) the invoice was read at, where
	// the query asks for it (lockInvoicesSQL): see settle_opened.go.
	Version int64 `bun:"xmin,scanonly"`

	// Lines, Audit and CreditNotes are loaded with the invoice (loadDetails).
	Lines       []*InvoiceLine `bun:"-"`
	Audit       []*AuditEntry  `bun:"-"`
	CreditNotes []*CreditNote  `bun:"-"`
}

// Chargeable reports whether the invoice may be charged: OPEN, and not
// awaiting review or held.
func (inv *Invoice) Chargeable() bool {
	return inv.Status == InvoiceStatusOpen && (inv.ReviewStatus == ReviewNotRequired || inv.ReviewStatus == ReviewApproved)
}

// InvoiceLine is one line of an invoice. Its amount is already rounded to
// the currency.
type InvoiceLine struct {
	bun.BaseModel `bun:"table:invoice_lines"`

	ID         string `bun:"id,pk"`
	BusinessID string `bun:"business_id"`
	InvoiceID  string `bun:"invoice_id"`
	Position   int    `bun:"position"`
	Kind       string `bun:"kind"`
	// Meter is the meter's code (USAGE, LATE_USAGE, MINIMUM).
	Meter       *string             `bun:"meter"`
	Description string              `bun:"description"`
	Quantity    decimal.NullDecimal `bun:"quantity,type:numeric"`
	UnitAmount  decimal.NullDecimal `bun:"unit_amount,type:numeric"`
	Tiers       []TierUsage         `bun:"tiers,type:jsonb,nullzero"`
	Amount      decimal.Decimal     `bun:"amount,type:numeric"`
	Usage       *UsageEvidence      `bun:"usage,type:jsonb"`
	// LateCycleID is the cycle whose window a LATE_USAGE line's events
	// belong to.
	LateCycleID *string `bun:"late_cycle_id"`
	// Charge is the usage charge a USAGE line was rated with.
	Charge *UsageCharge `bun:"charge,type:jsonb"`
	// Reason and CreatedBy explain an ADJUSTMENT line.
	Reason    *string   `bun:"reason"`
	CreatedBy *string   `bun:"created_by"`
	Created   time.Time `bun:"created"`
}

// UsageEvidence is the usage behind a USAGE or LATE_USAGE line: how many
// events, the first and last of them, and the window they were billed
// for. A LATE_USAGE line also says how its original window was re-rated:
// its quantity before and after the late events, what the window had been
// billed, and what it comes to now (the line's amount is the difference).
type UsageEvidence struct {
	EventCount   int64   `json:"event_count"`
	FirstEventAt *string `json:"first_event_at"`
	LastEventAt  *string `json:"last_event_at"`
	WindowStart  string  `json:"window_start"`
	WindowEnd    string  `json:"window_end"`
	// Corrections counts the corrections among the events.
	Corrections    int64           `json:"correction_count"`
	QuantityBefore *billing.Number `json:"quantity_before,omitempty"`
	QuantityAfter  *billing.Number `json:"quantity_after,omitempty"`
	BilledBefore   *billing.Number `json:"billed_before,omitempty"`
	RatedAfter     *billing.Number `json:"rated_after,omitempty"`
}

// AuditEntry is one entry of an invoice's audit trail: who (an API key's
// id, a dashboard user, or "engine"), when, what, and a note.
type AuditEntry struct {
	bun.BaseModel `bun:"table:invoice_audit"`

	ID         string    `bun:"id,pk"`
	BusinessID string    `bun:"business_id"`
	InvoiceID  string    `bun:"invoice_id"`
	Action     string    `bun:"action"`
	Actor      string    `bun:"actor"`
	Note       *string   `bun:"note"`
	Created    time.Time `bun:"created"`
}

// CreditNote records money owed back to the customer on a paid invoice (a
// refund need).
type CreditNote struct {
	bun.BaseModel `bun:"table:credit_notes"`

	ID         string          `bun:"id,pk"`
	BusinessID string          `bun:"business_id"`
	InvoiceID  string          `bun:"invoice_id"`
	Amount     decimal.Decimal `bun:"amount,type:numeric"`
	Reason     string          `bun:"reason"`
	Actor      string          `bun:"actor"`
	Created    time.Time       `bun:"created"`
}

type periodView struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type lineView struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Meter       *string         `json:"meter"`
	Description string          `json:"description"`
	Quantity    *billing.Number `json:"quantity"`
	UnitAmount  *billing.Number `json:"unit_amount"`
	Tiers       []TierUsage     `json:"tiers"`
	Amount      billing.Number  `json:"amount"`
	Usage       *UsageEvidence  `json:"usage"`
	LateCycleID *string         `json:"late_cycle_id"`
	Reason      *string         `json:"reason"`
	CreatedBy   *string         `json:"created_by"`
	Created     string          `json:"created"`
}

// MarshalJSON writes the line as the API shows it.
func (l *InvoiceLine) MarshalJSON() ([]byte, error) {
	return json.Marshal(l.view())
}

// view is the line as MarshalJSON writes it (see Attempt.view).
func (l *InvoiceLine) view() lineView {
	v := lineView{ID: l.ID, Kind: l.Kind, Meter: l.Meter, Description: l.Description, Tiers: l.Tiers,
		Amount: billing.NumberOf(l.Amount), Usage: l.Usage, LateCycleID: l.LateCycleID, Reason: l.Reason,
		CreatedBy: l.CreatedBy, Created: billing.FormatTime(l.Created)}
	v.Quantity, v.UnitAmount = nullNumber(l.Quantity), nullNumber(l.UnitAmount)
	if v.Tiers == nil {
		v.Tiers = []TierUsage{}
	}
	return v
}

func nullNumber(d decimal.NullDecimal) *billing.Number {
	if !d.Valid {
		return nil
	}
	n := billing.NumberOf(d.Decimal)
	return &n
}

func formatOptional(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := billing.FormatTime(*t)
	return &s
}

type auditView struct {
	ID      string  `json:"id"`
	Action  string  `json:"action"`
	Actor   string  `json:"actor"`
	Note    *string `json:"note"`
	Created string  `json:"created"`
}

type creditNoteView struct {
	ID        string         `json:"id"`
	InvoiceID string         `json:"invoice_id"`
	Amount    billing.Number `json:"amount"`
	Reason    string         `json:"reason"`
	Actor     string         `json:"actor"`
	Created   string         `json:"created"`
}

// MarshalJSON writes the credit note as the API shows it.
func (cn *CreditNote) MarshalJSON() ([]byte, error) {
	return json.Marshal(cn.view())
}

// view is the credit note as MarshalJSON writes it (see Attempt.view).
func (cn *CreditNote) view() creditNoteView {
	return creditNoteView{ID: cn.ID, InvoiceID: cn.InvoiceID, Amount: billing.NumberOf(cn.Amount),
		Reason: cn.Reason, Actor: cn.Actor, Created: billing.FormatTime(cn.Created)}
}

type invoiceView struct {
	ID             string           `json:"id"`
	Number         *string          `json:"number"`
	CycleID        string           `json:"cycle_id"`
	PlanID         string           `json:"plan_id"`
	CustomerID     string           `json:"customer_id"`
	Currency       string           `json:"currency"`
	Period         periodView       `json:"period"`
	Status         string           `json:"status"`
	ReviewStatus   string           `json:"review_status"`
	ReviewReasons  []string         `json:"review_reasons"`
	Lines          []lineView       `json:"lines"`
	Subtotal       billing.Number   `json:"subtotal"`
	Total          billing.Number   `json:"total"`
	AmountPaid     billing.Number   `json:"amount_paid"`
	AmountDue      billing.Number   `json:"amount_due"`
	AmountCredited billing.Number   `json:"amount_credited"`
	DueAt          string           `json:"due_at"`
	FinalizedAt    *string          `json:"finalized_at"`
	PaidAt         *string          `json:"paid_at"`
	VoidedAt       *string          `json:"voided_at"`
	Audit          []auditView      `json:"audit"`
	CreditNotes    []creditNoteView `json:"credit_notes"`
	Created        string           `json:"created"`
	Updated        string           `json:"updated"`
}

// AmountDue is what is still owed: the total less what was paid, or
// nothing for a VOID invoice.
func (inv *Invoice) AmountDue() decimal.Decimal {
	if inv.Status == InvoiceStatusVoid {
		return decimal.Zero
	}
	return inv.Total.Sub(inv.AmountPaid)
}

// MarshalJSON writes the invoice as the API shows it (SPEC §4.7), with its
// lines, audit trail and credit notes as loaded.
func (inv *Invoice) MarshalJSON() ([]byte, error) {
	credited := decimal.Zero
	for _, cn := range inv.CreditNotes {
		credited = credited.Add(cn.Amount)
	}
	v := invoiceView{
		ID: inv.ID, Number: inv.Number, CycleID: inv.CycleID, PlanID: inv.PlanID, CustomerID: inv.CustomerID,
		Currency: string(inv.Currency), Period: periodView{Start: billing.FormatTime(inv.PeriodStart), End: billing.FormatTime(inv.PeriodEnd)},
		Status: inv.Status, ReviewStatus: inv.ReviewStatus, ReviewReasons: inv.ReviewReasons, Lines: make([]lineView, len(inv.Lines)),
		Subtotal: billing.NumberOf(inv.Subtotal), Total: billing.NumberOf(inv.Total), AmountPaid: billing.NumberOf(inv.AmountPaid),
		AmountDue: billing.NumberOf(inv.AmountDue()), AmountCredited: billing.NumberOf(credited),
		DueAt: billing.FormatTime(inv.DueAt), FinalizedAt: formatOptional(inv.FinalizedAt), PaidAt: formatOptional(inv.PaidAt),
		VoidedAt: formatOptional(inv.VoidedAt), Audit: make([]auditView, len(inv.Audit)), CreditNotes: make([]creditNoteView, len(inv.CreditNotes)),
		Created: billing.FormatTime(inv.Created), Updated: billing.FormatTime(inv.Updated),
	}
	if v.ReviewReasons == nil {
		v.ReviewReasons = []string{}
	}
	for i, l := range inv.Lines {
		v.Lines[i] = l.view()
	}
	for i, cn := range inv.CreditNotes {
		v.CreditNotes[i] = cn.view()
	}
	for i, a := range inv.Audit {
		v.Audit[i] = auditView{ID: a.ID, Action: a.Action, Actor: a.Actor, Note: a.Note, Created: billing.FormatTime(a.Created)}
	}
	return json.Marshal(v)
}
