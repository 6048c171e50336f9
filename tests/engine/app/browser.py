"""A headless Chromium driven over the DevTools protocol (a small websocket client, no downloaded browser).

Used by the report's and the dashboard's browser tests: open a page, wait for it to load (or for an
expression to hold), collect every console error and uncaught exception, and screenshot an element.
Chromium is Debian's package (``.ci/run`` installs it); ``find_browser`` returns None when none is
installed.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessPage:
    """One headless browser with one page; a context manager (the browser is stopped on exit)."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000, timeout_s: float = 60.0) -> None:
        self.binary = binary
        self.width = width
        self.height = height
        self.timeout_s = timeout_s
        self.errors: list[str] = []
        self._id = 0

    def __enter__(self) -> HeadlessPage:
        import websocket

        # Chromium's helper processes can still write into the profile just after the browser exits:
        # a leftover file there must not fail the test (the directory is temporary either way)
        self.profile = tempfile.TemporaryDirectory(prefix="chimera-browser-", ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile.name}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        from urllib.request import urlopen

        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout_s)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        sock = getattr(self, "socket", None)
        if sock is not None:
            sock.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.profile.cleanup()

    def call(self, method: str, **params) -> dict:
        """Send one command and return its result; events met meanwhile are inspected for errors."""
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", "log error"))
        elif method == "Page.loadEventFired":
            self.loaded = True

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.loaded = False
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout_s
        while not self.loaded:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: no load event within {self.timeout_s:g} s")
            self._event(json.loads(self.socket.recv()))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0):
        """Poll ``expression`` (every 0.1 s of page time, events read meanwhile) until truthy; return it."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{expression}: still false after {timeout_s:g} s")
            self.evaluate("new Promise(done => setTimeout(done, 100))")
        return value

    def screenshot(self, selector: str) -> bytes:
        """PNG bytes of the element matching ``selector`` (scrolled into view)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; })()")
        clip = {**box, "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
        return base64.b64decode(data)
