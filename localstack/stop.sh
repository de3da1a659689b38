#!/usr/bin/env bash
# Stops the moto server started by localstack/start.sh, by the pid in localstack/run/moto.pid:
# SIGTERM, then SIGKILL if it has not exited within MOTO_STOP_TIMEOUT_S (default 10) seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

STOP_TIMEOUT_S=${MOTO_STOP_TIMEOUT_S:-10}

if [[ ! -f $PID_FILE ]]; then
  say "moto server is not running (no $PID_FILE)."
  exit 0
fi
if ! pid=$(running_pid); then
  rm -f "$PID_FILE" "$PORT_FILE"
  say "moto server is not running (removed the stale $PID_FILE)."
  exit 0
fi

say "Stopping moto server (pid $pid) ..."
kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + STOP_TIMEOUT_S))
while process_alive "$pid"; do
  if ((SECONDS >= deadline)); then
    say "moto server did not exit within ${STOP_TIMEOUT_S}s of SIGTERM; sending SIGKILL."
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
    process_alive "$pid" && die "moto server (pid $pid) is still alive after SIGKILL"
    break
  fi
  sleep 0.1
done
rm -f "$PID_FILE" "$PORT_FILE"
say "moto server stopped."
