"""`make conformance`: schemathesis, with every check, against the OpenAPI documents of the
running stack (`make dev`'s gateway at $BASE_URL), as a signed-in user.

Registers a fresh user, reads the verification link from the emulator's SES, verifies, logs in,
then runs `schemathesis run` on /api/v3/openapi.json, /api/v3/auth/openapi.json and
/api/v3/analytics/openapi.json with that
user's access token. Exits non-zero on any failure.

    BASE_URL=http://127.0.0.1:3000 MOTO_URL=http://127.0.0.1:5000 python localstack/conformance.py

What schemathesis may expect beyond the documents (answers that depend on state or on a rule
across fields) is in localstack/schemathesis.toml, each with its reason.

Checks left out, and why (each is API Gateway's behaviour, not the functions'):
- `unsupported_method`: an undeclared method on a declared path is answered by API Gateway with
  its own 404 `{"message":"Not Found"}`, not the 405 the check expects; the functions never see
  such a request.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:3000").rstrip("/")
MOTO_URL = os.environ.get("MOTO_URL", "http://127.0.0.1:5000").rstrip("/")
PASSWORD = "conformance correct horse battery staple"
EXCLUDED_CHECKS = ["unsupported_method"]
DOCUMENTS = ["/api/v3/openapi.json", "/api/v3/auth/openapi.json", "/api/v3/analytics/openapi.json"]


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE_URL + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def verification_token(email, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        url = f"{MOTO_URL}/_dwc/ses/messages?to={urllib.parse.quote(email)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            for m in json.load(r):
                body = m.get("body", "")
                if "?token=" in body:
                    return body.split("?token=", 1)[1].split()[0]
        time.sleep(0.2)
    sys.exit(f"conformance: no verification email to {email} within {deadline_s}s")


def sign_in():
    email = f"conformance-{uuid.uuid4().hex[:12]}@example.com"
    status, body = call("POST", "/api/v3/auth/register",
                        {"email": email, "password": PASSWORD, "display_name": "Conformance"})
    if status != 202:
        sys.exit(f"conformance: register answered {status}: {body}")
    status, body = call("POST", "/api/v3/auth/verify-email", {"token": verification_token(email), "password": PASSWORD})
    if status != 200:
        sys.exit(f"conformance: verify-email answered {status}: {body}")
    status, body = call("POST", "/api/v3/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        sys.exit(f"conformance: login answered {status}: {body}")
    return body["access_token"]


def main():
    token = sign_in()
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    max_examples = os.environ.get("CONFORMANCE_MAX_EXAMPLES", "25")
    failed = []
    for doc in DOCUMENTS:
        cmd = [
            schemathesis, "--config-file", os.path.join(os.path.dirname(__file__), "schemathesis.toml"),
            "run", BASE_URL + doc,
            "--url", BASE_URL,
            "--checks", "all",
            "--exclude-checks", ",".join(EXCLUDED_CHECKS),
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", max_examples,
            "--seed", os.environ.get("CONFORMANCE_SEED", "1"),
            "--request-timeout", "20",
            # Each run starts from the same seed and nothing remembered: CI and a fresh clone
            # see the same run.
            "--generation-database", ":memory:",
        ]
        print(f"conformance: schemathesis run {BASE_URL + doc} (max {max_examples} examples per operation)", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(doc)
    if failed:
        print(f"conformance: failures in {', '.join(failed)}")
        return 1
    print(f"conformance: all {len(DOCUMENTS)} documents hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
