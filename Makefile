# ByteBasket developer entry points. `make test` is what CI runs (.ci/run).
GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
BIN       := bin/bytebasket
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: all packages datasets web build run test test-unit bench bench-cluster soak proto proto-check lint fuzz clean cluster-up cluster-down

all: build

# The dashboard's chart library: installed from web/package-lock.json (npm ci only when
# web/node_modules is missing or older than the lock file) and copied, with its licenses, into
# the embedded assets. Nothing third-party is committed.
VENDOR := internal/dashboard/assets/vendor

web: $(VENDOR)/chart.umd.js

web/node_modules: web/package-lock.json web/package.json
	npm ci --prefix web --no-audit --no-fund
	@touch $@

# Chart.js bundles @kurkle/color, so both licenses ship beside the bundle.
$(VENDOR)/chart.umd.js: web/node_modules
	@mkdir -p $(VENDOR)
	cp web/node_modules/chart.js/dist/chart.umd.js $(VENDOR)/chart.umd.js
	cp web/node_modules/chart.js/LICENSE.md $(VENDOR)/chart.js.LICENSE.md
	cp web/node_modules/@kurkle/color/LICENSE.md $(VENDOR)/kurkle-color.LICENSE.md

build: web
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/bytebasket

# Embedded mode: broker, simulator and HTTP endpoints in one process.
run: web
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/bytebasket run

# The whole suite: generated code is current, code is vetted, the real servers of
# deploy/local are up (a no-op when they already are), and every test runs, integration
# tests included, then the chaos suite (test/chaos). Under CI=true a server that is not up
# fails its tests.
test: packages datasets web proto-check lint cluster-up
	@mkdir -p test-output  # screenshots and other test artifacts land in test-output/_artifacts
	$(GO) test -count=1 -timeout 30m -artifacts -outputdir $(CURDIR)/test-output $$($(GO) list ./... | grep -v /test/chaos)
	@# The chaos suite stops shared servers (Cassandra, HDFS, Kafka): it runs alone, after the rest.
	$(GO) test -count=1 -timeout 30m ./test/chaos/

# Single-node Kafka, Cassandra, HDFS and Spark Connect from Maven Central on 127.0.0.1.
# Debian packages the build and tests need (JDK, Maven, C/C++, npm, Chromium), when missing.
packages:
	deploy/local/packages

# Public data sets the recommendation tests measure against (MovieLens 100K), when missing.
datasets:
	deploy/local/datasets >/dev/null

cluster-up:
	deploy/local/cluster up

cluster-down:
	deploy/local/cluster down

# Unit tests only; fast, no servers needed (integration tests skip).
test-unit:
	$(GO) test -short ./...

# Benchmarks; figures are copied into docs/benchmarks.md with the machine they ran on.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -cpu 1 ./internal/sim/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200000x ./internal/app/
	$(GO) test -run '^$$' -bench Apply -benchtime 2s -cpu 1 ./internal/stream/
	$(GO) test -run '^$$' -bench ArchiveLocal -benchtime 1000000x -cpu 1 ./internal/archive/

# On the real servers (about 15 minutes): stream throughput and end-to-end latency, the
# archiver into HDFS and local disk, trends on 10M events on Spark and DuckDB, the API under
# load, the shipped fraud rules' quality on two seeds.
bench-cluster: cluster-up
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/stream/
	$(GO) test -run '^$$' -bench Archive -benchtime 2000000x -cpu 1 ./test/archive/
	$(GO) test -run '^$$' -bench Trends -benchtime 1x -timeout 60m ./test/batch/
	$(GO) test -run '^$$' -bench ServeLoad -benchtime 1x -timeout 30m ./test/api/
	$(GO) test -run '^$$' -bench 'Fraud(Quality|Latency)' -benchtime 1x -timeout 30m ./test/fraud/

# An hour of embedded mode under load (BYTEBASKET_SOAK=10m for a shorter one): RSS, Go heap
# and the disk of broker, store and lake over time.
soak: web
	$(GO) test -run '^$$' -bench EmbeddedSoak -benchtime 1x -timeout 90m -v ./test/soak/

proto:
	$(BUF) generate

# Fails when the checked-in generated code differs from what the pinned generator makes.
proto-check:
	$(BUF) lint
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r proto $$tmp/before && $(BUF) generate && \
	  if ! diff -r $$tmp/before proto >/dev/null; then diff -r $$tmp/before proto | head -20; \
	  echo "generated code is stale: run 'make proto' and commit"; exit 1; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/event/

clean:
	rm -rf bin bytebasket-data
