package webhooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
)

// maxDescription bounds an endpoint's description, in characters.
const maxDescription = 500

// CreateParams is the body of POST /webhook_endpoints.
type CreateParams struct {
	URL           string   `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Description   *string  `json:"description"`
}

// DecodeCreate reads a POST /webhook_endpoints body. Unknown fields are
// rejected (an engine-only resource).
func DecodeCreate(body []byte) (CreateParams, error) {
	var p CreateParams
	err := billing.DecodeJSON(body, &p, true)
	return p, err
}

// PatchParams is the body of PATCH /webhook_endpoints/{id}: each field
// present is changed.
type PatchParams struct {
	URL           billing.Optional[string]   `json:"url"`
	EnabledEvents billing.Optional[[]string] `json:"enabled_events"`
	Description   billing.Optional[string]   `json:"description"`
	Status        billing.Optional[string]   `json:"status"`
}

// DecodePatch reads a PATCH /webhook_endpoints/{id} body. Unknown fields
// are rejected.
func DecodePatch(body []byte) (PatchParams, error) {
	var p PatchParams
	err := billing.DecodeJSON(body, &p, true)
	return p, err
}

func (s *Service) validateCreate(ctx context.Context, biz *business.Business, p CreateParams) (string, error) {
	var v billing.Validation
	url := ""
	if p.URL == "" {
		v.Add("url", "is required")
	} else {
		var err error
		url, err = s.guard.CheckURL(ctx, "url", p.URL, biz.Sandbox())
		v.Merge("url", err)
	}
	if p.EnabledEvents == nil {
		v.Add("enabled_events", `is required: a list of event types, or ["*"] for every event`)
	} else {
		checkEvents(&v, p.EnabledEvents)
	}
	checkDescription(&v, p.Description)
	return url, v.Err()
}

// validatePatch checks p and normalizes its URL in place.
func (s *Service) validatePatch(ctx context.Context, biz *business.Business, p *PatchParams) error {
	var v billing.Validation
	if p.URL.Set {
		if p.URL.Null || p.URL.Value == "" {
			v.Add("url", "cannot be removed")
		} else {
			url, err := s.guard.CheckURL(ctx, "url", p.URL.Value, biz.Sandbox())
			if err != nil {
				v.Merge("url", err)
			} else {
				p.URL.Value = url
			}
		}
	}
	if p.EnabledEvents.Set {
		if p.EnabledEvents.Null {
			v.Add("enabled_events", "cannot be removed")
		} else {
			checkEvents(&v, p.EnabledEvents.Value)
		}
	}
	if p.Description.Set && !p.Description.Null {
		checkDescription(&v, &p.Description.Value)
	}
	if p.Status.Set {
		v.Check(!p.Status.Null && (p.Status.Value == StatusEnabled || p.Status.Value == StatusDisabled), "status", "must be ENABLED or DISABLED")
	}
	return v.Err()
}

// checkEvents requires ["*"] or a list of known event types, each once.
func checkEvents(v *billing.Validation, events []string) {
	if len(events) == 0 {
		v.Add("enabled_events", `must list at least one event type, or be ["*"] for every event`)
		return
	}
	seen := map[string]bool{}
	for i, t := range events {
		field := fmt.Sprintf("enabled_events[%d]", i)
		switch {
		case t == AllEvents:
			v.Check(len(events) == 1, field, `"*" subscribes to every event and cannot be combined with event types`)
		case !slices.Contains(outbox.Types, t):
			v.Add(field, fmt.Sprintf("%q is not an event type; see GET /events or docs/webhooks.md for the list", t))
		case seen[t]:
			v.Add(field, fmt.Sprintf("lists %q twice", t))
		}
		seen[t] = true
	}
}

func checkDescription(v *billing.Validation, d *string) {
	if d == nil {
		return
	}
	v.Check(utf8.RuneCountInString(*d) <= maxDescription && !strings.ContainsRune(*d, 0), "description", fmt.Sprintf("must be at most %d characters", maxDescription))
}

// normalizeEvents sorts event types so that the stored list does not
// depend on the order they were sent in.
func normalizeEvents(events []string) []string {
	out := slices.Clone(events)
	slices.Sort(out)
	return out
}
