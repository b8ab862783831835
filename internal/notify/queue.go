package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/wake"
	"github.com/uptrace/bun"
)

// Message is what Queue sends: one moment of one customer, on the channels
// the plan's notification_config names for it.
type Message struct {
	BusinessID string
	CustomerID string
	// PlanID and CycleID are the plan and cycle the message is about, when
	// there are (plans and cycles are stored by other features).
	PlanID  *string
	CycleID *string
	Kind    Kind
	// AttemptNumber is the failed payment attempt of an ATTEMPT_FAILED
	// message (required there).
	AttemptNumber *int
	// Channels to send on; each is recorded once.
	Channels []Channel
	// Locale is "en" or "id". Defaults to "en".
	Locale string
	// Amount is the cycle's or invoice's amount: required for
	// CYCLE_SUCCEEDED, ATTEMPT_FAILED and CYCLE_FAILED, shown when set for
	// the others.
	Amount *billing.Money
	// Date is the cycle's scheduled timestamp (its UTC date is shown):
	// required for the CYCLE_ kinds and ATTEMPT_FAILED.
	Date *time.Time
	// PaymentLink is a URL where the customer can pay now, when one exists.
	PaymentLink *string
}

// validate checks m; a wrong message is a programming error of the caller.
func (m *Message) validate() error {
	var v billing.Validation
	v.Check(m.BusinessID != "", "business_id", "is required")
	v.Check(m.CustomerID != "", "customer_id", "is required")
	if !slices.Contains(Kinds, m.Kind) {
		v.Add("kind", "is not a notification kind")
	}
	for i, c := range m.Channels {
		v.Check(c == ChannelEmail || c == ChannelWhatsApp || c == ChannelSMS, fmt.Sprintf("channels[%d]", i), "must be EMAIL, WHATSAPP or SMS")
	}
	if m.Locale == "" {
		m.Locale = LocaleEnglish
	}
	v.Check(m.Locale == LocaleEnglish || m.Locale == LocaleIndonesian, "locale", "must be en or id")
	switch m.Kind {
	case KindCycleSucceeded, KindAttemptFailed, KindCycleFailed:
		v.Check(m.Amount != nil, "amount", "is required for "+string(m.Kind))
	}
	switch m.Kind {
	case KindCycleCreated, KindCycleSucceeded, KindAttemptFailed, KindCycleFailed:
		v.Check(m.Date != nil, "date", "is required for "+string(m.Kind))
	}
	if m.Kind == KindAttemptFailed {
		v.Check(m.AttemptNumber != nil && *m.AttemptNumber >= 1, "attempt_number", "is required for ATTEMPT_FAILED")
	}
	if m.Amount != nil {
		v.Check(m.Amount.Currency.Valid(), "amount", "has an unsupported currency")
	}
	return v.Err()
}

// Queue records m for each of its channels in db's transaction (pass the
// transaction that makes the change the message is about) and returns the
// notifications: QUEUED, to be sent once the transaction commits, or
// SKIPPED_NO_CHANNEL with the reason when this engine has no sender for the
// channel (no SMTP_URL, WHATSAPP_GATEWAY_URL or SMS_GATEWAY_URL) or the
// customer has no e-mail address or mobile number. now is the business's
// clock. A message with no channel records nothing.
func (s *Service) Queue(ctx context.Context, db bun.IDB, now time.Time, m Message) ([]*Notification, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("queue notification: %w", err)
	}
	if len(m.Channels) == 0 {
		return nil, nil
	}
	cust, err := customers.Get(ctx, db, m.BusinessID, m.CustomerID)
	if err != nil {
		return nil, fmt.Errorf("queue notification: %w", err)
	}
	biz, err := business.Get(ctx, db, m.BusinessID)
	if err != nil {
		return nil, fmt.Errorf("queue notification: %w", err)
	}
	data := templateData{CustomerName: customerName(cust), BusinessName: biz.Name, PaymentLink: deref(m.PaymentLink)}
	if m.Amount != nil {
		data.Amount = formatMoney(m.Locale, *m.Amount)
	}
	if m.Date != nil {
		data.Date = formatDate(m.Locale, *m.Date)
	}
	if m.AttemptNumber != nil {
		data.AttemptNumber = *m.AttemptNumber
	}
	now = now.UTC().Truncate(time.Microsecond)
	var out []*Notification
	seen := map[Channel]bool{}
	for _, ch := range m.Channels {
		if seen[ch] {
			continue
		}
		seen[ch] = true
		msg, err := render(m.Locale, m.Kind, ch, data)
		if err != nil {
			return nil, err
		}
		n := &Notification{ID: billing.NewID(billing.PrefixNotification), BusinessID: m.BusinessID, CustomerID: m.CustomerID,
			PlanID: m.PlanID, CycleID: m.CycleID, Kind: m.Kind, AttemptNumber: m.AttemptNumber, Channel: ch, Locale: m.Locale,
			Recipient: recipient(cust, ch), Body: msg.body, Created: now, Updated: now}
		if ch == ChannelEmail {
			n.Subject = &msg.subject
		}
		switch {
		case !s.configured(ch):
			n.Status, n.StatusReason = StatusSkippedNoChannel, ptr(notConfigured(ch))
		case n.Recipient == nil:
			n.Status, n.StatusReason = StatusSkippedNoChannel, ptr(noRecipient(ch))
		default:
			n.Status, n.NextTryAt = StatusQueued, &now
		}
		if _, err := db.NewInsert().Model(n).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert notification: %w", err)
		}
		if n.Status == StatusQueued {
			if err := wake.Notify(ctx, db, wake.TopicNotification+":"+n.ID); err != nil {
				return nil, err
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// recipient is the customer's address for ch: the e-mail address for
// EMAIL, the mobile number (E.164) for WHATSAPP and SMS.
func recipient(c *customers.Customer, ch Channel) *string {
	var v *string
	if ch == ChannelEmail {
		v = c.Email
	} else {
		v = c.MobileNumber
	}
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil
	}
	return v
}

// customerName is how messages address the customer: the person's given
// names and surname, the company's name, or else its reference.
func customerName(c *customers.Customer) string {
	if d := c.IndividualDetail; d != nil {
		name := strings.TrimSpace(deref(d.GivenNames) + " " + deref(d.Surname))
		if name != "" {
			return name
		}
	}
	if d := c.BusinessDetail; d != nil && deref(d.BusinessName) != "" {
		return *d.BusinessName
	}
	return c.ReferenceID
}

func notConfigured(ch Channel) string {
	switch ch {
	case ChannelEmail:
		return "no e-mail sender is configured (SMTP_URL)"
	case ChannelWhatsApp:
		return "no WhatsApp gateway is configured (WHATSAPP_GATEWAY_URL)"
	}
	return "no SMS gateway is configured (SMS_GATEWAY_URL)"
}

func noRecipient(ch Channel) string {
	if ch == ChannelEmail {
		return "the customer has no email"
	}
	return "the customer has no mobile_number"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr[T any](v T) *T { return &v }
