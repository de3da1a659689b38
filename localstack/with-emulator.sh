#!/usr/bin/env bash
# Runs a command with the emulator up: starts moto server (localstack/start.sh) unless it already
# runs, exports the AWS settings that point the SDK at it, runs the command, and stops the server
# afterwards only if this script started it. Exits with the command's status.
#
#   localstack/with-emulator.sh cargo test --workspace
#
# MOTO_PORT and PROVISION_CMD are passed on to start.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

(($# > 0)) || die "usage: $0 COMMAND [ARG...]"

started_here=false
if ! running_pid >/dev/null; then
  started_here=true
  # Stop even when start.sh fails half-way or the command is interrupted.
  trap 'localstack/stop.sh' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
localstack/start.sh >/dev/null

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE

status=0
"$@" || status=$?
if [[ $started_here == false ]]; then
  say "(moto server was already running before; left running)"
fi
exit "$status"
