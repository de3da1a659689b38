"""A chain run written by the local model (localstack/chain-smoke.sh), driven over HTTP as a new
user would: sign up and in (through the emulator's SES), create a workflow, make it active,
connect to the WebSocket API and subscribe to the workflow, start a `continue` run of 2 steps,
poll the run until it is over, then check that it succeeded, that the model of `make dev`
(openai:smollm2) wrote both steps, that the workflow holds a chain of the 2 new documents, and
that the subscriber saw the run succeed and each document being written (its `node_delta` texts
add up to the document). Prints a short summary; exits non-zero, with the run, on failure.

    BASE_URL=http://127.0.0.1:3000 MOTO_URL=http://127.0.0.1:5000 WS_URL=ws://127.0.0.1:3001/ws \
        python localstack/chain_smoke.py

    CHAIN_SMOKE_DEADLINE_S   how long the run may take to end (default 600)
    CHAIN_SMOKE_MODEL        the model the steps must name (default openai:smollm2, as dev.sh sets)

The WebSocket client is the `websockets` package (localstack/requirements.txt); the rest is the
standard library. The sign-in is localstack/conformance.py's, which reads BASE_URL and MOTO_URL
when imported.
"""

import json
import os
import sys
import threading
import time
import urllib.parse

from websockets.sync.client import connect

from conformance import BASE_URL, MOTO_URL, call, sign_in

WS_URL = os.environ.get("WS_URL", "ws://127.0.0.1:3001/ws")

STEPS = 2
DEADLINE_S = float(os.environ.get("CHAIN_SMOKE_DEADLINE_S", "600"))
POLL_S = 1.0
MODEL = os.environ.get("CHAIN_SMOKE_MODEL", "openai:smollm2")
TERMINAL = {"succeeded", "failed", "cancelled"}


def fail(message, run=None):
    print(f"chain smoke: FAILED: {message}", file=sys.stderr)
    if run is not None:
        print(json.dumps(run, indent=2), file=sys.stderr)
    sys.exit(1)


def request(method, path, body=None, token=None, expect=(200,)):
    """`call`, failing with a clear message on an unexpected status or no answer at all."""
    try:
        status, answer = call(method, path, body, token)
    except Exception as e:  # refused, timed out, or not JSON
        fail(f"{method} {path}: no JSON answer from {BASE_URL} ({type(e).__name__}: {e})")
    if status not in expect:
        fail(f"{method} {path} answered {status}: {json.dumps(answer)}")
    return answer


def all_nodes(workflow, token):
    nodes, cursor = [], None
    while True:
        query = {"limit": 100}
        if cursor:
            query["cursor"] = cursor
        page = request("GET", f"/api/v3/workflows/{workflow}/nodes?{urllib.parse.urlencode(query)}", token=token)
        nodes.extend(page.get("items") or [])
        cursor = page.get("next_cursor")
        if not cursor:
            return nodes


class Watcher:
    """A WebSocket connection subscribed to one workflow, keeping every message it receives."""

    def __init__(self, token, workflow):
        # The token as a subprotocol, as a browser sends it (the API echoes it back).
        self.ws = connect(WS_URL, subprotocols=[token], open_timeout=30)
        self.ws.send(json.dumps({"action": "subscribe_workflow", "workflow_id": workflow}))
        reply = json.loads(self.ws.recv(timeout=30))
        if reply.get("type") != "subscribed":
            fail(f"subscribing to {workflow} over {WS_URL} answered {reply}")
        self.messages = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for text in self.ws:
                self.messages.append(json.loads(text))
        except Exception:  # closed
            pass

    def until(self, check, deadline_s):
        """Waits (polling, with a deadline) until a received message passes `check`."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if any(check(m) for m in list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.ws.close()


def main():
    began = time.monotonic()
    try:
        token = sign_in()
    except SystemExit as e:  # conformance.py's own message, prefixed "conformance:"
        fail(f"sign-in: {e.code}")
    except Exception as e:  # refused, timed out, or not JSON
        fail(f"sign-in at {BASE_URL} (emulator {MOTO_URL}): {type(e).__name__}: {e}")
    signed_in = time.monotonic()
    print(f"chain smoke: signed in as a new user at {BASE_URL} ({signed_in - began:.1f}s)", flush=True)

    workflow = request("POST", "/api/v3/workflows", {"name": "Chain smoke"}, token, expect=(200, 201))["id"]
    request("POST", f"/api/v3/workflows/{workflow}/status", {"status": "active"}, token)
    try:
        watcher = Watcher(token, workflow)
    except Exception as e:  # refused, or no WebSocket API
        fail(f"WebSocket {WS_URL}: {type(e).__name__}: {e}")
    print(f"chain smoke: subscribed to the workflow over {WS_URL}", flush=True)
    run = request("POST", f"/api/v3/workflows/{workflow}/runs",
                  {"plan": {"mode": "continue", "steps": STEPS}}, token, expect=(202,))
    run_path = f"/api/v3/workflows/{workflow}/runs/{run['id']}"
    print(f"chain smoke: run {run['id']} of {STEPS} steps started in workflow {workflow}; "
          f"polling it (deadline {DEADLINE_S:.0f}s) ...", flush=True)

    started = time.monotonic()
    deadline = started + DEADLINE_S
    seen = None
    # When each step was first seen over, in seconds since the run was started (as a client sees
    # it, to the poll interval).
    done_at = {}
    while run.get("status") not in TERMINAL:
        if time.monotonic() >= deadline:
            fail(f"the run is still {run.get('status')} after {DEADLINE_S:.0f}s", run)
        time.sleep(POLL_S)
        run = request("GET", run_path, token=token)
        elapsed = time.monotonic() - started
        for step in run.get("steps") or []:
            if step.get("status") in ("succeeded", "failed", "skipped"):
                done_at.setdefault(step.get("id"), elapsed)
        progress = (run.get("status"), tuple(s.get("status") for s in run.get("steps") or []))
        if progress != seen:
            seen = progress
            print(f"chain smoke: {elapsed:5.1f}s run {progress[0]}, "
                  f"steps {', '.join(progress[1])}", flush=True)
    waited = time.monotonic() - started

    # The run and each step: succeeded, by the local model, with tokens both ways.
    if run.get("status") != "succeeded":
        fail(f"the run ended {run.get('status')}, not succeeded (last error: {run.get('last_error')})", run)
    steps = run.get("steps") or []
    if len(steps) != STEPS:
        fail(f"the run has {len(steps)} steps, not {STEPS}", run)
    for i, step in enumerate(steps):
        if step.get("status") != "succeeded":
            fail(f"step {i} is {step.get('status')}, not succeeded", run)
        if step.get("model") != MODEL:
            fail(f"step {i} was written by {step.get('model')!r}, not {MODEL!r} "
                 "(did dev.sh fall back to the built-in generator? see the stack's log)", run)
        for field in ("input_tokens", "output_tokens"):
            if not (isinstance(step.get(field), int) and step[field] > 0):
                fail(f"step {i} has {field} {step.get(field)!r}, not > 0", run)

    # The documents: both completed, with text, the second the child of the first.
    nodes = {n["id"]: n for n in all_nodes(workflow, token)}
    chain = []
    for i, step in enumerate(steps):
        node = nodes.get(step.get("node_id"))
        if node is None:
            fail(f"step {i}'s node {step.get('node_id')} is not among the workflow's nodes "
                 f"({sorted(nodes)})", run)
        if node.get("status") != "completed":
            fail(f"step {i}'s node {node['id']} is {node.get('status')}, not completed: {json.dumps(node)}", run)
        if not (node.get("content") or "").strip():
            fail(f"step {i}'s node {node['id']} has no content: {json.dumps(node)}", run)
        chain.append(node)
    if len(nodes) != STEPS:
        fail(f"the new workflow has {len(nodes)} nodes, not one per step ({STEPS}): {sorted(nodes)}", run)
    if chain[1].get("parent_id") != chain[0]["id"]:
        fail(f"the second node's parent is {chain[1].get('parent_id')}, not the first node {chain[0]['id']}", run)

    # What the subscriber saw: the run succeed, and each document written live.
    if not watcher.until(lambda m: m.get("type") == "run_update" and m.get("event") == "succeeded"
                         and m.get("run_id") == run["id"], 30):
        fail(f"no run_update succeeded reached the subscriber; it received "
             f"{[(m.get('type'), m.get('event') or m.get('update_type')) for m in watcher.messages]}", run)
    watcher.close()
    for i, node in enumerate(chain):
        deltas = sorted((m for m in watcher.messages
                         if m.get("type") == "node_delta" and m.get("node_id") == node["id"]
                         and m.get("attempt") == steps[i].get("attempts")),
                        key=lambda m: m["seq"])
        live = "".join(m["text"] for m in deltas)
        if live != node["content"]:
            fail(f"step {i}: the live text ({len(deltas)} node_delta, {len(live)} characters) is not "
                 f"the document ({len(node['content'])} characters)", run)
        print(f"chain smoke: step {i}: written live in {len(deltas)} node_delta messages")
    kinds = sorted({m.get("type") for m in watcher.messages})
    print(f"chain smoke: the subscriber received {len(watcher.messages)} messages ({', '.join(kinds)})")

    print(f"chain smoke: run succeeded within {waited:.1f}s (polled every {POLL_S:.0f}s)")
    previous = 0.0
    for i, (step, node) in enumerate(zip(steps, chain)):
        seen_done = done_at.get(step.get("id"), waited)
        model_s = step.get("latency_ms", 0) / 1000
        rate = step["output_tokens"] / model_s if model_s else 0
        words = (node.get("metrics") or {}).get("words")
        if words is None:
            words = len(node["content"].split())
        print(f"chain smoke: step {i}: ~{seen_done - previous:.0f}s ({model_s:.1f}s in the model: "
              f"{step['input_tokens']} prompt + {step['output_tokens']} completion tokens, {rate:.1f} tokens/s), "
              f"attempts {step.get('attempts')}; node {node['id']}: {words} words")
        previous = seen_done
    print(f"chain smoke: ok, {STEPS} documents in a chain by {MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
