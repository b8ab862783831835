package metering

import "sync"

// knownLimit bounds the entries a known keeps; past it, it starts afresh.
const knownLimit = 250_000

// known remembers, for one ingester, facts that cannot change once true, so
// that a batch asks the database only about the rest: a customer id belongs
// to a business (customers are never deleted and ids never reused), and a
// meter's code, aggregation and value_property (fixed at creation; meters
// are never deleted). Customer references are not remembered: they can
// change.
type known struct {
	mu        sync.Mutex
	customers map[string]struct{} // business id + "/" + customer id
	meters    map[string]*Meter   // business id + "/" + code
}

func newKnown() *known {
	return &known{customers: map[string]struct{}{}, meters: map[string]*Meter{}}
}

func (k *known) customer(businessID, customerID string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.customers[businessID+"/"+customerID]
	return ok
}

func (k *known) addCustomer(businessID, customerID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.customers) >= knownLimit {
		k.customers = map[string]struct{}{}
	}
	k.customers[businessID+"/"+customerID] = struct{}{}
}

func (k *known) meter(businessID, code string) *Meter {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.meters[businessID+"/"+code]
}

func (k *known) addMeter(m *Meter) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.meters) >= knownLimit {
		k.meters = map[string]*Meter{}
	}
	k.meters[m.BusinessID+"/"+m.Code] = m
}
