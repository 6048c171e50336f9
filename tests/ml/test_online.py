"""Online learning (ml/online.py): the recalibration is the identity before its warm-up and converges to
a planted miscalibration, river's detectors fire on a planted loss shift and not on a stationary
stream, a retrain in the executor leaves the event loop responsive, and a challenger is promoted when
it beats the champion on the following trades and retired when it does not, every version recorded
with its training window and figures in a real SQLite registry."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import numpy as np
import pytest

from engine import store
from engine.pipeline.models import RegistryBook
from engine.store import models as rows
from ml import online
from ml import signal_model as sm
from ml.online import DriftMonitor, OnlineLearner, OnlineParams, Recalibrator, log_loss, logit, sigmoid

GRID = np.linspace(0.05, 0.95, 19)


# ---- recalibration ------------------------------------------------------------------------------------
def test_recalibration_is_the_identity_until_the_warm_up_is_over():
    rng = np.random.default_rng(3)
    cal = Recalibrator(warmup=50, learning_rate=0.05)
    for i in range(50):
        assert [cal.apply(float(p), "TREND_UP") for p in GRID] == list(GRID)  # exactly p, not approximately
        p = float(rng.uniform(0.05, 0.95))
        cal.learn(p, "TREND_UP", int(rng.random() < sigmoid(3 * logit(p) - 1)))  # far from the identity
        assert cal.active is (i == 49)
    assert max(abs(cal.apply(float(p), "TREND_UP") - p) for p in GRID) > 0.01  # now it serves what it learned


def test_recalibration_starts_at_the_identity_weights():
    cal = Recalibrator(warmup=0, learning_rate=0.01)
    assert cal.active
    assert [cal.apply(float(p)) for p in GRID] == pytest.approx(list(GRID), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recalibration_converges_to_a_planted_miscalibration(seed):
    """The model says p; the truth is sigmoid(2 logit p - 0.5): after 20,000 outcomes the layer's
    q is within 0.03 of the truth over the whole range, and the slope and intercept are found."""
    rng = np.random.default_rng(seed)
    n = 20_000
    z = rng.normal(0.0, 1.5, n)
    p = 1 / (1 + np.exp(-z))
    y = rng.random(n) < 1 / (1 + np.exp(-(2 * z - 0.5)))
    cal = Recalibrator(warmup=100, learning_rate=0.01)
    before = max(abs(cal.apply(float(g)) - sigmoid(2 * logit(g) - 0.5)) for g in GRID)
    for pi, yi in zip(p, y, strict=True):
        cal.learn(float(pi), "", int(yi))
    after = max(abs(cal.apply(float(g)) - sigmoid(2 * logit(g) - 0.5)) for g in GRID)
    assert before > 0.15
    assert after < 0.03
    state = cal.state()
    assert state["slope"] == pytest.approx(2.0, abs=0.2)
    assert state["intercept"] == pytest.approx(-0.5, abs=0.15)


def test_recalibration_learns_a_per_regime_intercept():
    rng = np.random.default_rng(5)
    cal = Recalibrator(warmup=0, learning_rate=0.01)
    for _ in range(20_000):
        regime = "SHOCK" if rng.random() < 0.5 else "RANGE_LOW"
        p = float(rng.uniform(0.1, 0.9))
        truth = sigmoid(logit(p) + (-1.0 if regime == "SHOCK" else 0.0))
        cal.learn(p, regime, int(rng.random() < truth))
    assert cal.apply(0.5, "SHOCK") == pytest.approx(sigmoid(-1.0), abs=0.04)
    assert cal.apply(0.5, "RANGE_LOW") == pytest.approx(0.5, abs=0.04)


# ---- drift --------------------------------------------------------------------------------------------
def losses(seed: int, shift_at: int | None, n: int = 3000) -> list[float]:
    """Per-trade log-losses of a calibrated model; from ``shift_at`` on, the outcomes follow the reverse."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.0, n)
    truth = z.copy()
    if shift_at is not None:
        truth[shift_at:] = -z[shift_at:]
    y = rng.random(n) < 1 / (1 + np.exp(-truth))
    return [log_loss(int(a), float(b)) for a, b in zip(y, 1 / (1 + np.exp(-z)), strict=True)]


def fired(stream: list[float]) -> dict[str, list[int]]:
    monitor = DriftMonitor(ph_delta=0.05, ph_threshold=20.0, adwin_delta=0.002, window=100)
    out: dict[str, list[int]] = {"page_hinkley": [], "adwin": []}
    for i, loss in enumerate(stream):
        for name in monitor.update(loss):
            out[name].append(i)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_drift_detectors_stay_quiet_on_a_stationary_stream(seed):
    assert fired(losses(seed, None)) == {"page_hinkley": [], "adwin": []}


@pytest.mark.parametrize("seed", range(8))
def test_drift_detectors_fire_soon_after_a_planted_shift(seed):
    found = fired(losses(seed, shift_at=1500))
    for name in ("page_hinkley", "adwin"):
        assert found[name], name
        assert 1500 <= found[name][0] <= 1700, (name, found[name])


def test_the_learner_records_a_drift_of_its_served_loss(tmp_path):
    learner = OnlineLearner(Constant(), "v0", OnlineParams(retrain_every=10**6), model_dir=tmp_path)
    rng = np.random.default_rng(0)
    for i in range(2000):
        key = f"s{i}"
        learner.score(key, np.zeros(len(sm.FEATURES)), "sweep_reversal", "", i)
        learner.learn(key, int(rng.random() < (0.5 if i < 1000 else 0.97)), i + 1)
    drifts = [e for e in learner.events if e["event"] == "drift"]
    assert drifts and drifts[0]["trade"] >= 1000


class Constant:
    """A stand-in classifier that says 0.5 for every row (the scikit-learn interface the scorer asks)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


# ---- retraining, champion/challenger, the registry ---------------------------------------------------
N_FEATURES = len(sm.FEATURES)


def planted(rng: np.random.Generator, n: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose first column decides the outcome: P(y = 1) = sigmoid(sign * 3 x)."""
    X = rng.normal(0.0, 1.0, (n, N_FEATURES))
    y = (rng.random(n) < 1 / (1 + np.exp(-sign * 3 * X[:, 0]))).astype(np.int64)
    return X, y


def fitted(X: np.ndarray, y: np.ndarray, seed: int = 0):
    n = len(y)
    t0 = np.arange(n, dtype=np.float64) * 10
    data = sm.SignalSet(X, y, t0, t0 + 5, np.zeros(n, np.int64), np.zeros(n), np.ones(n),
                        np.full(n, "sweep_reversal"), np.full(n, ""), np.full(n, ""))
    return sm.train(data, 30, n_splits=3, seed=seed)


PARAMS = OnlineParams(warmup_trades=20, retrain_every=300, retrain_window=300, promote_trades=150, max_iter=30,
                      folds=3)


def feed(learner: OnlineLearner, X: np.ndarray, y: np.ndarray, start: int) -> None:
    for i in range(len(y)):
        key = f"s{start + i}"
        learner.score(key, X[i], "sweep_reversal", "", (start + i) * 10)
        learner.learn(key, int(y[i]), (start + i) * 10 + 5)


def run_trial(tmp_path, later_sign: float, executor) -> tuple[OnlineLearner, list]:
    """An uninformed champion (0.5 for every signal); 300 trades of sign -1 (the retrain window), then 150
    of ``later_sign``: the challenger learned sign -1, so it beats 0.5 on sign -1 and loses on sign +1."""
    rng = np.random.default_rng(11)
    champion = Constant()
    db = str(tmp_path / "registry.db")
    store.connect(db).close()
    learner = OnlineLearner(champion, "signal-champion", PARAMS, model_dir=tmp_path / "online",
                            book=RegistryBook(db), fit_executor_factory=executor)
    X, y = planted(rng, 300, -1.0)
    feed(learner, X, y, 0)
    assert learner.pending is not None  # the periodic retrain started on the 300th trade
    learner.pending.result(timeout=300)  # the test waits; the learner never does
    X2, y2 = planted(rng, 150, later_sign)
    feed(learner, X2, y2, 300)
    learner.close()
    conn = store.connect(db)
    try:
        return learner, rows.list_models(conn, "signal")
    finally:
        conn.close()


def test_a_better_challenger_is_promoted_and_recorded(tmp_path):
    learner, models = run_trial(tmp_path, -1.0, None)
    (row,) = models
    assert row.status == "champion"
    assert learner.version == row.version  # it now serves
    assert learner.recalibration.n == 0  # the layer restarts at the identity for the new model
    window = row.training["window"]
    assert (window["first_trade_ts"], window["last_trade_ts"], window["n"]) == (0, 299 * 10 + 5, 300)
    assert window["reason"] == "periodic" and window["parent"] == "signal-champion"
    assert row.metrics["train_log_loss"] < 0.69 and row.metrics["shadow_trades"] == 150
    assert row.metrics["shadow_log_loss"] < row.metrics["champion_shadow_log_loss"]
    assert row.metrics["promoted"] is True
    assert [e["event"] for e in learner.events if e["event"] != "drift"] == ["retrain", "challenger", "promoted"]


def test_a_worse_challenger_is_retired_and_recorded(tmp_path):
    learner, models = run_trial(tmp_path, +1.0, None)
    (row,) = models
    assert row.status == "retired"
    assert learner.version == "signal-champion"
    assert row.metrics["shadow_log_loss"] > row.metrics["champion_shadow_log_loss"]
    assert row.metrics["promoted"] is False
    assert row.training["window"]["n"] == 300


def test_the_challenger_file_is_the_registered_one(tmp_path):
    from ml.registry import load_model

    learner, models = run_trial(tmp_path, -1.0, None)
    (row,) = models
    model = load_model(row.path, row.sha256)  # refused if the hash or a type did not match
    X, _ = planted(np.random.default_rng(2), 20, 1.0)
    assert np.allclose(sm.predict(model, X), [learner.one_row.probability(x) for x in X])


# ---- the event loop -----------------------------------------------------------------------------------
async def ticker(lags: list[float], stop) -> None:
    """Sleeps 1 ms at a time and records by how much each sleep overran, until ``stop()``."""
    while not stop():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - start - 0.001)


def helper_cpu() -> float:
    """CPU seconds used so far by every thread of this process but the main one (the event loop's)."""
    main = threading.main_thread().ident
    total = 0.0
    for thread in threading.enumerate():
        if thread.ident is not None and thread.ident != main:
            with contextlib.suppress(OSError, ProcessLookupError):
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def test_a_retrain_in_the_executor_leaves_the_event_loop_responsive(tmp_path):
    """A ticker task sleeping 1 ms measures its own oversleep from the start of a retrain (the fit in the
    spawned worker, which saves and verifies the file; then the challenger registered and its scorer
    built from arrays in this process) until the challenger is ready.

    What the learner controls is held to the issue's 10 ms: the engine's thread spends under 10 ms in
    it. The other threads of this process together use under 50 ms of CPU during the whole retrain:
    importing skops on the retrain thread once took 0.5 s of CPU there and stalled the loop 15-20 ms;
    with other jobs loading the machine these threads read 10.5 and 15.6 ms in two runs (CPU time grows
    with contention), so a bound of 10 ms failed on a busy machine without any stall of the loop. The
    ticker's worst oversleep is held to 10 ms above the worst the same ticker sees right after, as
    long, with nothing of ours running: on two cores shared with other work that alone reaches 5-11 ms
    (measured: 5.5-6.6 ms during a retrain, alone in the process).
    """
    rng = np.random.default_rng(4)
    db = str(tmp_path / "registry.db")
    store.connect(db).close()
    learner = OnlineLearner(Constant(), "v0", OnlineParams(retrain_every=10**6, retrain_window=300, max_iter=10),
                            model_dir=tmp_path, book=RegistryBook(db), fit_executor_factory=online.process_executor)
    X, y = planted(rng, 300, 1.0)
    feed(learner, X, y, 0)
    learner.start().result(timeout=120)  # the worker process starts with the run, before any retrain

    async def main() -> tuple[list[float], list[float], float, float, float]:
        during: list[float] = []
        cpu0 = helper_cpu()
        started = time.perf_counter()
        future = learner.start_retrain("test")
        in_learner = time.perf_counter() - started
        assert future is not None
        task = asyncio.create_task(ticker(during, future.done))
        challenger = await asyncio.wrap_future(future)
        await task
        took = time.perf_counter() - started
        assert challenger is not None
        assert learner.poll()  # taking the finished challenger: also on the engine's thread
        in_learner += time.perf_counter() - started - took
        cpu = helper_cpu() - cpu0
        idle: list[float] = []
        end = time.perf_counter() + took
        await ticker(idle, lambda: time.perf_counter() > end)
        return during, idle, took, in_learner, cpu

    try:
        during, idle, took, in_learner, cpu = asyncio.run(main())
    finally:
        learner.close()
    assert took > 0.1 and len(during) > 50  # the retrain took a while and the ticker ran throughout
    assert in_learner < 0.010, f"{in_learner * 1000:.1f} ms on the engine's thread"
    assert cpu < 0.050, f"{cpu * 1000:.1f} ms of CPU on this process's other threads during the retrain"
    assert max(during) < 0.010 + max(idle), f"worst event-loop lag {max(during) * 1000:.1f} ms while a retrain " \
                                            f"ran, {max(idle) * 1000:.1f} ms without it"
    print(f"retrain {took:.2f} s: ticker oversleep median {np.median(during) * 1000:.2f} ms, "
          f"p99 {np.quantile(during, 0.99) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms; engine thread "
          f"{in_learner * 1000:.2f} ms; helper threads' CPU {cpu * 1000:.2f} ms; idle max {max(idle) * 1000:.1f} ms")
