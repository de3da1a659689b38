#!/usr/bin/env bash
# The local dashboard (and /docs) in a real browser: brings the stack up as `make dev` does
# (emulator with the template's resources, the built-in generator, local gateway) on ports of its
# own, then runs localstack/browser-smoke.py against it: a signed-in user's traffic, then headless
# Chromium (Debian: apt-get install -y chromium) loads /_local/dashboard and waits until the API
# requests chart shows that traffic, with a screenshot in $SCREENSHOT (default
# /tmp/dashboard.png); then /docs, until it renders the four API documents. Stops it all.
# Exits non-zero if a check fails.
#
#   BROWSER_SMOKE_PORT              the gateway's port (default 3700)
#   BROWSER_SMOKE_WS_PORT           the WebSocket API's port (default 3701)
#   BROWSER_SMOKE_MOTO_PORT         the emulator's port (default 5700)
#   BROWSER_SMOKE_CDP_PORT          Chromium's DevTools port (default 9333)
#   BROWSER_SMOKE_START_TIMEOUT_S   how long the stack may take to answer /health, cargo build
#                                   included (default 600)
#   BROWSER_SMOKE_DEADLINE_S        how long each wait in the browser may take (default 60)
#   CHROMIUM                        the browser (default: chromium on the PATH)
#
# The emulator's and the gateway's run files are make dev's (localstack/run/moto.*, gateway.*),
# so this refuses to start while make dev (or make conformance) runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

# Its own emulator and gateway, whatever the caller's environment points at; the template's
# parameters as deployed, rate limits raised (the traffic is from one address).
unset AWS_ENDPOINT_URL PROVISION_CMD GENERATOR_URL GENERATOR_MODEL
export PORT=${BROWSER_SMOKE_PORT:-3700}
export WS_PORT=${BROWSER_SMOKE_WS_PORT:-3701}
export MOTO_PORT=${BROWSER_SMOKE_MOTO_PORT:-5700}
export BROWSER_SMOKE_CDP_PORT=${BROWSER_SMOKE_CDP_PORT:-9333}
raised='[{"route":"*","per":"ip","algorithm":"token_bucket","limit":1000000,"period":"minute"}]'
export PARAMETER_OVERRIDES="RateLimitsWorkflows=$raised RateLimitsAuth=$raised"
START_TIMEOUT_S=${BROWSER_SMOKE_START_TIMEOUT_S:-600}
started=$SECONDS

command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1 ||
  die "chromium not found: install it (Debian: apt-get install -y chromium) or set CHROMIUM"
refuse_taken_ports "BROWSER_SMOKE_PORT / BROWSER_SMOKE_WS_PORT / BROWSER_SMOKE_MOTO_PORT / BROWSER_SMOKE_CDP_PORT" \
  "$PORT" "$WS_PORT" "$MOTO_PORT" "$BROWSER_SMOKE_CDP_PORT"
if pid=$(running_pid); then
  die "an emulator started by localstack/start.sh runs (pid $pid, port $(running_port): make dev, make test or make conformance?); its run files are the ones this stack would use. Stop it first (make stop)"
fi

ensure_venv
log=$RUN_DIR/browser-smoke-stack.log
say "Starting the stack for the browser smoke run (gateway 127.0.0.1:$PORT, emulator :$MOTO_PORT; log: $log) ..."
export GENERATOR=builtin
start_stack "$log" "$START_TIMEOUT_S"
up=$SECONDS

status=0
BASE_URL="http://127.0.0.1:$PORT" MOTO_URL="http://127.0.0.1:$MOTO_PORT" \
  "$VENV/bin/python" localstack/browser-smoke.py || status=$?
if ((status != 0)); then
  say "---- last lines of $log ----"
  tail -n 40 "$log" >&2 || true
  say "----"
fi
echo "browser smoke: stack up in $((up - started))s, run $((SECONDS - up))s"
exit "$status"
