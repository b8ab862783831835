package billing

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync"
)

// Prefixes of the engine's ids (SPEC §3). An id is the prefix followed by a
// UUID, e.g. "cust-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a".
const (
	PrefixBusiness        = "biz-"
	PrefixAPIKey          = "key-"
	PrefixCustomer        = "cust-"
	PrefixPaymentToken    = "pt-"
	PrefixPaymentRequest  = "pr-"
	PrefixPayment         = "py-"
	PrefixPlan            = "repl-"
	PrefixSchedule        = "resc-"
	PrefixCycle           = "recy-"
	PrefixMeter           = "mtr-"
	PrefixInvoice         = "inv-"
	PrefixCreditNote      = "cn-"
	PrefixWebhookEndpoint = "whe-"
	PrefixEvent           = "evt-"
	PrefixNotification    = "ntf-"
	PrefixUsageEvent      = "uev-"
)

// idClock makes the ids of one process strictly increasing: within one
// millisecond, the 12 bits after the timestamp count up (RFC 9562 §6.2,
// method 1) instead of being random.
var idClock struct {
	sync.Mutex
	ms  uint64
	seq uint64
}

// NewID returns prefix followed by a new version 7 UUID. Version 7 UUIDs
// start with the creation time in milliseconds (read from SystemClock, not a
// business's sandbox clock), so ids made later sort later and new rows land
// at the right edge of their primary-key index. Ids made by one process sort
// in the order they were made, even within a millisecond (so events written
// by one transaction list in the order they were written); the last 62 bits
// are random.
func NewID(prefix string) string {
	var u [16]byte
	ms := uint64(SystemClock{}.Now().UnixMilli())
	idClock.Lock()
	switch {
	case ms > idClock.ms:
		idClock.ms, idClock.seq = ms, 0
	case idClock.seq < 0xfff:
		idClock.seq++
	default: // 4,096 ids in one millisecond: borrow the next one
		idClock.ms++
		idClock.seq = 0
	}
	ms, seq := idClock.ms, idClock.seq
	idClock.Unlock()
	binary.BigEndian.PutUint64(u[0:8], ms<<16|seq)
	if _, err := rand.Read(u[8:]); err != nil {
		panic("billing: crypto/rand failed: " + err.Error())
	}
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	var b strings.Builder
	b.Grow(len(prefix) + 36)
	b.WriteString(prefix)
	var h [32]byte
	hex.Encode(h[:], u[:])
	b.Write(h[0:8])
	b.WriteByte('-')
	b.Write(h[8:12])
	b.WriteByte('-')
	b.Write(h[12:16])
	b.WriteByte('-')
	b.Write(h[16:20])
	b.WriteByte('-')
	b.Write(h[20:32])
	return b.String()
}

// ValidID reports whether id is prefix followed by a UUID in its canonical
// lower-case form. The API uses it to answer 404 for a malformed id without
// a database round trip.
func ValidID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := rest[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
