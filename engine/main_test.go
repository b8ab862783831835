package engine

import (
	"testing"

	"github.com/tagihan/billing/internal/pgtest"
)

// TestMain gives the package's database tests their own database (see
// pgtest) and drops it afterwards.
func TestMain(m *testing.M) { pgtest.Main(m) }
