"""A real daemon in a subprocess on 127.0.0.1 (a free port chosen by the OS, read from its log) and a
small HTTP client over real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TOKEN = "test-token-0123456789abcdef"
STARTUP_S = 90.0  # the longest a daemon may take to listen or become ready before a test fails


class DaemonProcess:
    def __init__(self, tmp: Path, *args: str, token: str | None = TOKEN, config: Path | None = None,
                 db: Path | None = None) -> None:
        self.log_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self.db = db or tmp / "daemon.db"
        env = {k: v for k, v in os.environ.items() if k != "CHIMERA_API_TOKEN"}
        if token:
            env["CHIMERA_API_TOKEN"] = token
        command = [sys.executable, "-m", "engine.app.cli", "daemon", "--port", "0", "--db", str(self.db),
                   "--log-json", "--log-level", "info", *args]
        if config is not None:
            command += ["-c", str(config)]
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                        cwd=Path(__file__).resolve().parents[4])
        self.port = None

    def lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "raw", "text": line})
        return out

    def wait_log(self, event: str, count: int = 1) -> dict:
        """Wait until ``event`` has been logged ``count`` times; return the last such line."""
        deadline = time.monotonic() + STARTUP_S
        while True:
            found = [line for line in self.lines() if line.get("event") == event]
            if len(found) >= count:
                return found[-1]
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {event!r} in the daemon's log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def start(self) -> DaemonProcess:
        self.port = self.wait_log("daemon_listening")["port"]
        return self

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + STARTUP_S
        while True:
            status, body = self.get("/readyz")
            if status == 200:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"never ready: {body}")
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
                headers: dict | None = None) -> tuple[int, object, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                         headers=dict(headers or {}))
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, head = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, head = error.code, error.read(), dict(error.headers)
        kind = head.get("Content-Type", "")
        return status, (json.loads(raw) if kind.startswith("application/json") else raw.decode()), head

    def get(self, path: str) -> tuple[int, object]:
        status, body, _ = self.request("GET", path)
        return status, body

    def post(self, path: str, payload: dict | None = None, token: str | None = TOKEN) -> tuple[int, object]:
        status, body, _ = self.request("POST", path, json.dumps(payload).encode() if payload is not None else None,
                                       token)
        return status, body

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 120.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.log.close()
        return code


def wait_until(check, what: str, timeout: float = STARTUP_S):
    """Call ``check`` until it returns something truthy (a condition on the running daemon); return it."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value
