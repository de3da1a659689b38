#!/usr/bin/env bash
# `make conformance`: brings the stack up as `make dev` does (emulator with the template's
# resources, local gateway), with the rate limits raised through the template's parameters,
# runs localstack/conformance.py (schemathesis, every check, both OpenAPI documents, as a
# signed-in user) against it, and stops it. Exits with schemathesis' verdict.
#
#   CONFORMANCE_PORT        the gateway's port (default 3900)
#   CONFORMANCE_MOTO_PORT   the emulator's port (default 5900)
#   CONFORMANCE_WS_PORT     the WebSocket API's port (default 3901)
#   CONFORMANCE_MAX_EXAMPLES  examples per operation (default 25)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

# Its own emulator and gateway, whatever the caller's environment points at.
unset AWS_ENDPOINT_URL PROVISION_CMD
export PORT=${CONFORMANCE_PORT:-3900}
export MOTO_PORT=${CONFORMANCE_MOTO_PORT:-5900}
export WS_PORT=${CONFORMANCE_WS_PORT:-3901}
# One rule per function, far above what the run sends: the gate stays in the path, unrefusing.
raised='[{"route":"*","per":"ip","algorithm":"token_bucket","limit":1000000,"period":"minute"}]'
export PARAMETER_OVERRIDES="RateLimitsWorkflows=$raised RateLimitsAuth=$raised"
START_TIMEOUT_S=${CONFORMANCE_START_TIMEOUT_S:-600}

# A stack already on these ports (another run) would answer for ours: refuse instead.
refuse_taken_ports "CONFORMANCE_PORT / CONFORMANCE_MOTO_PORT / CONFORMANCE_WS_PORT" "$PORT" "$MOTO_PORT" "$WS_PORT"

ensure_venv
log=$RUN_DIR/conformance-stack.log
say "Starting the stack for the conformance run (gateway 127.0.0.1:$PORT, emulator :$MOTO_PORT; log: $log) ..."
# The built-in generator: the conformance run checks the API, not a model.
export GENERATOR=builtin
start_stack "$log" "$START_TIMEOUT_S"

BASE_URL="http://127.0.0.1:$PORT" MOTO_URL="http://127.0.0.1:$MOTO_PORT" \
  "$VENV/bin/python" localstack/conformance.py
