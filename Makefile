# pggo: PostgreSQL background workers in Go.
#   make demo       build examples/worker_spi, run it in a throwaway cluster, show it counting
#   make test       gofmt, vet, unit and integration tests against a real PostgreSQL 15
#   make test-pg17  the same tests against PostgreSQL 17 (pggo init --pg 17 assembles it); also test-pg18
#   make test-all   15, 17 and 18
#   make bench      the benchmarks (BENCHMARKS.md)
#   make soak       the full fault suite (internal/fault -soak); rewrites RELIABILITY.md
GO ?= go
# Set to 1 to skip, not fail, a version that cannot be downloaded (CI uses it).
ALLOW_MISSING_PG ?= 0

.PHONY: setup demo test test-all build vet bench soak

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

test-pg%: setup
	@if $(GO) run ./cmd/pggo init --pg $* >/dev/null; then \
		echo "== tests against PostgreSQL $*"; \
		PGGO_PG_CONFIG=$$HOME/.pggo/pg$*/bin/pg_config $(GO) test -count=1 -timeout 15m ./...; \
	elif [ "$(ALLOW_MISSING_PG)" = 1 ]; then \
		echo "test-pg$*: PostgreSQL $* could not be assembled here (see above); skipped"; \
	else exit 1; fi

test-all: test test-pg17 test-pg18

# All contenders alternating on one cluster; rewrites BENCHMARKS.md and bench/results.json.
bench: setup
	$(GO) test -count=1 -timeout 20m -run '^TestBench$$' -v ./bench -args -full

# The fault suite at full length (make test runs it quick, writing its figures
# to a temporary file). RELIABILITY.md is rewritten even when scenarios fail:
# a failure is a defect the file then reports, and make exits non-zero.
soak: setup
	@GO=$(GO) bash scripts/soak.sh
