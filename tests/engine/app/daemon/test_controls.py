"""Control endpoints need the bearer token; each control changes what the pipeline does; the token is never
logged; a non-loopback bind without a token is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.engine.app.daemon.helpers import TOKEN, DaemonProcess, wait_until

CONTROLS = [
    ("/api/control/strategies/queue_imbalance_probe/pause", None),
    ("/api/control/strategies/queue_imbalance_probe/resume", None),
    ("/api/control/flatten", None),
    ("/api/control/kill-switch", {"reason": "test"}),
    ("/api/control/kill-switch/reset", None),
    ("/api/control/risk", {"max_position": 10}),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("controls")
    process = DaemonProcess(tmp, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=100",
                            "--set", "risk.sizing=fixed").start()  # every rejection is then a check's
    process.wait_ready()
    yield process
    assert process.stop() == 0
    assert TOKEN not in process.log_path.read_text()


@pytest.mark.parametrize(("path", "payload"), CONTROLS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_control_refuses_a_missing_or_wrong_token(daemon, path, payload, token):
    """Without the bearer token, or with another one, a control is refused with 401 and changes nothing."""
    before = daemon.get("/api/control")[1]
    status, body = daemon.post(path, payload, token=token)
    assert (status, body) == (401, {"error": "missing or wrong bearer token"})
    after = daemon.get("/api/control")[1]
    assert (after["kill_switch"], after["paused"], after["risk"]) == (before["kill_switch"], before["paused"],
                                                                      before["risk"])


def _strategies(daemon) -> list[str]:
    return daemon.get("/api/control")[1]["strategies"]


def _signals_after(daemon, since: int) -> list[dict]:
    return wait_until(lambda: daemon.get(f"/api/signals?since={since}")[1], "a signal")


def test_pause_and_resume_every_strategy(daemon):
    """Paused strategies are listed; their later signals are rejected (as paused unless sizing refused them
    first); resume lifts the pause."""
    names = _strategies(daemon)
    assert names
    since = max([s["ts_recv"] for s in daemon.get("/api/signals")[1]], default=0)
    for name in names:
        assert daemon.post(f"/api/control/strategies/{name}/pause") == (200, {"strategy": name, "paused": True})
    assert daemon.get("/api/control")[1]["paused"] == sorted(names)
    signals = _signals_after(daemon, since)
    assert {s["decision"] for s in signals} == {"rejected"}
    assert "strategy paused" in {s["reason"] for s in signals}
    for name in names:
        assert daemon.post(f"/api/control/strategies/{name}/resume")[0] == 200
    assert daemon.get("/api/control")[1]["paused"] == []


def test_pausing_an_unknown_strategy_is_404(daemon):
    """An unknown strategy name is refused naming the running ones."""
    status, body = daemon.post("/api/control/strategies/nope/pause")
    assert status == 404
    assert body["error"] == f"unknown strategy 'nope'; running: {', '.join(sorted(_strategies(daemon)))}"


def _flat(daemon) -> bool:
    return all(p["qty"] == 0 for p in daemon.get("/api/positions")[1]["positions"])


def test_flatten_exits_the_open_positions(daemon):
    """Flatten lists the open positions and sends their exits; the positions reach zero as the exits fill."""
    def flatten_an_open_position() -> dict | None:
        # a position can close on its own between seeing it and flattening; then flatten lists nothing: retry
        if _flat(daemon):
            return None
        status, body = daemon.post("/api/control/flatten")
        assert status == 200
        return body if body["orders"] else None

    flattened = wait_until(flatten_an_open_position, "an open position to flatten")
    closing = {order["symbol"] for order in flattened["orders"]}

    def closed() -> bool:
        positions = {p["symbol"]: p["qty"] for p in daemon.get("/api/positions")[1]["positions"]}
        return all(positions[symbol] == 0 for symbol in closing)

    wait_until(closed, "the exits to fill")


def test_kill_switch_flattens_rejects_every_signal_until_reset(daemon):
    """With the kill switch engaged positions go flat and new signals are rejected; reset lifts it."""
    assert daemon.post("/api/control/kill-switch", {"reason": "drill"}) == (200, {"kill_switch": True,
                                                                                  "reason": "drill"})
    wait_until(lambda: _flat(daemon), "flat positions")
    since = max([s["ts_recv"] for s in daemon.get("/api/signals")[1]], default=0)
    signals = _signals_after(daemon, since)
    assert {s["decision"] for s in signals} == {"rejected"}
    assert "kill switch engaged: drill" in {s["reason"] for s in signals}
    assert _flat(daemon)
    assert "\nchimera_kill_switch_engaged 1.0\n" in daemon.request("GET", "/metrics")[1]
    assert daemon.post("/api/control/kill-switch/reset") == (200, {"kill_switch": False})
    control = daemon.get("/api/control")[1]
    assert (control["kill_switch"], control["latched"]) == ({"engaged": False, "reason": ""}, None)


def test_risk_limits_change_after_validation(daemon):
    """A valid risk-limit change applies; one outside its range or unknown is refused and nothing changes."""
    assert daemon.post("/api/control/risk", {"max_position": 300, "order_size": 50})[1]["risk"]["max_position"] == 300
    assert daemon.post("/api/control/risk", {"max_position": 0}) == (
        400, {"error": "risk limits: Expected `int` >= 1 - at `$.max_position`"})
    status, body = daemon.post("/api/control/risk", {"order_size": 400})
    assert status == 400 and "order_size <= max_order_size and max_position" in body["error"]
    assert daemon.post("/api/control/risk", {"max_postion": 3}) == (
        400, {"error": "unknown risk limit 'max_postion'; known: max_position, max_order_size, order_size, "
                       "max_orders_per_second"})
    assert daemon.get("/api/control")[1]["risk"]["max_position"] == 300
    assert daemon.post("/api/control/risk", ["not", "an", "object"]) == (400, {"error": "body must be a JSON object"})


def test_controls_are_disabled_without_a_token_configured(tmp_path):
    """A daemon started without the token refuses every control with 401, naming the variable to set."""
    process = DaemonProcess(tmp_path, token=None).start()
    try:
        assert process.post("/api/control/flatten", token="anything") == (
            401, {"error": "control is disabled: set the token in $CHIMERA_API_TOKEN"})
    finally:
        assert process.stop() == 0


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path):
    """--host 0.0.0.0 without the token exits 2 with one line, before binding anything."""
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "engine.app.cli", "daemon", "--host", "0.0.0.0", "--port", "0",
                             "--db", str(tmp_path / "d.db")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ("chimera: error: --host 0.0.0.0: binding beyond loopback needs the control token "
                             "(set $CHIMERA_API_TOKEN)\n")
