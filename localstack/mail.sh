#!/usr/bin/env bash
# Prints the emails the local stack "sent" (SES in the emulator keeps them), oldest first:
#   localstack/mail.sh [RECIPIENT]
# The emulator is the one `make dev` started, or the one at AWS_ENDPOINT_URL (moto started by
# localstack/start.sh, or LocalStack).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh
endpoint=${AWS_ENDPOINT_URL:-http://127.0.0.1:$(running_port)}
"$PYTHON" - "$endpoint" "${1:-}" <<'PY'
import json, sys, urllib.error, urllib.parse, urllib.request
endpoint, to = sys.argv[1].rstrip("/"), sys.argv[2]
def get(path):
    return json.load(urllib.request.urlopen(endpoint + path))
try:
    messages = get("/_dwc/ses/messages?to=" + urllib.parse.quote(to))
except urllib.error.HTTPError:
    # LocalStack keeps them under /_aws/ses.
    messages = [{"to": m.get("Destination", {}).get("ToAddresses", []), "subject": m.get("Subject", ""),
                 "body": (m.get("Body") or {}).get("text_part", "")}
                for m in get("/_aws/ses" + ("?email=" + urllib.parse.quote(to) if to else "")).get("messages", [])]
except OSError as e:
    sys.exit(f"cannot reach the emulator at {endpoint} ({e}); is make dev running?")
if not messages:
    sys.exit("no email" + (f" to {to}" if to else ""))
for m in messages:
    print(f"To: {', '.join(m['to'])}\nSubject: {m['subject']}\n\n{m['body']}\n" + "-" * 60)
PY
