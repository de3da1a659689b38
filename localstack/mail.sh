#!/usr/bin/env bash
# Prints the emails the local stack "sent" (SES in the emulator keeps them), newest last:
#   localstack/mail.sh [RECIPIENT]
# The emulator is the one `make dev` started, or the one at AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh
endpoint=${AWS_ENDPOINT_URL:-http://127.0.0.1:$(running_port)}
"$PYTHON" - "$endpoint" "${1:-}" <<'PY'
import json, sys, urllib.request
endpoint, to = sys.argv[1], sys.argv[2].lower()
try:
    data = json.load(urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/data.json"))
except OSError as e:
    sys.exit(f"cannot read {endpoint}/moto-api/data.json ({e}); is make dev running?")
messages = [m for m in data.get("ses", {}).get("Message", [])
            if not to or to in [a.lower() for a in m.get("destinations", {}).get("ToAddresses", [])]]
if not messages:
    sys.exit("no email" + (f" to {to}" if to else ""))
for m in messages:
    print(f"To: {', '.join(m['destinations'].get('ToAddresses', []))}\nSubject: {m['subject']}\n\n{m['body']}\n" + "-" * 60)
PY
