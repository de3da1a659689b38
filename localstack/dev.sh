#!/usr/bin/env bash
# `make dev`: the whole system on one machine, from infra/sam-template.yaml, without Docker.
# Builds the function binaries and the gateway, starts the emulator (moto server) with the
# template's resources unless it already runs, then runs the local gateway in the foreground on
# 127.0.0.1:$PORT (default 3000), with the WebSocket API on 127.0.0.1:$WS_PORT (default 3001).
# Ctrl-C stops the gateway, its function processes, and the emulator if this script started it.
#
#   PORT              the gateway's port (default 3000)
#   WS_PORT           the WebSocket API's port (default 3001)
#   MOTO_PORT         the emulator's port (default 5000)
#   AWS_ENDPOINT_URL  use an emulator that already runs there (LocalStack: http://127.0.0.1:4566)
#                     instead of starting moto; its resources are created from the template
#
# Text generation (the template's DefaultModel and GeneratorUrl, passed as PARAMETER_OVERRIDES
# before any the caller set, so the caller's win):
#   (default)         a local OpenAI-compatible model server (localstack/model.sh: SmolLM2-135M on
#                     the CPU, offline, installed on first use) on 127.0.0.1:$MODEL_PORT (default
#                     8088); DefaultModel=openai:smollm2, stopped with the rest
#   GENERATOR_URL     an OpenAI-compatible server of your own instead (Ollama:
#                     http://127.0.0.1:11434/v1), with the model GENERATOR_MODEL (default: the
#                     first one its /models lists)
#   GENERATOR=builtin neither: the functions' built-in generator (the template's defaults)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

PORT=${PORT:-3000}
WS_PORT=${WS_PORT:-3001}
export WS_PORT
GATEWAY_PID_FILE=$RUN_DIR/gateway.pid
GATEWAY_PORT_FILE=$RUN_DIR/gateway.port
BIN_DIR=${CARGO_TARGET_DIR:-target}/debug

gateway_pid() {
  local pid
  [[ -f $GATEWAY_PID_FILE ]] || return 1
  pid=$(<"$GATEWAY_PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && process_alive "$pid" || return 1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q gateway || return 1
  printf '%s\n' "$pid"
}

if pid=$(gateway_pid); then
  die "make dev is already running: gateway pid $pid on http://127.0.0.1:$(cat "$GATEWAY_PORT_FILE" 2>/dev/null || echo "$PORT"). Stop it with Ctrl-C in its terminal (or: kill $pid) first."
fi
if port_in_use "$PORT"; then
  die "port $PORT on 127.0.0.1 is taken by another program; choose another with PORT=..."
fi
if port_in_use "$WS_PORT"; then
  die "port $WS_PORT on 127.0.0.1 (the WebSocket API) is taken by another program; choose another with WS_PORT=..."
fi

generator=${GENERATOR:-local}
generator_overrides=""
case $generator in
  builtin) ;;
  local | openai) ;;
  *) die "GENERATOR must be builtin or local (got '$generator'); for a server of your own set GENERATOR_URL" ;;
esac

say "Building the function binaries and the local gateway (cargo build --workspace --bins) ..."
cargo build --workspace --bins

external=${AWS_ENDPOINT_URL:-}
started_moto=false
if [[ -z $external ]] && ! running_pid >/dev/null; then started_moto=true; fi
started_model=false
gateway=""
cleanup() {
  if [[ -n $gateway ]]; then
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
  fi
  rm -f "$GATEWAY_PID_FILE" "$GATEWAY_PORT_FILE"
  if [[ $started_model == true ]]; then
    localstack/model.sh stop || true
  fi
  if [[ $started_moto == true ]]; then
    localstack/stop.sh || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export AWS_REGION="${AWS_REGION:-us-east-1}"
if [[ -n $external ]]; then
  # Someone else's emulator (LocalStack in Docker, say): only create the resources.
  say "Using the emulator at $external"
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
  "$BIN_DIR/provision"
else
  # moto with the template's resources (provisioned by the binary just built).
  PROVISION_CMD=${PROVISION_CMD:-$BIN_DIR/provision} localstack/start.sh >/dev/null
  export AWS_ENDPOINT_URL="http://127.0.0.1:$(running_port)"
fi

# The first model of an OpenAI-compatible server's /models list (GENERATOR_URL without a model).
first_model_of() {
  "$PYTHON" - "$1/models" 2>/dev/null <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    print(json.load(r)["data"][0]["id"])
PY
}

# True if the template (DWC_TEMPLATE, as the gateway reads it) declares parameter $1: the gateway
# refuses overrides of unknown ones. (grep reads all of sed's output: with `grep -q` it could stop
# at the match while sed still writes, and the SIGPIPE fails the pipeline under pipefail.)
template_has_parameter() {
  sed -n '/^Parameters:/,/^[^[:space:]#]/p' "${DWC_TEMPLATE:-infra/sam-template.yaml}" | grep "^  $1:" >/dev/null
}

if [[ $generator != builtin ]] && ! { template_has_parameter DefaultModel && template_has_parameter GeneratorUrl; }; then
  say "warning: infra/sam-template.yaml has no DefaultModel/GeneratorUrl parameters yet; using the built-in generator"
  generator=builtin
fi
if [[ $generator != builtin && -z ${GENERATOR_URL:-} ]] && ! localstack/model.sh supported; then
  say "warning: using the built-in generator (or set GENERATOR_URL to a model server of your own)"
  generator=builtin
fi
if [[ $generator == builtin ]]; then
  say "Generator: built-in (no model server; the template's defaults)"
elif [[ -n ${GENERATOR_URL:-} ]]; then
  generator_url=${GENERATOR_URL%/}
  generator_model=${GENERATOR_MODEL:-}
  if [[ -z $generator_model ]]; then
    generator_model=$(first_model_of "$generator_url") ||
      die "could not list the models of $generator_url/models; is the server running? (or set GENERATOR_MODEL)"
  fi
  say "Generator: $generator_url, model $generator_model (GENERATOR_URL)"
  generator_overrides="DefaultModel=openai:$generator_model GeneratorUrl=$generator_url"
else
  if ! localstack/model.sh status 2>/dev/null; then started_model=true; fi
  generator_url=$(localstack/model.sh start) ||
    die "the local model server did not start (see above). Run with GENERATOR=builtin to do without it, or GENERATOR_URL=... for a server of your own"
  say "Generator: local model server $generator_url, model smollm2 (SmolLM2-135M-Instruct on the CPU; GENERATOR=builtin to do without)"
  generator_overrides="DefaultModel=openai:smollm2 GeneratorUrl=$generator_url"
fi
# Notification webhooks may point at a receiver on this machine (http://127.0.0.1:...): only
# locally; the template's default keeps them to public HTTPS endpoints.
local_overrides=$generator_overrides
if template_has_parameter NotifyAllowPrivateTargets; then
  local_overrides="NotifyAllowPrivateTargets=true${local_overrides:+ $local_overrides}"
fi
# The caller's own overrides come last: the gateway keeps the last value of a repeated key.
if [[ -n $local_overrides ]]; then
  PARAMETER_OVERRIDES="$local_overrides${PARAMETER_OVERRIDES:+ $PARAMETER_OVERRIDES}"
  export PARAMETER_OVERRIDES
fi

export PORT
mkdir -p "$RUN_DIR"
"$BIN_DIR/gateway" &
gateway=$!
printf '%s\n' "$gateway" >"$GATEWAY_PID_FILE"
printf '%s\n' "$PORT" >"$GATEWAY_PORT_FILE"
wait "$gateway"
