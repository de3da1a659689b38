#!/usr/bin/env bash
# Makes sure localstack/.venv holds the pinned tools of localstack/requirements.txt (moto server,
# cfn-lint), installing or rebuilding it only when needed. Prints the venv's bin folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

ensure_venv
printf '%s\n' "$PWD/$VENV/bin"
