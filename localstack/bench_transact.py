"""Emulator benchmark: TransactWriteItems and PutItem latency on a table that holds many items.

Fills a fresh table with ITEMS items (every 100th one 100 KB, the rest small), then times, in one
run and against the same table, PutItem and TransactWriteItems of 2, 10 and 25 items (half Puts of
new items, half Updates of existing ones, each conditional), plus a cancelled transaction (its
last item's condition fails) whose writes must all be rolled back. Prints the median and p90 of
each in milliseconds, and exits non-zero if a median is over the budget (default 20 ms) or a
cancelled transaction left anything behind.

    make bench-emulator            # starts the emulator, runs this, stops it
    localstack/.venv/bin/python localstack/bench_transact.py --items 10000 --rounds 50

Talks to $AWS_ENDPOINT_URL (default http://127.0.0.1:$MOTO_PORT).
"""

import argparse
import os
import statistics
import sys
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BIG = "x" * (100 * 1024 - 200)


def client():
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}"
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # What is measured is the emulator: no retries, and no client-side validation of the
        # request (botocore checks every nested attribute of a 25-item transaction in Python).
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False),
    )


def make_table(ddb, name):
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def fill(ddb, name, count):
    batch = []
    for i in range(count):
        item = {"PK": {"S": f"WF#{i // 50}"}, "SK": {"S": f"NODE#{i:06d}"}, "version": {"N": "1"}}
        item["content"] = {"S": BIG if i % 100 == 0 else f"node {i}"}
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25 or i == count - 1:
            pending = {name: batch}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []


def timed(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def transaction(name, size, existing, fail_last=False):
    """Half Puts of new items (must not exist), half version-checked Updates of existing ones."""
    items = []
    for j in range(size):
        if j % 2 == 0:
            items.append({"Put": {
                "TableName": name,
                "Item": {"PK": {"S": f"NEW#{uuid.uuid4()}"}, "SK": {"S": "META"}, "version": {"N": "1"}},
                "ConditionExpression": "attribute_not_exists(PK)",
            }})
        else:
            pk, sk = existing[j]
            items.append({"Update": {
                "TableName": name,
                "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
                "UpdateExpression": "SET version = version + :one",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }})
    if fail_last:
        pk, sk = existing[0]
        items[-1] = {"ConditionCheck": {
            "TableName": name,
            "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
            "ConditionExpression": "version = :never",
            "ExpressionAttributeValues": {":never": {"N": "-1"}},
        }}
    return items


def summary(label, samples, budget):
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
    verdict = "ok" if median <= budget else f"OVER {budget:g} ms"
    print(f"{label:<34} median {median:7.1f} ms   p90 {p90:7.1f} ms   ({len(samples)} calls) {verdict}")
    return median <= budget


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--budget-ms", type=float, default=20.0)
    args = parser.parse_args(argv)

    ddb = client()
    name = f"bench-transact-{uuid.uuid4().hex[:8]}"
    make_table(ddb, name)
    try:
        started = time.perf_counter()
        fill(ddb, name, args.items)
        print(f"filled {name} with {args.items} items (every 100th 100 KB) in {time.perf_counter() - started:.1f} s")
        existing = [(f"WF#{i // 50}", f"NODE#{i:06d}") for i in range(1, 60)]
        ok = True

        samples = [timed(lambda: ddb.put_item(TableName=name, Item={
            "PK": {"S": f"PUT#{uuid.uuid4()}"}, "SK": {"S": "META"}, "version": {"N": "1"}}))
            for _ in range(args.rounds)]
        ok &= summary("PutItem", samples, args.budget_ms)
        for size in (2, 10, 25):
            samples = [timed(lambda: ddb.transact_write_items(TransactItems=transaction(name, size, existing)))
                       for _ in range(args.rounds)]
            ok &= summary(f"TransactWriteItems x{size}", samples, args.budget_ms)

        # A cancelled transaction: all-or-nothing, one reason per item, nothing left behind.
        before = ddb.get_item(TableName=name, Key={"PK": {"S": existing[1][0]}, "SK": {"S": existing[1][1]}})["Item"]
        samples = []
        for _ in range(args.rounds):
            items = transaction(name, 25, existing, fail_last=True)
            start = time.perf_counter()
            try:
                ddb.transact_write_items(TransactItems=items)
                print("error: a transaction whose condition fails was applied")
                return 1
            except ClientError as e:
                samples.append((time.perf_counter() - start) * 1000)
                reasons = [r["Code"] for r in e.response.get("CancellationReasons", [])]
                if reasons != ["None"] * 24 + ["ConditionalCheckFailed"]:
                    print(f"error: unexpected cancellation reasons {reasons}")
                    return 1
            new_key = items[0]["Put"]["Item"]
            if "Item" in ddb.get_item(TableName=name, Key={"PK": new_key["PK"], "SK": new_key["SK"]}):
                print("error: a cancelled transaction left a new item behind")
                return 1
        after = ddb.get_item(TableName=name, Key={"PK": {"S": existing[1][0]}, "SK": {"S": existing[1][1]}})["Item"]
        expected_version = int(before["version"]["N"])
        if int(after["version"]["N"]) != expected_version:
            print("error: a cancelled transaction left an update behind")
            return 1
        ok &= summary("TransactWriteItems x25, cancelled", samples, args.budget_ms)
        return 0 if ok else 1
    finally:
        ddb.delete_table(TableName=name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
