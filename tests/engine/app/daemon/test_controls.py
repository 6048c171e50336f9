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
    process = DaemonProcess(tmp, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=100").start()
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


def test_pause_and_resume_a_strategy(daemon):
    """Pausing a strategy lists it as paused and its later signals are rejected as paused; resume lifts it."""
    assert daemon.post("/api/control/strategies/queue_imbalance_probe/pause") == (
        200, {"strategy": "queue_imbalance_probe", "paused": True})
    assert daemon.get("/api/control")[1]["paused"] == ["queue_imbalance_probe"]
    since = max([s["ts_recv"] for s in daemon.get("/api/signals")[1]], default=0)
    signals = wait_until(lambda: daemon.get(f"/api/signals?since={since}")[1], "a signal while paused")
    assert {(s["decision"], s["reason"]) for s in signals} == {("rejected", "strategy paused")}
    assert daemon.post("/api/control/strategies/queue_imbalance_probe/resume")[0] == 200
    assert daemon.get("/api/control")[1]["paused"] == []


def test_pausing_an_unknown_strategy_is_404(daemon):
    """An unknown strategy name is refused naming the running ones."""
    assert daemon.post("/api/control/strategies/nope/pause") == (
        404, {"error": "unknown strategy 'nope'; running: queue_imbalance_probe"})


def test_kill_switch_rejects_every_signal_until_reset_and_flatten_closes_positions(daemon):
    """With the kill switch engaged signals are rejected; flatten brings every position to zero; reset lifts it."""
    wait_until(lambda: any(p["qty"] for p in daemon.get("/api/positions")[1]["positions"]), "an open position")
    assert daemon.post("/api/control/kill-switch", {"reason": "drill"}) == (200, {"kill_switch": True,
                                                                                  "reason": "drill"})
    status, flattened = daemon.post("/api/control/flatten")
    assert status == 200 and flattened["orders"]
    assert all(order["position"] == 0 for order in flattened["orders"])
    assert [p["qty"] for p in daemon.get("/api/positions")[1]["positions"]] == [0, 0]
    since = max(s["ts_recv"] for s in daemon.get("/api/signals")[1])
    signals = wait_until(lambda: daemon.get(f"/api/signals?since={since}")[1], "a signal under the kill switch")
    assert {(s["decision"], s["reason"]) for s in signals} == {("rejected", "kill switch engaged: drill")}
    assert [p["qty"] for p in daemon.get("/api/positions")[1]["positions"]] == [0, 0]
    assert "\nchimera_kill_switch_engaged 1.0\n" in daemon.request("GET", "/metrics")[1]
    assert daemon.post("/api/control/kill-switch/reset") == (200, {"kill_switch": False})
    assert daemon.get("/api/control")[1]["kill_switch"] == {"engaged": False, "reason": ""}


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
