package outbox_test

import (
	"bytes"
	"io"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
