# Baton developer tasks. `make` (or `make help`) lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Shared across clones so CI and every checkout reuse one build cache.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/baton-target

# Tests create one database per test through this admin URL.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
REDIS_URL ?= redis://127.0.0.1:6379
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(REDIS_URL)

BUF_VERSION ?= 1.75.0
BUF := .tools/node_modules/.bin/buf

# Extra arguments: `make test ARGS='-E test(planner)'`, `make bench ARGS='...'`.
ARGS ?=

.PHONY: help deps client-deps build demo demo-services dev test lint fmt buf buf-lint buf-breaking \
	generate-clients clean-generated check-generated client-example observability-check bench mutants \
	soak chaos ci clean

help: ## List the targets
	@echo "Usage: make <target>"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN { FS = ":.*## " } { printf "  %-18s %s\n", $$1, $$2 }'
	@echo
	@echo "CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)"

deps: ## Install (apt) and start local Redis + PostgreSQL; create database 'baton'
	@bash scripts/deps.sh

client-deps: ## Install the client toolchains: Go (apt), Python venv, npm packages, buf
	@bash scripts/clients.sh deps

build: ## Build all binaries (debug)
	cargo build --workspace --bins

demo: ## One-command demo on the embedded backend (baton dev): run examples/hello to completion
	@bash scripts/demo.sh

demo-services: ## The demo on the production path: Redis + PostgreSQL and the separate services
	@bash scripts/demo-services.sh

dev: ## Run orchestrator, workflow-runner and http-worker in the foreground (Ctrl-C stops them)
	@bash scripts/dev.sh

test: deps client-deps ## Run the test suite, clients' end-to-end tests included (cargo nextest)
	@if cargo nextest --version >/dev/null 2>&1; then \
		echo "$(TEST_ENV) cargo nextest run --workspace $(ARGS)"; \
		$(TEST_ENV) cargo nextest run --workspace $(ARGS) && \
		echo "BATON_TEST_BACKEND=embedded cargo nextest run --profile embedded $(ARGS)" && \
		BATON_TEST_BACKEND=embedded $(TEST_ENV) cargo nextest run --workspace --profile embedded $(ARGS); \
	else \
		echo "cargo-nextest not found (install: cargo install cargo-nextest --locked); using cargo test"; \
		echo "$(TEST_ENV) cargo test --workspace $(ARGS)"; \
		$(TEST_ENV) cargo test --workspace $(ARGS); \
	fi

lint: ## cargo fmt --check and clippy with -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

buf: ## Install buf into .tools (npm) when absent or not the pinned version
	@if [ "$$($(BUF) --version 2>/dev/null)" != "$(BUF_VERSION)" ]; then \
		echo "installing @bufbuild/buf@$(BUF_VERSION) into .tools"; \
		npm install --prefix .tools --no-audit --no-fund --loglevel=error \
			"@bufbuild/buf@$(BUF_VERSION)"; \
	fi

buf-lint: buf ## Lint the protobuf definitions in proto/
	$(BUF) lint

# The contracts of the previous commit; override with BUF_AGAINST='.git#branch=main'.
BUF_AGAINST ?= .git\#ref=HEAD~1
buf-breaking: buf ## Fail on wire or source breaking changes against the previous commit
	@if [ "$$(git rev-parse --is-shallow-repository)" = true ]; then git fetch -q --deepen=1 || true; fi
	@if git rev-parse --verify -q HEAD~1 >/dev/null || [ "$(origin BUF_AGAINST)" != file ]; then \
		echo "$(BUF) breaking --against '$(BUF_AGAINST)'"; \
		$(BUF) breaking --against '$(BUF_AGAINST)'; \
	else \
		echo "buf-breaking: no previous commit to compare against"; \
	fi

generate-clients: client-deps ## Regenerate clients/{go,python,typescript} from proto/ (buf.gen.yaml)
	@bash scripts/clients.sh generate

clean-generated: ## Remove the generated client code
	@bash scripts/clients.sh clean

check-generated: client-deps ## Regenerate the clients and fail if they differ from the committed ones
	@bash scripts/clients.sh check

# `make client-example CLIENT=python` against a running orchestrator (`make dev`) at BATON_ADDR.
CLIENT ?= go
client-example: ## Run a client's example (CLIENT=go|python|typescript) against BATON_ADDR
	@bash scripts/clients.sh example $(CLIENT)

observability-check: ## promtool check/test the alert and recording rules; validate dashboards
	bash scripts/check-observability.sh

bench: deps ## Build and run baton-bench (release): both backends, production (Redis + PostgreSQL) and embedded (baton dev)
	cargo build --release --bins
	$(TEST_ENV) "$(CARGO_TARGET_DIR)/release/baton-bench" $(ARGS)

# `make chaos ARGS='--scenario redis-restart-empty'`: the fault suite's full version (chaos/,
# docs/chaos.md). It starts its own Redis and PostgreSQL; deps installs them.
chaos: deps ## Fault suite: kills, Redis restarted empty, PostgreSQL down 30 s, pauses, duplicates, poison; audits the database
	cargo build --workspace --bins
	"$(CARGO_TARGET_DIR)/debug/baton-chaos" $(ARGS)

# `make soak RUNS=20`: the whole suite RUNS times in a row beside one busy process per core
# (stress-ng when installed); stops at the first failure (scripts/soak.sh, logs in .dev/soak).
RUNS ?= 20
soak: deps client-deps ## Run the whole suite RUNS times in a row under CPU load; fails on the first failure
	$(TEST_ENV) bash scripts/soak.sh -n $(RUNS) -- $(ARGS)

# Mutation testing: each crate's mutants against that crate's own tests (.cargo/mutants.toml has
# the settings and the excluded mutants, each with why). cargo-mutants builds in a copy of the
# tree, so it gets a target dir of its own instead of contending for the shared one.
MUTANTS_CRATES ?= baton-engine baton-workflow
MUTANTS_TARGET_DIR ?= $(HOME)/.cache/baton-mutants-target
MUTANTS_JOBS ?= 1
mutants: ## Mutation-test the pure crates (cargo-mutants); fails on any missed or timed-out mutant
	@cargo mutants --version >/dev/null 2>&1 || cargo install cargo-mutants --locked
	@echo "CARGO_TARGET_DIR=$(MUTANTS_TARGET_DIR)"
	@failed=; for crate in $(MUTANTS_CRATES); do \
		mkdir -p mutants.out/$$crate; \
		echo "cargo mutants -j $(MUTANTS_JOBS) -p $$crate --test-package $$crate -o mutants.out/$$crate $(ARGS)"; \
		CARGO_TARGET_DIR="$(MUTANTS_TARGET_DIR)" cargo mutants -j $(MUTANTS_JOBS) -p $$crate \
			--test-package $$crate -o mutants.out/$$crate $(ARGS) || failed="$$failed $$crate"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "mutants: cargo mutants failed for$$failed (see mutants.out/<crate>/mutants.out)"; \
		exit 1; \
	fi

ci: ## Run the CI script (.ci/run) locally
	bash .ci/run

clean: ## Remove build output (the shared CARGO_TARGET_DIR too), .dev, .tools and node_modules
	cargo clean
	rm -rf .dev .tools mutants.out clients/typescript/node_modules clients/typescript/dist clients/typescript/.build-*
