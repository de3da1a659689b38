"""moto server with one extra read-only route for tests and `localstack/mail.sh`.

`GET /_dwc/ses/messages?to=<address>` answers the emails SES "sent" (v1 and v2 share one
store in moto) as JSON: [{"to": [...], "source", "subject", "body"}], oldest first;
`GET /_dwc/sns/messages?to=<phone number or platform endpoint ARN>` the SMS and push messages
SNS "sent" there: [{"to", "message"}]. moto's own
`/moto-api/data.json` has them too, but it serialises every tracked object of every service
(every DynamoDB item of every test table): megabytes and seconds per call once tests have run.

One fidelity fix: moto's DynamoDB checks a write's condition and then writes, with no lock, and
its server runs requests on threads, so two concurrent conditional writes of one item can both
pass (real DynamoDB serialises them: one succeeds, the other fails its condition). Tests of
optimistic concurrency and rate limits depend on that guarantee, so the writing operations run
under one lock here.

One speed fix: moto's `transact_write_items` deep-copies every table a transaction touches so that
it can roll back, so its cost grows with everything ever written (2.4 s per transaction at 10,000
items). Here a transaction remembers only the items it touches (and where each table's stream
stood) and puts exactly those back when it is cancelled: same all-or-nothing outcome, same
cancellation reasons per item, and a cancelled transaction leaves no stream record.
`localstack/bench_transact.py` measures it.

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
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.comparisons import get_filter_expression
from moto.ses.models import ses_backends
import copy
import functools
import pickle
import threading

import types

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

MESSAGES_PATH = "/_dwc/ses/messages"
SNS_MESSAGES_PATH = "/_dwc/sns/messages"


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


def sns_messages(to):
    """SMS published to phone number `to`, or messages published to platform endpoint `to`."""
    from moto.sns.models import sns_backends

    out = []
    for account in list(sns_backends.keys()):
        for region in list(sns_backends[account].keys()):
            backend = sns_backends[account][region]
            for phone, message in list(backend.sms_messages.values()):
                if phone == to:
                    out.append({"to": phone, "message": message})
            endpoint = backend.platform_endpoints.get(to)
            if endpoint is not None:
                out.extend({"to": to, "message": m} for m in list(endpoint.messages.values()))
    return out


def with_messages(app):
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO")
        if path in (MESSAGES_PATH, SNS_MESSAGES_PATH) and environ.get("REQUEST_METHOD") == "GET":
            to = parse_qs(environ.get("QUERY_STRING", "")).get("to", [""])[0]
            found = sent_messages(to) if path == MESSAGES_PATH else sns_messages(to)
            body = json.dumps(found).encode()
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


TRANSACT_OPS = ("ConditionCheck", "Put", "Delete", "Update")


class TouchedItems:
    """The before-image of every item a transaction wrote, and each touched table's stream length."""

    def __init__(self):
        self.items = []  # (table, hash_key, range_key, item before the write or None), in order
        self.streams = {}  # id(table) -> (table, records list, length before the transaction)

    def remember(self, table, hash_key, range_key, current, mutated_in_place):
        # update_item changes the stored Item in place, so its before-image must be a copy; Put
        # and Delete replace or remove the Item object, which stays as it was.
        before = fast_copy(current) if mutated_in_place else current
        self.items.append((table, hash_key, range_key, before))
        shard = table.stream_shard
        if shard is not None and id(table) not in self.streams:
            self.streams[id(table)] = (table, shard.items, len(shard.items))

    def undo(self):
        for table, hash_key, range_key, before in reversed(self.items):
            if range_key is not None:
                if before is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = before
            elif before is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = before
        for table, records, length in self.streams.values():
            # moto swaps in a new list only after handing records to a Lambda mapping; then there
            # is nothing left of this transaction to take back.
            if table.stream_shard is not None and table.stream_shard.items is records:
                del records[length:]


def fast_copy(value):
    """A deep copy through pickle: 5-10x faster than copy.deepcopy for moto's items and ASTs."""
    try:
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - anything pickle cannot take is copied the slow way
        return copy.deepcopy(value)


def speed_up_update_expressions():
    """Each UpdateItem (alone or in a transaction) parsed its expression twice and deep-copied the
    tree and the item: most of a transaction's time. The parser's tree is only read (the
    validator works on its own copy), so one parse per distinct expression is kept; the copies
    go through pickle. Results are the same objects moto builds."""
    UpdateExpressionParser.make = staticmethod(functools.lru_cache(maxsize=4096)(UpdateExpressionParser.make))
    validators.deepcopy = fast_copy
    # update_item's before-image for the stream (`orig_item = copy.deepcopy(item)`).
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=fast_copy, copy=copy.copy)


def transaction_key(table, op_type, op):
    if op_type != "Put":
        return op["Key"]
    attrs = op["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    missing = [n for n in names if n not in attrs]
    if missing:
        raise MockValidationException(
            f"One or more parameter values were invalid: Missing the key {missing[0]} in the item"
        )
    return {n: attrs[n] for n in names}


def apply_transaction_item(backend, op_type, op, seen, touched):
    """Checks one item's condition and applies its write; raises what moto raises per item."""
    if op_type not in TRANSACT_OPS:
        raise ValueError("Unsupported transaction operation")
    table_name = op["TableName"]
    table = backend.get_table(table_name)
    hash_key, range_key = backend.get_keys_value(table, transaction_key(table, op_type, op))
    target = (table.name, hash_key, range_key)
    if target in seen:
        raise MultipleTransactionsException()
    seen.add(target)

    current = table.get_item(hash_key, range_key)
    names = op.get("ExpressionAttributeNames")
    values = op.get("ExpressionAttributeValues")
    condition = op.get("ConditionExpression")
    if condition is not None and not get_filter_expression(condition, names, values).expr(current):
        wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
        raise ConditionalCheckFailed(item=current.to_json()["Attributes"] if wants_old and current else None)
    if op_type == "ConditionCheck":
        return
    # The condition held under the write lock, so the write itself needs no second check.
    touched.remember(table, hash_key, range_key, current, mutated_in_place=op_type == "Update")
    if op_type == "Put":
        backend.put_item(table_name, op["Item"], overwrite=True)
    elif op_type == "Delete":
        backend.delete_item(table_name, op["Key"])
    else:
        backend.update_item(table_name, op["Key"], op["UpdateExpression"], names, values)


def transact_write_items(self, transact_items):
    """DynamoDBBackend.transact_write_items, rolling back only the items it touched."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    touched = TouchedItems()
    seen = set()
    reasons = []  # one (code, message, item) per transaction item; (None, None, None) if it passed
    try:
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException()
            op_type, op = next(iter(entry.items()))
            try:
                apply_transaction_item(self, op_type, op, seen, touched)
                reasons.append((None, None, None))
            except MockValidationException:
                raise  # the whole request is invalid: a ValidationException, not a cancellation
            except ConditionalCheckFailed as e:
                old = json.loads(e.description).get("Item")
                reasons.append(("ConditionalCheckFailed", str(e.message), old))
            except Exception as e:  # noqa: BLE001 - moto reports any other failure as that item's reason
                reasons.append((type(e).__name__, str(e), None))
    except BaseException:
        touched.undo()
        raise
    if any(code is not None for code, _, _ in reasons):
        touched.undo()
        raise TransactionCanceledException(reasons)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    DynamoDBBackend.transact_write_items = transact_write_items
    speed_up_update_expressions()
    serialise_dynamodb_writes()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, with_messages(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1:])
