# pggo: PostgreSQL background workers in Go.
#   make demo   build examples/worker_spi, run it in a throwaway cluster, show it counting
#   make test   vet, unit and integration tests against a real PostgreSQL 15
GO ?= go

.PHONY: setup demo test build vet

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

build: setup
	$(GO) run ./cmd/pggo build ./examples/worker_spi

vet: setup
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: vet
	$(GO) test -count=1 -timeout 15m ./...
