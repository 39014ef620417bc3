# Tally's one entry point. `make run` and `make test` are the whole set-up on
# a fresh machine; everything else is here for operators and developers.
SHELL        := bash
.SHELLFLAGS  := -euo pipefail -c
STACK        := deploy/local/stack
MULTIDC      := deploy/local/multidc
BIN          := bin/tally
LOCAL        := $(or $(TALLY_LOCAL_DIR),$(CURDIR)/.local)
TEST_TIMEOUT ?= 30m
ARGS         ?=

.DEFAULT_GOAL := help
.PHONY: help up down status logs nodetool reset build migrate run serve test test-unit \
        test-integration test-contract fuzz fuzz-smoke fuzz-api fmt bench clean chaos check-ops \
        up-2dc down-2dc test-multidc generate check-generate browser observe observe-down

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

up: ## install (first time) and start Cassandra, Kafka and Redis, waiting until each answers
	$(STACK) up

down: ## stop the servers `make up` started (and the 2-DC stack's, if running), and nothing else
	$(STACK) down
	$(MULTIDC) down

status: ## show which local servers are up
	$(STACK) status

logs: ## tail the local servers' logs
	$(STACK) logs

nodetool: ## run the real nodetool against the local node, e.g. make nodetool ARGS=status
	$(STACK) nodetool $(ARGS)

reset: ## stop the stack and delete its data (jars stay cached)
	$(STACK) reset

build: ## build bin/tally
	go build -o $(BIN) ./cmd/tally

migrate: build up ## apply cql/ migrations to the local keyspace
	./$(BIN) migrate

$(LOCAL)/dev-jwt-secret:
	@mkdir -p $(LOCAL)
	@head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $@

$(LOCAL)/dev-receipt-key:
	@mkdir -p $(LOCAL)
	@head -c 32 /dev/urandom | base64 > $@

run: build up $(LOCAL)/dev-jwt-secret $(LOCAL)/dev-receipt-key ## bring the stack up, migrate, and serve on http://127.0.0.1:8080
	./$(BIN) migrate
	GOGC=$${GOGC:-400} GOMEMLIMIT=$${GOMEMLIMIT:-460MiB} TALLY_JWT_SECRET=$$(cat $(LOCAL)/dev-jwt-secret) TALLY_RECEIPT_KEYS_FILE=$(LOCAL)/dev-receipt-key ./$(BIN) serve

test: test-unit check-generate fuzz-smoke test-integration test-contract check-ops ## unit tests with -race, integration tests and the API contract test against the real servers

test-unit: ## vet + unit tests with the race detector (no servers needed)
	go vet ./...
	go test -race -count=1 ./...

browser: ## install Debian's chromium for the page's browser tests (apt-get as root; else says how)
	$(STACK) browser

test-integration: up browser ## integration tests against the local Cassandra, Kafka and Redis (and headless Chromium)
	go vet -tags integration ./...
	go test -race -count=1 -p 1 -timeout $(TEST_TIMEOUT) -tags integration ./...

check-ops: ## promtool check + unit tests of deploy/prometheus rules, strict decode of deploy/k8s manifests, compose files through the Compose Specification loader
	deploy/prometheus/promtool check rules deploy/prometheus/tally-rules.yml
	deploy/prometheus/promtool check config --syntax-only deploy/prometheus/compose-prometheus.yml
	cd deploy/prometheus && ./promtool test rules tally-rules.test.yml
	go test -count=1 ./deploy/...
	cd deploy/composecheck && go test -count=1 ./...

observe: ## local Prometheus (Debian's package) scraping `make run`'s API (and a separate worker if one answers) with the alert rules; OBSERVE_ADDR (127.0.0.1:9090)
	deploy/local/observe up

observe-down: ## stop the Prometheus `make observe` started, and nothing else
	deploy/local/observe down

test-contract: build up ## schemathesis (all checks, stateful, fixed seed) against a real tally serve
	deploy/contract/run

FUZZTIME ?= 30s
fuzz: ## every Go fuzz target for FUZZTIME each (default 30s), with executions per target and in total
	FUZZTIME=$(FUZZTIME) deploy/fuzz/run

fuzz-smoke: ## every Go fuzz target for 5s (part of make test; the seed corpora already run in test-unit)
	FUZZTIME=5s deploy/fuzz/run

fuzz-api: build up ## schemathesis with a random seed and 300 examples per operation
	deploy/contract/run --fuzz

up-2dc: build ## two-DC Cassandra (dc1 127.0.0.2, dc2 127.0.0.3) + a Redis per region, keyspace migrated (docs/multi-region.md)
	$(STACK) install cassandra
	$(MULTIDC) up

down-2dc: ## stop the two-DC stack (nodes, regions' Redis and tally serve processes)
	$(MULTIDC) down

test-multidc: up up-2dc ## cross-region tests on the two-DC cluster (build tag multidc; two real tally serve processes)
	go vet -tags multidc ./...
	go test -count=1 -p 1 -timeout $(TEST_TIMEOUT) -tags multidc -run . ./test/multidc/...

BENCH_ARGS ?= --rate 800 --duration 8s --ceiling-duration 2s
bench: build up ## short run of every bench scenario beside the machine's ceilings, with the correctness verdict
	go run ./bench --spawn ./$(BIN) $(BENCH_ARGS)

CHAOS_ARGS ?=
chaos: build up ## fault matrix under steady vote load against the real stack (~10 min; CHAOS_ARGS="--short" for the test subset, ~2 min)
	go run ./bench/chaos --bin ./$(BIN) $(CHAOS_ARGS)

.PHONY: analytics-example
analytics-example: build up ## PySpark + Spark Cassandra connector job over `votes` reproduces a poll's final tally from the API (~2 min; deploy/analytics)
	deploy/analytics/run

# The clients generated from the API document. oapi-codegen runs from the
# tools module (tools/go.mod pins it), openapi-typescript at a pinned version
# through npx; pkg/client/doc.go's go:generate line runs the same command.
API_DOC        := pkg/httpapi/openapi.yaml
OAPI_CODEGEN   := go tool -modfile=tools/go.mod oapi-codegen -config pkg/client/oapi-codegen.yaml
OPENAPI_TS     := npx --yes openapi-typescript@7.13.0

generate: ## regenerate the Go client (pkg/client/client.gen.go) and TypeScript types (api/tally.d.ts) from openapi.yaml
	$(OAPI_CODEGEN) -o pkg/client/client.gen.go $(API_DOC)
	$(OPENAPI_TS) $(API_DOC) -o api/tally.d.ts

check-generate: ## fail when a committed generated client is not what `make generate` writes from openapi.yaml
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(OAPI_CODEGEN) -o "$$tmp/client.gen.go" $(API_DOC); \
	cmp -s pkg/client/client.gen.go "$$tmp/client.gen.go" || { diff -u pkg/client/client.gen.go "$$tmp/client.gen.go" | head -40 || true; \
		echo "pkg/client/client.gen.go is stale: run make generate" >&2; exit 1; }; \
	if ! command -v npx >/dev/null; then \
		echo "check-generate: no npx, api/tally.d.ts not regenerated (pkg/client's unit test still checks its operations)"; exit 0; fi; \
	$(OPENAPI_TS) $(API_DOC) -o "$$tmp/tally.d.ts" >/dev/null; \
	cmp -s api/tally.d.ts "$$tmp/tally.d.ts" || { diff -u api/tally.d.ts "$$tmp/tally.d.ts" | head -40 || true; \
		echo "api/tally.d.ts is stale: run make generate" >&2; exit 1; }; \
	echo "check-generate: pkg/client and api/tally.d.ts are current"

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
