package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// AuthPath is where the AUTH pages are served: AuthPath + secret.
const AuthPath = "/authorize/"

// failAmount is the amount the sandbox's "fail" button pays: Xendit's
// test amount that fails with INSUFFICIENT_BALANCE.
var failAmount = decimal.NewFromInt(21110)

// authSecretPrefix starts the secret of an AUTH page's URL.
const authSecretPrefix = "auth_"

// newAuthSecret returns a new unguessable secret (256 random bits) for an
// AUTH page and its SHA-256, which is all the engine keeps.
func newAuthSecret() (string, []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("engine: crypto/rand failed: " + err.Error())
	}
	secret := authSecretPrefix + hex.EncodeToString(b[:])
	return secret, hashSecret(secret)
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// startCycles begins an ACTIVE plan's billing (plan locked in tx):
// recurring.plan.activated, then cycle 1 and recurring.cycle.created.
func (s *Service) startCycles(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	if _, err := outbox.Emit(ctx, tx, plan.BusinessID, outbox.RecurringPlanActivated, now, plan); err != nil {
		return err
	}
	_, err := s.createNextCycle(ctx, tx, plan, nil, now)
	return err
}

// activate moves a REQUIRES_ACTION plan (locked in tx) that now has an
// ACTIVE token to ACTIVE (activated now, cycle 1, the events), or to
// PENDING with its immediate cycle 0 due at once (FULL_AMOUNT).
func (s *Service) activate(ctx context.Context, tx bun.IDB, plan *Plan, now time.Time) error {
	plan.Status, plan.Updated = PlanStatusPending, now
	if plan.ImmediateActionType == nil {
		plan.Status, plan.ActivatedAt = PlanStatusActive, &now
	}
	if _, err := tx.NewUpdate().Model(plan).WherePK().Column("status", "activated_at", "payment_methods", "updated").Exec(ctx); err != nil {
		return fmt.Errorf("activate plan %s: %w", plan.ID, err)
	}
	if plan.Status != PlanStatusActive {
		return s.startImmediate(ctx, tx, plan, now)
	}
	return s.startCycles(ctx, tx, plan, now)
}

// Settled is the payment service's SettledFunc. A PAY request settles the
// cycle action or invoice payment it carried (settlePay: success, the next
// token, a retry, failure, reinstatement), in the transaction that records
// its outcome. When the Pay and Save
// started from a plan's AUTH page succeeds, it puts the saved token first
// in the plan's payment_methods and activates the plan, in the
// transaction that records the payment; so the token and an ACTIVE plan
// (with cycle 1 and its events) exist together or not at all. The plan row
// is locked first: a plan deactivated meanwhile stays INACTIVE. A failed
// linking changes nothing; the plan stays REQUIRES_ACTION and its page can
// be used again.
func (s *Service) Settled(ctx context.Context, tx bun.IDB, pr *payments.PaymentRequest, tok *payments.PaymentToken, now time.Time) error {
	if pr.Type == payments.TypePay {
		return s.settlePay(ctx, tx, pr, truncate(now))
	}
	if pr.Type != payments.TypePayAndSave || pr.Status != payments.StatusSucceeded || tok == nil {
		return nil
	}
	plan := new(Plan)
	err := tx.NewSelect().Model(plan).Where("business_id = ?", pr.BusinessID).Where("auth_payment_request_id = ?", pr.ID).For("UPDATE").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find the plan of payment request %s: %w", pr.ID, err)
	}
	if plan.Status != PlanStatusRequiresAction {
		s.log.Info("a plan's Pay and Save succeeded after the plan left REQUIRES_ACTION; the plan is unchanged",
			"plan_id", plan.ID, "status", plan.Status, "payment_token_id", tok.ID)
		return nil
	}
	if tok.CustomerID != plan.CustomerID || tok.Currency != string(plan.Currency) {
		// Cannot happen (the page links the plan's customer in its
		// currency); the payment is recorded all the same.
		s.log.Error("a plan's Pay and Save saved a token of another customer or currency; the plan is unchanged",
			"plan_id", plan.ID, "payment_token_id", tok.ID)
		return nil
	}
	if err := loadSchedules(ctx, tx, plan); err != nil {
		return err
	}
	methods := []PaymentMethod{{PaymentTokenID: tok.ID, Rank: 1}}
	for _, m := range plan.PaymentMethods {
		if len(methods) == maxPaymentMethods {
			break
		}
		methods = append(methods, PaymentMethod{PaymentTokenID: m.PaymentTokenID, Rank: len(methods) + 1})
	}
	plan.PaymentMethods = methods
	return s.activate(ctx, tx, plan, truncate(now))
}

// AuthState is what a plan's AUTH page shows.
type AuthState struct {
	Plan     *Plan
	Business *business.Business
	Customer *customers.Customer
	// Country is where the customer pays (from the plan's currency), and
	// Channels the channels that can save a payment method there.
	Country  string
	Channels []string
	// Linking is the latest Pay and Save started from the page, or nil.
	Linking *payments.PaymentRequest
	// Simulated says whether the linking is the sandbox provider's, which
	// the page completes or fails itself.
	Simulated bool
}

// authKey is the provider idempotency key of a plan's attempt-th Pay and
// Save from its AUTH page.
func authKey(planID string, attempt int) string {
	return fmt.Sprintf("%s/auth/%d", planID, attempt)
}

// AuthState returns what the AUTH page with secret shows, or
// DATA_NOT_FOUND for a secret that is no plan's.
func (s *Service) AuthState(ctx context.Context, secret string) (*AuthState, error) {
	plan, err := planBySecret(ctx, s.db, secret, false)
	if err != nil {
		return nil, err
	}
	st := &AuthState{Plan: plan}
	if st.Business, err = business.Get(ctx, s.db, plan.BusinessID); err != nil {
		return nil, err
	}
	if st.Customer, err = customers.Get(ctx, s.db, plan.BusinessID, plan.CustomerID); err != nil {
		return nil, err
	}
	for _, country := range providers.Countries() {
		if c, _ := providers.CurrencyOf(country); c == plan.Currency {
			st.Country, st.Channels = country, providers.Channels(country)
		}
	}
	if plan.AuthPaymentRequestID != nil {
		if st.Linking, err = s.payments.Get(ctx, s.db, plan.BusinessID, *plan.AuthPaymentRequestID); err != nil {
			return nil, err
		}
		st.Simulated = st.Business.Sandbox() && st.Linking.Provider == string(providers.Sandbox)
	}
	return st, nil
}

func planBySecret(ctx context.Context, db bun.IDB, secret string, forUpdate bool) (*Plan, error) {
	p := new(Plan)
	q := db.NewSelect().Model(p).Where("auth_secret_hash = ?", hashSecret(secret))
	if forUpdate {
		q = q.For("UPDATE")
	}
	if err := scanOne(ctx, q, "authorization page"); err != nil {
		return nil, err
	}
	return p, loadSchedules(ctx, db, p)
}

// StartAuth starts the Pay and Save of the AUTH page with secret, with the
// business's provider, on channel: amount 0 (nothing is charged; the
// payment method is saved for the plan's cycles). pageURL is the page's
// own address, where the provider sends the customer back unless the plan
// has its own success and failure return URLs. A linking that is still
// under way is kept (the page shows it); one that ended without success
// is followed by a new attempt. A plan no longer REQUIRES_ACTION starts
// nothing. It returns the page's new state.
func (s *Service) StartAuth(ctx context.Context, secret, channel, pageURL string) (*AuthState, error) {
	var plan *Plan
	var biz *business.Business
	attempt := 0
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if plan, err = planBySecret(ctx, tx, secret, true); err != nil || plan.Status != PlanStatusRequiresAction {
			return err
		}
		if biz, err = business.Get(ctx, tx, plan.BusinessID); err != nil {
			return err
		}
		next := max(plan.AuthAttempt, 1)
		if plan.AuthPaymentRequestID != nil {
			pr, err := s.payments.Get(ctx, tx, biz.ID, *plan.AuthPaymentRequestID)
			if err != nil {
				return err
			}
			if !pr.Final() || pr.Status == payments.StatusSucceeded {
				return nil // under way, or done: nothing to start
			}
			if pr.ProviderKey == authKey(plan.ID, plan.AuthAttempt) {
				next = plan.AuthAttempt + 1
			}
		}
		attempt = next
		if attempt != plan.AuthAttempt {
			_, err = tx.NewUpdate().Model(plan).WherePK().Set("auth_attempt = ?", attempt).Exec(ctx)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if attempt == 0 {
		return s.AuthState(ctx, secret)
	}
	st, err := s.AuthState(ctx, secret)
	if err != nil {
		return nil, err
	}
	success, failure := pageURL, pageURL
	if plan.SuccessReturnURL != nil {
		success = *plan.SuccessReturnURL
	}
	if plan.FailureReturnURL != nil {
		failure = *plan.FailureReturnURL
	}
	meta, err := json.Marshal(plan.ID)
	if err != nil {
		return nil, err
	}
	pr, err := s.payments.Link(ctx, biz, biz.Clock().Now(), payments.LinkParams{
		CustomerID: plan.CustomerID, Country: st.Country, ChannelCode: channel, ReferenceID: plan.ReferenceID,
		Description: plan.Description, Metadata: map[string]json.RawMessage{"recurring_plan_id": meta},
		SuccessReturnURL: success, FailureReturnURL: failure, IdempotencyKey: authKey(plan.ID, attempt),
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.db.NewUpdate().Model((*Plan)(nil)).Set("auth_payment_request_id = ?", pr.ID).
		Where("id = ?", plan.ID).Where("auth_attempt = ?", attempt).Exec(ctx); err != nil {
		return nil, fmt.Errorf("record the linking of plan %s: %w", plan.ID, err)
	}
	return s.AuthState(ctx, secret)
}

// SimulateAuth plays the customer on the sandbox provider's page of the
// AUTH page's linking: complete saves the payment method (and so activates
// the plan when the callback is processed), otherwise the linking fails
// with INSUFFICIENT_BALANCE (Xendit's test amount 21110). A linking that is
// not waiting for the customer, or not the sandbox's, is 403.
func (s *Service) SimulateAuth(ctx context.Context, secret string, complete bool) error {
	st, err := s.AuthState(ctx, secret)
	if err != nil {
		return err
	}
	if st.Linking == nil {
		return forbidden("no payment method is being saved yet; choose one first")
	}
	var p payments.SimulateParams
	if !complete {
		n := billing.NumberOf(failAmount)
		p.Amount = &n
	}
	_, err = s.payments.Simulate(ctx, s.db, st.Business, st.Business.Clock().Now(), st.Linking.ID, p)
	return err
}
