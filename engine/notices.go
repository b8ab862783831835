package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
	"github.com/uptrace/bun"
)

// Which of a plan's notification_config lists a moment uses (SPEC §4.4).
func createdChannels(nc *NotificationConfig) []string   { return nc.RecurringCreated }
func succeededChannels(nc *NotificationConfig) []string { return nc.RecurringSucceeded }
func failedChannels(nc *NotificationConfig) []string    { return nc.RecurringFailed }

// notice queues a customer notification of kind about plan's cycle c (nil
// for none), in tx, the transaction of the change it tells about: on the
// channels pick chooses from the plan's notification_config, in its
// locale, dated with the cycle's scheduled timestamp. When payFor is not
// nil, the message carries a link to the engine's pay page for that
// invoice (made only when there is a channel to send it on, and only when
// the engine knows its public address). A plan without notification_config
// notifies nobody.
func (s *Service) notice(ctx context.Context, tx bun.IDB, plan *Plan, c *Cycle, kind notify.Kind, pick func(*NotificationConfig) []string,
	m notify.Message, payFor *Invoice, now time.Time) error {
	nc := plan.NotificationConfig
	if nc == nil || len(pick(nc)) == 0 {
		return nil
	}
	for _, ch := range pick(nc) {
		m.Channels = append(m.Channels, notify.Channel(ch))
	}
	m.BusinessID, m.CustomerID, m.PlanID, m.Kind, m.Locale = plan.BusinessID, plan.CustomerID, &plan.ID, kind, nc.Locale
	if c != nil {
		m.CycleID, m.Date = &c.ID, &c.ScheduledTimestamp
	}
	if payFor != nil {
		link, err := s.payLink(ctx, tx, payFor, now)
		if err != nil {
			return err
		}
		m.PaymentLink = link
	}
	if _, err := s.notify.Queue(ctx, tx, now, m); err != nil {
		return fmt.Errorf("notify %s of plan %s: %w", kind, plan.ID, err)
	}
	return nil
}

// money is an amount in the plan's currency, for messages.
func (p *Plan) money(amount decimal.Decimal) *billing.Money {
	return &billing.Money{Amount: amount, Currency: p.Currency}
}
