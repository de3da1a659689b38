"""`localstack/browser-smoke.sh`: the local dashboard (and /docs) in a real browser.

Against a running stack (the gateway at $BASE_URL, its emulator at $MOTO_URL): signs a fresh
user in as localstack/conformance.py does (register, the verification link from the emulator's
SES, verify, log in), makes some traffic (workflows created and listed, a few 4xx answers), then
drives headless Chromium over the Chrome DevTools Protocol (the `websockets` client of
localstack/requirements.txt) to load /_local/dashboard, waits (polling, with a deadline) until
the "API: requests by status class" chart draws the 2xx and 4xx traffic, checks the alarms
table, and saves a screenshot to $SCREENSHOT (default /tmp/dashboard.png). Then loads /docs
and waits until its route list renders all four documents, saving docs.png beside it.

    BASE_URL=http://127.0.0.1:3700 MOTO_URL=http://127.0.0.1:5700 python localstack/browser-smoke.py

Exits non-zero on any failure.
"""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import websockets

# The same sign-in as the conformance run (register, the emailed link, verify, log in).
import conformance

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:3000").rstrip("/")
MOTO_URL = os.environ.get("MOTO_URL", "http://127.0.0.1:5000").rstrip("/")
SCREENSHOT = os.environ.get("SCREENSHOT", "/tmp/dashboard.png")
DOCS_SCREENSHOT = os.path.join(os.path.dirname(SCREENSHOT) or ".", "docs.png")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CDP_PORT = int(os.environ.get("BROWSER_SMOKE_CDP_PORT", "9333"))
DEADLINE_S = float(os.environ.get("BROWSER_SMOKE_DEADLINE_S", "60"))
REQUESTS_CHART = "API: requests by status class"


def fail(message):
    sys.exit(f"browser smoke: {message}")


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE_URL + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def call_json(method, path, body=None, token=None):
    status, raw = call(method, path, body, token)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def traffic(token):
    """Some 2xx and some 4xx answers of api-workflows; returns how many of each."""
    ok = client_errors = 0
    for i in range(3):
        status, body = call_json("POST", "/api/v3/workflows", {"name": f"Browser smoke {i}"}, token)
        if status not in (200, 201):
            fail(f"creating a workflow answered {status}: {body}")
        ok += 1
    status, body = call_json("GET", "/api/v3/workflows", token=token)
    if status != 200:
        fail(f"listing workflows answered {status}: {body}")
    ok += 1
    for method, path, body, auth in [
        ("GET", f"/api/v3/workflows/{uuid.uuid4()}", None, True),  # not found
        ("POST", "/api/v3/workflows", {"no_such_field": 1}, True),  # invalid body
        ("GET", "/api/v3/workflows", None, False),  # not signed in
    ]:
        status, answer = call_json(method, path, body, token if auth else None)
        if not 400 <= status < 500:
            fail(f"{method} {path} answered {status}, expected a 4xx: {answer}")
        client_errors += 1
    return ok, client_errors


class Browser:
    """Headless Chromium and one page, over the DevTools Protocol."""

    def __init__(self):
        if not CHROMIUM:
            fail("chromium not found (Debian: apt-get install -y chromium; or set CHROMIUM)")
        self.profile = tempfile.mkdtemp(prefix="browser-smoke-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--remote-debugging-port={CDP_PORT}", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.profile}", "--window-size=1500,1900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ws = None
        self.next_id = 0
        self.console = []

    def page_url(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"chromium exited ({self.process.returncode}) during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{CDP_PORT}/json/list", timeout=2) as r:
                    for target in json.load(r):
                        if target.get("type") == "page":
                            return target["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.2)
        fail(f"chromium's DevTools endpoint did not answer on port {CDP_PORT} within 30s")

    async def open(self):
        self.ws = await websockets.connect(self.page_url(), max_size=None, open_timeout=30)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": 1500, "height": 1900, "deviceScaleFactor": 1, "mobile": False})

    async def send(self, method, params=None):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=60))
            if message.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(message["params"]["exceptionDetails"])[:500])
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            if message.get("id") == my_id:
                if "error" in message:
                    fail(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression):
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    async def navigate(self, url):
        await self.send("Page.navigate", {"url": url})

    async def until(self, what, expression, accept, deadline_s=DEADLINE_S):
        deadline = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < deadline:
            last = await self.evaluate(expression)
            if last is not None and accept(last):
                return last
            await asyncio.sleep(0.25)
        console = "\n".join(self.console[-10:])
        fail(f"timed out after {deadline_s}s waiting for {what}; last seen: {json.dumps(last)[:2000]}"
             + (f"\npage console:\n{console}" if console else ""))

    async def screenshot(self, path):
        # The whole page, not only the window.
        size = await self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        width, height = (size or [1500, 1900])
        result = await self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 6000), "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(result["data"]))

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


CHART_STATE = """(() => {
  const w = document.querySelector('[data-title="%s"]');
  if (!w) return null;
  const series = [...w.querySelectorAll('g.series')].map(g => [g.dataset.label, Number(g.dataset.points)]);
  return {points: Number(w.dataset.points), available: w.dataset.available, series,
          polylines: w.querySelectorAll('polyline, circle').length,
          alarms: document.querySelectorAll('#alarms tbody tr').length,
          alarmStates: [...document.querySelectorAll('#alarms tbody tr')].map(r => r.dataset.state),
          unavailable: document.querySelectorAll('[data-available="false"]').length};
})()""" % REQUESTS_CHART

DOCS_STATE = """(() => {
  const routes = document.querySelectorAll('[data-route]');
  const docs = document.querySelectorAll('[data-document]');
  const errors = [...document.querySelectorAll('.error')].map(e => e.textContent);
  return {routes: routes.length, documents: docs.length, channels: document.querySelectorAll('[data-channel]').length,
          errors, title: document.title, rendered: document.body.dataset.rendered === 'true'};
})()"""


def shows_traffic(state):
    by_label = dict(state["series"])
    two = sum(n for label, n in by_label.items() if label.endswith("2xx"))
    four = sum(n for label, n in by_label.items() if label.endswith("4xx"))
    return state["points"] > 0 and two > 0 and four > 0 and state["polylines"] > 0 and state["alarms"] > 0


async def browse():
    browser = Browser()
    try:
        await browser.open()
        await browser.navigate(BASE_URL + "/_local/dashboard")
        state = await browser.until("the requests chart to show the 2xx and 4xx traffic", CHART_STATE, shows_traffic)
        print(f"browser smoke: dashboard: {state['points']} points in {REQUESTS_CHART!r}: "
              + ", ".join(f"{label} {n}" for label, n in state["series"] if n)
              + f"; {state['alarms']} alarms ({', '.join(sorted(set(state['alarmStates'])))});"
              + f" {state['unavailable']} widgets not available locally")
        if state["unavailable"] == 0:
            fail("no widget is marked not available locally (the AWS/* ones should be)")
        await browser.screenshot(SCREENSHOT)
        print(f"browser smoke: screenshot {SCREENSHOT}")

        status, _ = call("GET", "/docs")
        if status != 200:
            fail(f"GET /docs answered {status}")
        await browser.navigate(BASE_URL + "/docs")
        docs = await browser.until("the /docs route list to render", DOCS_STATE,
                                   lambda s: s["rendered"] and s["routes"] > 0 and s["documents"] >= 4 and s["channels"] > 0)
        if docs["errors"]:
            fail(f"/docs could not render: {docs['errors']}")
        print(f"browser smoke: /docs: {docs['documents']} documents, {docs['routes']} routes, "
              f"{docs['channels']} channels")
        await browser.screenshot(DOCS_SCREENSHOT)
        print(f"browser smoke: screenshot {DOCS_SCREENSHOT}")
    finally:
        await browser.close()


def main():
    token = conformance.sign_in()
    ok, client_errors = traffic(token)
    print(f"browser smoke: traffic: {ok} 2xx and {client_errors} 4xx answers of api-workflows")
    # The gateway sees the functions' EMF lines: its data shows them before the page is loaded.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status, body = call_json("GET", "/_local/dashboard/data?minutes=15")
        if status != 200:
            fail(f"/_local/dashboard/data answered {status}: {body}")
        widget = next((w for w in body["widgets"] if w.get("title") == REQUESTS_CHART), None)
        if widget is None:
            fail(f"the dashboard has no widget {REQUESTS_CHART!r}")
        seen = {s["label"]: sum(p[1] for p in s["points"]) for s in widget["series"]}
        if seen.get("ApiWorkflows 2xx", 0) >= ok and seen.get("ApiWorkflows 4xx", 0) >= client_errors:
            break
        if time.monotonic() > deadline:
            fail(f"/_local/dashboard/data did not show the traffic within {DEADLINE_S}s: {seen}")
        time.sleep(0.25)
    asyncio.run(browse())
    print("browser smoke: ok")


if __name__ == "__main__":
    main()
