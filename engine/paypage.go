package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/uptrace/bun"
)

// The pay page: notifications cannot carry a provider's payment link, as
// no provider is called inside the transaction that queues them. They
// carry a link to the engine's pay page instead (PayPath + a secret of
// 256 random bits, of which only the SHA-256 is kept), and opening the
// page makes — or finds again — a payment link of the business's provider
// for what the invoice owes then, and sends the customer there. The
// secret is the customer's authority; it shows nothing but the invoice's
// state and lets nothing be done but paying it.

// PayPath is where the pay pages are served: PayPath + secret.
const PayPath = "/pay/"

// paySecretPrefix starts the secret of a pay page's URL.
const paySecretPrefix = "pay_"

// payPage is the row of one pay page.
type payPage struct {
	bun.BaseModel `bun:"table:pay_pages"`

	SecretHash []byte    `bun:"secret_hash,pk"`
	BusinessID string    `bun:"business_id"`
	InvoiceID  string    `bun:"invoice_id"`
	Created    time.Time `bun:"created"`
}

// payLink stores a new pay page for inv in tx and returns its URL, for a
// notification; nil when the engine does not know its own address (no
// PUBLIC_BASE_URL and no default).
func (s *Service) payLink(ctx context.Context, tx bun.IDB, inv *Invoice, now time.Time) (*string, error) {
	if s.linkBase == "" {
		return nil, nil
	}
	secret, err := newPayPage(ctx, tx, inv, now)
	if err != nil {
		return nil, err
	}
	return ptr(s.linkBase + PayPath + secret), nil
}

// newPayPage stores a new pay page for inv in tx and returns its secret.
func newPayPage(ctx context.Context, tx bun.IDB, inv *Invoice, now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("engine: crypto/rand failed: " + err.Error())
	}
	secret := paySecretPrefix + hex.EncodeToString(b[:])
	p := &payPage{SecretHash: hashSecret(secret), BusinessID: inv.BusinessID, InvoiceID: inv.ID, Created: now}
	if _, err := tx.NewInsert().Model(p).Exec(ctx); err != nil {
		return "", fmt.Errorf("store a pay page of invoice %s: %w", inv.ID, err)
	}
	return secret, nil
}

// Pay page outcomes.
const (
	// PayRedirect: send the customer to PayState.URL, the provider's page.
	PayRedirect = "REDIRECT"
	// PayPaid: the invoice is paid; nothing is left to pay.
	PayPaid = "PAID"
	// PayNothing: nothing can be paid (the invoice was voided, or is not
	// yet payable: in review, or not finalized).
	PayNothing = "NOTHING_TO_PAY"
	// PayProcessing: a payment of the invoice is under way.
	PayProcessing = "PROCESSING"
)

// PayState is what the pay page shows.
type PayState struct {
	Business *business.Business
	Invoice  *Invoice
	Outcome  string
	// URL is the provider's page, for PayRedirect.
	URL string
}

// OpenPayPage answers the pay page with secret, opened at pageURL (where
// the provider sends the customer back when the plan has no return URLs
// of its own): the provider's payment link for what the invoice owes
// (PayRedirect), or why there is none. A secret that is no pay page's is
// DATA_NOT_FOUND.
func (s *Service) OpenPayPage(ctx context.Context, secret, pageURL string) (*PayState, error) {
	p := new(payPage)
	if err := scanOne(ctx, s.db.NewSelect().Model(p).Where("secret_hash = ?", hashSecret(secret)), "pay page"); err != nil {
		return nil, err
	}
	biz, err := business.Get(ctx, s.db, p.BusinessID)
	if err != nil {
		return nil, err
	}
	st := &PayState{Business: biz}
	if st.Invoice, err = getInvoice(ctx, s.db, biz.ID, p.InvoiceID, false); err != nil {
		return nil, err
	}
	switch st.Invoice.Status {
	case InvoiceStatusPaid:
		st.Outcome = PayPaid
		return st, nil
	case InvoiceStatusOpen, InvoiceStatusUncollectible:
	default:
		st.Outcome = PayNothing
		return st, nil
	}
	link, err := s.InvoicePaymentLink(ctx, biz, biz.Clock().Now(), p.InvoiceID, pageURL, "")
	switch {
	case err == nil:
		st.Outcome, st.URL = PayRedirect, link.URL
	case billing.CodeOf(err) != billing.EFORBIDDEN:
		return nil, err
	case st.Invoice.Chargeable() || st.Invoice.Status == InvoiceStatusUncollectible:
		st.Outcome = PayProcessing // a charge of it is under way
	default:
		st.Outcome = PayNothing // held for review
	}
	return st, nil
}
