#!/usr/bin/env bash
# Runs dwc-admin against the local stack (`make dev`): localstack/admin.sh promote EMAIL
# makes a registered, verified account an admin (README "Auth flows").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:$(running_port)}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export TABLE_NAME=${TABLE_NAME:-WorkflowTable}
exec "${CARGO_TARGET_DIR:-target}/debug/dwc-admin" "$@"
