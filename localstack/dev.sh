#!/usr/bin/env bash
# `make dev`: the whole system on one machine, from infra/sam-template.yaml, without Docker.
# Builds the function binaries and the gateway, starts the emulator (moto server) with the
# template's resources unless it already runs, then runs the local gateway in the foreground on
# 127.0.0.1:$PORT (default 3000). Ctrl-C stops the gateway, its function processes, and the
# emulator if this script started it.
#
#   PORT              the gateway's port (default 3000)
#   MOTO_PORT         the emulator's port (default 5000)
#   AWS_ENDPOINT_URL  use an emulator that already runs there (LocalStack: http://127.0.0.1:4566)
#                     instead of starting moto; its resources are created from the template
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

PORT=${PORT:-3000}
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

say "Building the function binaries and the local gateway (cargo build --workspace --bins) ..."
cargo build --workspace --bins

external=${AWS_ENDPOINT_URL:-}
started_moto=false
if [[ -z $external ]] && ! running_pid >/dev/null; then started_moto=true; fi
gateway=""
cleanup() {
  if [[ -n $gateway ]]; then
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
  fi
  rm -f "$GATEWAY_PID_FILE" "$GATEWAY_PORT_FILE"
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
export PORT
mkdir -p "$RUN_DIR"
"$BIN_DIR/gateway" &
gateway=$!
printf '%s\n' "$gateway" >"$GATEWAY_PID_FILE"
printf '%s\n' "$PORT" >"$GATEWAY_PORT_FILE"
wait "$gateway"
