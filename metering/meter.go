// Package metering records what customers use: meters, the ingestion of
// usage events at volume with exactly-once acceptance, and the aggregation
// of unbilled usage that the engine bills (SPEC §4.3).
package metering

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

// Aggregation says how a meter turns a window's events into one quantity.
type Aggregation string

// Aggregations. Corrections (events with correction_of) fold into the event
// they correct: the corrected reading is the original quantity plus the
// corrections' signed quantities.
const (
	// AggregationSum adds the quantities (kWh consumed, m³ of water).
	AggregationSum Aggregation = "SUM"
	// AggregationCount counts the events (readings), whatever their quantity.
	AggregationCount Aggregation = "COUNT"
	// AggregationMax takes the largest reading (peak demand in kW).
	AggregationMax Aggregation = "MAX"
	// AggregationLatest takes the reading with the latest timestamp (a
	// meter index, or a contracted capacity).
	AggregationLatest Aggregation = "LATEST"
	// AggregationUniqueCount counts the distinct values of the events'
	// value_property (distinct devices, distinct sites).
	AggregationUniqueCount Aggregation = "UNIQUE_COUNT"
)

// Valid reports whether a is one of the five aggregations.
func (a Aggregation) Valid() bool {
	switch a {
	case AggregationSum, AggregationCount, AggregationMax, AggregationLatest, AggregationUniqueCount:
		return true
	}
	return false
}

// correctable reports whether events of a meter with this aggregation may
// be corrected: a correction adjusts a reading's quantity, which COUNT and
// UNIQUE_COUNT meters do not use.
func (a Aggregation) correctable() bool {
	return a == AggregationSum || a == AggregationMax || a == AggregationLatest
}

// usesQuantity reports whether the aggregation reads the events' quantity.
func (a Aggregation) usesQuantity() bool { return a.correctable() }

// Meter is one thing a business measures.
type Meter struct {
	bun.BaseModel `bun:"table:meters"`

	ID            string      `bun:"id,pk" json:"id"`
	BusinessID    string      `bun:"business_id" json:"-"`
	Code          string      `bun:"code" json:"code"`
	Name          string      `bun:"name" json:"name"`
	Unit          string      `bun:"unit" json:"unit"`
	Aggregation   Aggregation `bun:"aggregation" json:"aggregation"`
	ValueProperty *string     `bun:"value_property" json:"value_property"`
	Created       time.Time   `bun:"created" json:"-"`
	Updated       time.Time   `bun:"updated" json:"-"`
}

// meterView is a meter as the API returns it.
type meterView struct {
	ID            string      `json:"id"`
	Code          string      `json:"code"`
	Name          string      `json:"name"`
	Unit          string      `json:"unit"`
	Aggregation   Aggregation `json:"aggregation"`
	ValueProperty *string     `json:"value_property"`
	Created       string      `json:"created"`
	Updated       string      `json:"updated"`
}

// MarshalJSON writes the meter as the API returns it.
func (m *Meter) MarshalJSON() ([]byte, error) {
	return json.Marshal(meterView{
		ID: m.ID, Code: m.Code, Name: m.Name, Unit: m.Unit, Aggregation: m.Aggregation,
		ValueProperty: m.ValueProperty, Created: billing.FormatTime(m.Created), Updated: billing.FormatTime(m.Updated),
	})
}

var (
	codePattern     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	propertyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)
)

// CreateMeterParams is the body of POST /meters.
type CreateMeterParams struct {
	Code          string      `json:"code"`
	Name          string      `json:"name"`
	Unit          string      `json:"unit"`
	Aggregation   Aggregation `json:"aggregation"`
	ValueProperty *string     `json:"value_property"`
}

// DecodeCreateMeter reads and validates a POST /meters body. Unknown fields
// are rejected (meters are the engine's own resource).
func DecodeCreateMeter(body []byte) (CreateMeterParams, error) {
	var p CreateMeterParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return p, err
	}
	var v billing.Validation
	v.Check(codePattern.MatchString(p.Code), "code", "must be 1 to 64 lower-case letters, digits or underscores, starting with a letter, such as electricity_kwh")
	checkName(&v, "name", p.Name)
	v.Check(p.Unit != "" && utf8.RuneCountInString(p.Unit) <= 32 && strings.TrimSpace(p.Unit) == p.Unit, "unit", "must be 1 to 32 characters, such as kWh")
	switch {
	case !p.Aggregation.Valid():
		v.Add("aggregation", "must be SUM, COUNT, MAX, LATEST or UNIQUE_COUNT")
	case p.Aggregation == AggregationUniqueCount:
		v.Check(p.ValueProperty != nil && propertyPattern.MatchString(*p.ValueProperty), "value_property",
			"is required for a UNIQUE_COUNT meter: the name of the event property whose distinct values are counted")
	default:
		v.Check(p.ValueProperty == nil, "value_property", "is only for UNIQUE_COUNT meters")
	}
	return p, v.Err()
}

func checkName(v *billing.Validation, field, name string) {
	v.Check(strings.TrimSpace(name) != "" && utf8.RuneCountInString(name) <= 255, field, "must be 1 to 255 characters")
}

// CreateMeter stores a new meter. A code the business already uses is a
// DUPLICATE_ERROR.
func CreateMeter(ctx context.Context, db bun.IDB, businessID string, now time.Time, p CreateMeterParams) (*Meter, error) {
	m := &Meter{
		ID: billing.NewID(billing.PrefixMeter), BusinessID: businessID, Code: p.Code, Name: strings.TrimSpace(p.Name),
		Unit: p.Unit, Aggregation: p.Aggregation, ValueProperty: p.ValueProperty,
		Created: now.UTC().Truncate(time.Microsecond),
	}
	m.Updated = m.Created
	res, err := db.NewInsert().Model(m).On("CONFLICT (business_id, code) DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert meter: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonDuplicate,
			Message: fmt.Sprintf("a meter with code %q already exists", p.Code),
			Fields:  []billing.FieldError{{Field: "code", Message: "is already used by another meter"}}}
	}
	return m, nil
}

// GetMeter returns the business's meter id, or DATA_NOT_FOUND.
func GetMeter(ctx context.Context, db bun.IDB, businessID, id string) (*Meter, error) {
	if !billing.ValidID(billing.PrefixMeter, id) {
		return nil, billing.NotFound("meter")
	}
	m := new(Meter)
	err := db.NewSelect().Model(m).Where("business_id = ?", businessID).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.NotFound("meter")
	}
	if err != nil {
		return nil, fmt.Errorf("get meter %s: %w", id, err)
	}
	return m, nil
}

// MetersByCode returns the business's meters with the given codes, by code.
func MetersByCode(ctx context.Context, db bun.IDB, businessID string, codes []string) (map[string]*Meter, error) {
	var ms []*Meter
	if len(codes) > 0 {
		if err := db.NewSelect().Model(&ms).Where("business_id = ?", businessID).Where("code IN (?)", bun.In(codes)).Scan(ctx); err != nil {
			return nil, fmt.Errorf("meters by code: %w", err)
		}
	}
	out := make(map[string]*Meter, len(ms))
	for _, m := range ms {
		out[m.Code] = m
	}
	return out, nil
}

// ListMeters returns one page of the business's meters, newest first.
func ListMeters(ctx context.Context, db bun.IDB, businessID string, page billing.Page) ([]*Meter, bool, error) {
	var ms []*Meter
	q := db.NewSelect().Model(&ms).Where("business_id = ?", businessID)
	if err := postgres.Paginate(q, "id", page).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("list meters: %w", err)
	}
	ms, more := postgres.PageResult(ms, page)
	return ms, more, nil
}

// RenameMeterParams is the body of PATCH /meters/{id}: only the name can
// change (the code, unit and aggregation are fixed once events exist).
type RenameMeterParams struct {
	Name string `json:"name"`
}

// DecodeRenameMeter reads a PATCH /meters/{id} body; any field other than
// name is rejected.
func DecodeRenameMeter(body []byte) (RenameMeterParams, error) {
	var p RenameMeterParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		var e *billing.Error
		if errors.As(err, &e) && len(e.Fields) == 1 && e.Fields[0].Message == "is not a known field" {
			return p, billing.Invalid(e.Fields[0].Field, "cannot be changed; only name can")
		}
		return p, err
	}
	var v billing.Validation
	checkName(&v, "name", p.Name)
	return p, v.Err()
}

// RenameMeter changes the name of the business's meter id.
func RenameMeter(ctx context.Context, db bun.IDB, businessID, id string, now time.Time, p RenameMeterParams) (*Meter, error) {
	m, err := GetMeter(ctx, db, businessID, id)
	if err != nil {
		return nil, err
	}
	m.Name = strings.TrimSpace(p.Name)
	m.Updated = now.UTC().Truncate(time.Microsecond)
	if _, err := db.NewUpdate().Model(m).Column("name", "updated").WherePK().Where("business_id = ?", businessID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("rename meter %s: %w", id, err)
	}
	return m, nil
}
