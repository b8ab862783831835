package billing

// Paging limits of list endpoints (SPEC §3).
const (
	DefaultPageLimit = 10
	MaxPageLimit     = 100
)

// Page asks for one page of a list ordered newest first: Limit items
// (1–100) after AfterID (older than it) or before BeforeID (newer than it).
// At most one of AfterID and BeforeID is set.
type Page struct {
	Limit    int
	AfterID  string
	BeforeID string
}
