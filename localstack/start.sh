#!/usr/bin/env bash
# Starts moto server (the AWS emulator, DESIGN.md §5) on 127.0.0.1:$MOTO_PORT (default 5000) in
# the background, waits until it answers, then creates the resources of infra/sam-template.yaml.
#
#   MOTO_PORT       port to listen on (default 5000)
#   PROVISION_CMD   command that creates the resources once moto answers; default:
#                   `cargo run --quiet -p localstack --bin provision`; `true` skips provisioning
#
# Progress goes to stderr; stdout gets only the `export ...` line a shell needs to use the
# emulator, so `eval "$(localstack/start.sh)"` works. Stop it with localstack/stop.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

START_TIMEOUT_S=${MOTO_START_TIMEOUT_S:-30}
STOP_TIMEOUT_S=${MOTO_STOP_TIMEOUT_S:-10}
PROVISION_CMD=${PROVISION_CMD:-cargo run --quiet -p localstack --bin provision}

print_env() {
  local port=$1
  say "Use it from a shell with:"
  printf 'export AWS_ENDPOINT_URL=http://127.0.0.1:%s AWS_REGION=%s AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n' \
    "$port" "${AWS_REGION:-us-east-1}"
}

# Already running (started by this script earlier)? Report it rather than start a second one.
if pid=$(running_pid); then
  port=$(running_port)
  if [[ $port != "$MOTO_PORT" ]]; then
    die "moto server (pid $pid) already runs on port $port, not $MOTO_PORT; stop it first (make stop) or use MOTO_PORT=$port"
  fi
  say "moto server is already running (pid $pid) on http://127.0.0.1:$port; log: $LOG_FILE"
  say "(not provisioning again; stop it with localstack/stop.sh to start afresh)"
  print_env "$port"
  exit 0
fi
rm -f "$PID_FILE" "$PORT_FILE" # stale: that process is gone

if port_in_use "$MOTO_PORT"; then
  if moto_answers "$MOTO_PORT"; then
    die "a moto server not started by this script already answers on 127.0.0.1:$MOTO_PORT; stop it, or choose another port with MOTO_PORT=..."
  fi
  die "port $MOTO_PORT on 127.0.0.1 is taken by another program; choose another port with MOTO_PORT=..."
fi

ensure_venv

mkdir -p "$RUN_DIR"
say "Starting moto server on http://127.0.0.1:$MOTO_PORT (log: $LOG_FILE) ..."
{ printf '\n==== %s moto_server -H 127.0.0.1 -p %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MOTO_PORT"; } >>"$LOG_FILE"
# nohup + no inherited stdio: the server outlives this script and holds no caller's pipes open.
# localstack/moto_server.py is moto_server plus a cheap read-only route for sent emails.
MOTO_PORT=$MOTO_PORT nohup "$VENV/bin/python" localstack/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >>"$LOG_FILE" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$PID_FILE"
printf '%s\n' "$MOTO_PORT" >"$PORT_FILE"

# Stops the server started above (used when a later step fails), without waiting on stop.sh.
abort() {
  say "error: $1"
  say "---- last lines of $LOG_FILE ----"
  tail -n 30 "$LOG_FILE" >&2 || true
  say "----"
  MOTO_STOP_TIMEOUT_S=$STOP_TIMEOUT_S localstack/stop.sh >&2 || true
  exit 1
}

deadline=$((SECONDS + START_TIMEOUT_S))
until moto_answers "$MOTO_PORT"; do
  process_alive "$pid" || abort "moto server exited during start-up"
  ((SECONDS < deadline)) || abort "moto server did not answer on port $MOTO_PORT within ${START_TIMEOUT_S}s"
  sleep 0.2
done
say "moto server is up (pid $pid)."

if [[ $PROVISION_CMD != true ]]; then
  say "Creating the resources of infra/sam-template.yaml: $PROVISION_CMD"
  # Always the emulator, never a real account: endpoint and dummy credentials are forced here.
  env -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" \
    AWS_REGION="${AWS_REGION:-us-east-1}" \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    bash -c "$PROVISION_CMD" >&2 || abort "provisioning failed: $PROVISION_CMD"
fi

say "moto server is running (pid $pid) on http://127.0.0.1:$MOTO_PORT; stop it with localstack/stop.sh (make stop)."
print_env "$MOTO_PORT"
