# The two commands a new machine needs are `make run` and `make test`.
GO  ?= go
BIN := bin/billing

.PHONY: run test build migrate bench fuzz clean

## build: compile the engine into bin/billing
build:
	$(GO) build -o $(BIN) ./cmd/billing

## run: the engine with its API on http://127.0.0.1:8080, on the default database
## (DATABASE_URL, else PostgreSQL on localhost:5432, else a private cluster in .data/postgres);
## sandbox businesses may send webhooks to local receivers unless WEBHOOK_PRIVATE_URLS says otherwise
run: build
	WEBHOOK_PRIVATE_URLS=$${WEBHOOK_PRIVATE_URLS:-sandbox} ./$(BIN) serve --sandbox-key-file .data/sandbox-api-key

## test: vet and every test with the race detector, on a real PostgreSQL
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## bench: the performance figures of SPEC §9, each beside its baseline
## measured in the same run (see docs/benchmarks.md)
bench:
	$(GO) run ./internal/bench

## migrate: apply pending migrations to the default database
migrate: build
	./$(BIN) migrate up

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseDecimal$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzMoney$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCreate$$' -fuzztime $(FUZZTIME) ./internal/customers
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePatch$$' -fuzztime $(FUZZTIME) ./internal/customers
	$(GO) test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./metering
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./metering
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCreate$$' -fuzztime $(FUZZTIME) ./internal/payments
	$(GO) test -run '^$$' -fuzz '^FuzzParseCallback$$' -fuzztime $(FUZZTIME) ./providers/xendit
	$(GO) test -run '^$$' -fuzz '^FuzzParseCallback$$' -fuzztime $(FUZZTIME) ./providers/wooshpay
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEndpoint$$' -fuzztime $(FUZZTIME) ./internal/webhooks
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeInvoiceInput$$' -fuzztime $(FUZZTIME) ./engine

clean:
	rm -rf bin
