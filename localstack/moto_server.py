"""moto server with one extra read-only route for tests and `localstack/mail.sh`.

`GET /_dwc/ses/messages?to=<address>` answers the emails SES "sent" (v1 and v2 share one
store in moto) as JSON: [{"to": [...], "source", "subject", "body"}], oldest first. moto's own
`/moto-api/data.json` has them too, but it serialises every tracked object of every service
(every DynamoDB item of every test table): megabytes and seconds per call once tests have run.

One fidelity fix: moto's DynamoDB checks a write's condition and then writes, with no lock, and
its server runs requests on threads, so two concurrent conditional writes of one item can both
pass (real DynamoDB serialises them: one succeeds, the other fails its condition). Tests of
optimistic concurrency and rate limits depend on that guarantee, so the writing operations run
under one lock here.

Everything else is moto_server exactly (same arguments, same app).
"""

import argparse
import json
import os
import sys
from urllib.parse import parse_qs

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.ses.models import ses_backends
import threading

MESSAGES_PATH = "/_dwc/ses/messages"


def sent_messages(to):
    out = []
    for account in list(ses_backends.keys()):
        for region in list(ses_backends[account].keys()):
            for m in list(ses_backends[account][region].sent_messages):
                destinations = getattr(m, "destinations", {}) or {}
                recipients = [a for k in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destinations.get(k, [])]
                if to and to.lower() not in (r.lower() for r in recipients):
                    continue
                out.append({
                    "to": recipients,
                    "source": getattr(m, "source", ""),
                    "subject": getattr(m, "subject", ""),
                    "body": getattr(m, "body", ""),
                })
    return out


def with_messages(app):
    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == MESSAGES_PATH and environ.get("REQUEST_METHOD") == "GET":
            to = parse_qs(environ.get("QUERY_STRING", "")).get("to", [""])[0]
            body = json.dumps(sent_messages(to)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wrapped


WRITE_LOCK = threading.RLock()


def serialise_dynamodb_writes():
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, __original=original, **kwargs):
            with WRITE_LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    serialise_dynamodb_writes()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, with_messages(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1:])
