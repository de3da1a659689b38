#!/usr/bin/env bash
# Smoke test of the local model server of `make dev` (run by `make test` and `make model-smoke`):
# installs it on first use, starts it on 127.0.0.1:$MODEL_SMOKE_PORT (default 8098, so a running
# `make dev` keeps its own), sends a streamed and a non-streamed chat completion
# (localstack/model/smoke.mjs), stops it. Exits non-zero if a check fails.
#
# The server's pid, port and log files are kept apart from make dev's (localstack/run/model-smoke.*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export MODEL_PORT=${MODEL_SMOKE_PORT:-8098}
export MODEL_RUN_NAME=model-smoke
started=$SECONDS
localstack/model.sh install
installed=$SECONDS
# The start-up figures (load time) are in the server's log; show them with the checks.
status=0
localstack/model.sh run node localstack/model/smoke.mjs || status=$?
grep -h "model loaded in" localstack/run/model-smoke.log | tail -n 1 | sed 's/^/model server: /' || true
echo "model smoke: install check $((installed - started))s, whole run $((SECONDS - started))s"
exit "$status"
