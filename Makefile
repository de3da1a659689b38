# Everyday commands. The AWS services are emulated by moto server on 127.0.0.1:$(MOTO_PORT)
# (DESIGN.md §5); its tools live in localstack/.venv, installed on first use.
#
#   make test    start the emulator, lint the template, run every test, stop the emulator; then
#                make model-smoke, make chain-smoke, make conformance and make browser-smoke
#   make model-smoke  the local model server of make dev (localstack/model.sh): a streamed and a
#                plain chat completion against SmolLM2 on the CPU (installed on first use)
#   make chain-smoke  the stack as make dev runs it, with the local model: a new user signs up and
#                runs a 2-step chain over HTTP; both documents must be written by the model
#                (localstack/chain_smoke.py)
#   make conformance  the stack as make dev runs it, checked by schemathesis against the
#                OpenAPI documents (localstack/conformance.py)
#   make browser-smoke  the local dashboard and /docs in headless Chromium, after some traffic
#                (localstack/browser-smoke.py; Debian's chromium package)
#   make dev     the whole system: emulator + resources + local gateway on 127.0.0.1:3000 (Ctrl-C stops)
#   make stop    stop the emulator (and a gateway left running)
#   make lint    rustfmt, clippy and cfn-lint
#   make bench   handler benchmarks (CPU per request, DynamoDB replayed)
#   make bench-coldstart   init time, binary size and peak RSS of each function vs hello-world
#   make bench-emulator    the emulator's TransactWriteItems and PutItem on a table of 10,000 items
#   make bench-worker      worker CPU per step (DynamoDB and SQS replayed from a step recorded in the emulator)
#   make bench-fanout      one change to 1,000 WebSocket connections: bounded concurrency vs sequential
#   make bench-chain       wall time of a 50-step builtin chain run through the local stack

MOTO_PORT ?= 5000
export MOTO_PORT

TEMPLATE := infra/sam-template.yaml
VENV_BIN := localstack/.venv/bin

.PHONY: test model-smoke chain-smoke conformance browser-smoke dev stop lint lint-template bench bench-coldstart bench-emulator bench-worker bench-fanout bench-chain test-steps

# Tests create their own uniquely named tables, so the emulator starts empty (PROVISION_CMD=true).
# with-emulator.sh stops the emulator afterwards unless it was already running (make dev), and
# exits with the status of the test steps.
test: export AWS_ENDPOINT_URL = http://127.0.0.1:$(MOTO_PORT)
test: export AWS_REGION = us-east-1
test: export AWS_ACCESS_KEY_ID = test
test: export AWS_SECRET_ACCESS_KEY = test
test: export PROVISION_CMD = true
test:
	localstack/with-emulator.sh $(MAKE) --no-print-directory test-steps
	localstack/model-smoke.sh
	localstack/chain-smoke.sh
	localstack/conformance.sh
	localstack/browser-smoke.sh

# The body of `make test`; expects the emulator to be running. The end-to-end tests run the
# function binaries through the local gateway, so every binary is built first.
test-steps: lint-template
	cargo build --workspace --bins
	@if cargo nextest --version >/dev/null 2>&1; then \
		echo "cargo nextest run --workspace"; \
		cargo nextest run --workspace; \
	else \
		echo "cargo test --workspace (cargo-nextest not installed)"; \
		cargo test --workspace; \
	fi

dev:
	localstack/dev.sh

# The local model server that make dev starts (on its own port, MODEL_SMOKE_PORT, default 8098).
model-smoke:
	localstack/model-smoke.sh

# A chain written by the real local model, end to end over HTTP (its own ports: 3800, 5800, 8097).
chain-smoke:
	localstack/chain-smoke.sh

# schemathesis with every check against both OpenAPI documents of the running stack. One check is
# left out by name (in localstack/conformance.py): `unsupported_method`, because an undeclared
# method on a declared path is answered by API Gateway itself with 404 `{"message":"Not Found"}`
# (the local gateway does the same), never reaching a function, while the check expects 405.
# Answers that depend on state or on rules across fields are listed per operation, each with its
# reason, in localstack/schemathesis.toml.
conformance:
	localstack/conformance.sh

# The local dashboard (/_local/dashboard) and /docs in headless Chromium (its own ports: 3700,
# 3701, 5700, 9333).
browser-smoke:
	localstack/browser-smoke.sh

stop:
	@if [ -f localstack/run/gateway.pid ]; then kill "$$(cat localstack/run/gateway.pid)" 2>/dev/null || true; rm -f localstack/run/gateway.pid; fi
	localstack/model.sh stop
	localstack/stop.sh

lint: lint-template
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

lint-template:
	@localstack/venv.sh >/dev/null
	$(VENV_BIN)/cfn-lint $(TEMPLATE)

bench:
	cargo bench -p api-workflows --bench handler

# Cold start of every function beside a hello-world lambda_runtime binary, all built with the
# release profile in this run: init time through the gateway's Runtime API, stripped size, peak RSS.
# Every function: the gateway starts all of the template's functions from this directory.
FUNCTION_PACKAGES := -p api-workflows -p api-auth -p api-analytics -p worker -p ws-connect -p ws-broadcast -p scheduler
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
bench-coldstart: export AWS_ENDPOINT_URL = http://127.0.0.1:$(MOTO_PORT)
bench-coldstart: export PROVISION_CMD = true
bench-coldstart:
	cargo build --release $(FUNCTION_PACKAGES) --bins
	cargo build --release -p localstack --bin hello-lambda
	cargo build -p e2e --bin coldstart
	GATEWAY_BIN_DIR=$(TARGET_DIR)/release localstack/with-emulator.sh $(TARGET_DIR)/debug/coldstart

# moto's TransactWriteItems beside PutItem on a table filled with 10,000 items (every 100th of
# 100 KB), in a fresh emulator; exits non-zero if a median is over BUDGET_MS.
BUDGET_MS ?= 20
bench-emulator: export PROVISION_CMD = true
bench-emulator:
	localstack/with-emulator.sh $(VENV_BIN)/python localstack/bench_transact.py --items 10000 --rounds 50 --budget-ms $(BUDGET_MS)

# Worker CPU per step with I/O replayed: the emulator only serves the recording of one middle
# step at start (functions/worker/benches/step.rs); the measured loop sends nothing.
bench-worker: export PROVISION_CMD = true
bench-worker:
	localstack/with-emulator.sh cargo bench -p worker --bench step

# One change fanned out to 1,000 subscribed connections through the Management API client, to a
# local stand-in that answers each post after 5 ms: bounded concurrency against a sequential loop
# (functions/ws-broadcast/benches/fanout.rs).
bench-fanout: export PROVISION_CMD = true
bench-fanout:
	localstack/with-emulator.sh cargo bench -p ws-broadcast --bench fanout

# A 50-step `continue` run with the builtin generator through the local stack (debug binaries,
# as make dev and the e2e tests run them): wall time and its split (tests/src/bin/chain.rs).
bench-chain: export PROVISION_CMD = true
bench-chain:
	cargo build --workspace --bins
	localstack/with-emulator.sh $(TARGET_DIR)/debug/chain
