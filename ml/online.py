"""Online learning over the signal classifier (SPEC section 6, "Online updates").

Four parts, all driven by the trades the execution stage closes (``OnlineLearner.on_trade_closed``):

- **Recalibration.** ``logit q = logit p + w . x`` with ``x = (logit p, 1, regime one-hot)`` (Platt
  scaling on the classifier's logit, a slope, an intercept and a per-regime intercept), learned one
  closed trade at a time by stochastic gradient descent on the log-loss: river's ``Log`` loss and
  ``SGD`` optimiser. ``w = 0`` is the identity, so the layer starts as ``q = p``; it is served only
  once ``warmup_trades`` trades have closed (before that ``q = p`` exactly). A constant learning rate
  forgets old trades exponentially (SPEC's sample decay). Outcome = the trade's meta-label, the
  signal classifier's own rule (``signal_model.trip_label``: target net win 1, initial stop 0, else
  the sign of the net PnL).
- **Drift.** Each closed trade's log-loss of the served ``q`` feeds river's Page-Hinkley (an increase
  of the mean loss) and ADWIN (its adaptive window of recent losses: a change of their mean); a drift
  starts a retrain at once and is recorded.
- **Retraining.** Every ``retrain_every`` closed trades (or on a drift), the signal classifier is
  fitted again (``signal_model.train``: the same model, uniqueness weights and purged calibration) on
  the latest ``retrain_window`` labelled trades, in an executor: a spawned worker process at a lower
  priority (started with the run), which also saves the model with skops, loads the file back
  verified (SHA-256, trusted types) and returns the scorer's plain arrays
  (``OneRowCalibrated.arrays``). The engine's thread only copies the window out and, on a later
  closed trade, takes the finished challenger; it never waits and never deserialises a model (on two
  busy cores, a skops load on a thread of the engine's process stalled the event loop up to 150 ms).
- **Champion/challenger.** A retrained model is registered as a challenger (``ModelBook``: its
  training window, first and last trade time and count, and its figures), then scored in shadow on
  every trade that closed after its training window (the catch-up on trades closed while it was being
  fitted, then each new one). After ``promote_trades`` such trades it replaces the champion when its
  mean log-loss is lower than the champion's served ``q`` on the same trades, and is retired
  otherwise; the decision and both log-losses are recorded. A promotion resets the recalibration (it
  was learned on the old model's output) to the identity and the warm-up count.

Nothing here waits on the event loop or on the executor; registry records go, in order, through a
thread of their own; ``engine/pipeline/models.py`` supplies the registry (``RegistryBook``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ml.signal_model import OneRowCalibrated

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before a logit or a log-loss
DRIFT_RETRAIN_MIN = 50  # a drift starts a retrain once at least this many trades (and the warm-up) closed
OPEN_SIGNALS = 100_000  # scored signals remembered while their trade is open (the oldest are dropped)


@dataclass(frozen=True)
class OnlineParams:
    """``[ml.online]`` (ranges in ``engine/config/tree.py``)."""

    warmup_trades: int = 100
    learning_rate: float = 0.01
    loss_window: int = 100
    ph_delta: float = 0.05
    ph_threshold: float = 20.0
    adwin_delta: float = 0.002
    retrain_every: int = 500
    retrain_window: int = 2000
    promote_trades: int = 200
    folds: int = 3
    max_iter: int = 100
    seed: int = 0


def log_loss(y: int, p: float) -> float:
    p = min(1.0 - EPS, max(EPS, p))
    return -math.log(p) if y else -math.log(1.0 - p)


def logit(p: float) -> float:
    p = min(1.0 - EPS, max(EPS, p))
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Recalibrator:
    """``logit q = logit p + w . (logit p, 1, regime one-hot)``, learned by river's SGD on river's log loss.

    Starts at ``w = 0`` (the identity) and is applied only once ``warmup`` outcomes were learned.
    """

    def __init__(self, warmup: int, learning_rate: float) -> None:
        from river import optim

        self.warmup = warmup
        self.learning_rate = learning_rate
        self.loss = optim.losses.Log()
        self.optimizer = optim.SGD(learning_rate)
        self.weights: dict[Hashable, float] = {}
        self.n = 0

    @staticmethod
    def features(z: float, regime: str) -> dict[str, float]:
        x = {"logit_p": z, "bias": 1.0}
        if regime:
            x[f"regime:{regime}"] = 1.0
        return x

    def _raw(self, z: float, x: dict[str, float]) -> float:
        w = self.weights
        return z + sum(w.get(k, 0.0) * v for k, v in x.items())

    @property
    def active(self) -> bool:
        return self.n >= self.warmup

    def apply(self, p: float, regime: str = "") -> float:
        """The recalibrated probability; exactly ``p`` during the warm-up."""
        if not self.active:
            return p
        z = logit(p)
        return sigmoid(self._raw(z, self.features(z, regime)))

    def learn(self, p: float, regime: str, y: int) -> None:
        z = logit(p)
        x = self.features(z, regime)
        for k in x:
            self.weights.setdefault(k, 0.0)
        g = self.loss.gradient(y_true=bool(y), y_pred=self._raw(z, x))
        self.optimizer.step(w=self.weights, g={k: g * v for k, v in x.items()})
        self.n += 1

    def state(self) -> dict:
        return {"trades": self.n, "active": self.active, "slope": 1.0 + self.weights.get("logit_p", 0.0),
                "intercept": self.weights.get("bias", 0.0)}


class DriftMonitor:
    """River's Page-Hinkley (mean loss going up) and ADWIN (a change in the mean of its adaptive window)
    over a stream of per-trade log-losses; ``rolling`` is the mean of the latest ``window`` losses."""

    def __init__(self, ph_delta: float, ph_threshold: float, adwin_delta: float, window: int) -> None:
        from river import drift

        self.page_hinkley = drift.PageHinkley(min_instances=30, delta=ph_delta, threshold=ph_threshold, mode="up")
        self.adwin = drift.ADWIN(delta=adwin_delta)
        self.recent: deque[float] = deque(maxlen=window)
        self.n = 0

    def update(self, loss: float) -> list[str]:
        """Feed one loss; the names of the detectors that signalled a drift on it."""
        self.n += 1
        self.recent.append(loss)
        self.page_hinkley.update(loss)
        self.adwin.update(loss)
        fired = []
        if self.page_hinkley.drift_detected:
            fired.append("page_hinkley")
        if self.adwin.drift_detected:
            fired.append("adwin")
        return fired

    @property
    def rolling(self) -> float | None:
        return float(np.mean(self.recent)) if self.recent else None


class ModelBook(Protocol):
    """Where model versions are recorded (the run's registry: ``engine/pipeline/models.py``)."""

    def register(self, *, version: str, path: str, sha256: str, training: dict, metrics: dict) -> None: ...

    def decide(self, version: str, promoted: bool, metrics: dict) -> None: ...


class ClosedTrip(Protocol):
    """What the learner reads of a closed round trip (``engine.execution.stage.RoundTrip``)."""

    trip_id: str
    instrument_id: int
    qty: int
    exit_ts: int
    exit_reason: str
    initial_stop: float
    stop: float
    entry_notional: float

    @property
    def entry_price(self) -> float: ...


@dataclass
class Scored:
    """A signal as it was scored, waiting for its trade to close."""

    row: np.ndarray
    p_model: float  # the champion's probability (with its regime intercepts)
    q: float  # the served probability (recalibrated after the warm-up)
    strategy: str
    regime: str
    ts: int
    group: int


@dataclass
class Challenger:
    version: str
    model: object | None  # None when it is served from its scorer's arrays (the file is in the registry)
    scorer: OneRowCalibrated
    after: int  # index of the last training trade: it is scored on the later ones
    window: dict
    champion_losses: list[float] = field(default_factory=list)
    challenger_losses: list[float] = field(default_factory=list)
    scored_through: int = -1


def fit_window(X: np.ndarray, y: np.ndarray, t0: np.ndarray, t1: np.ndarray, group: np.ndarray,
               strategy: np.ndarray, regime: np.ndarray, max_iter: int, folds: int, seed: int,
               path: str) -> tuple[str, dict, list[dict] | None]:
    """The retrain (runs in the executor's worker): the signal classifier fitted on one window of trades,
    saved with skops at ``path``, loaded back from that file (SHA-256 and trusted types checked), and
    returned as ``(sha256, figures, scorer arrays)``: its in-sample figures (``train_*``, the calibration
    method) and ``OneRowCalibrated.arrays()`` of the loaded model (None if it has no fast path), so the
    engine's process serves it without deserialising a model on its own threads."""
    from threadpoolctl import threadpool_limits

    from ml import signal_model as sm

    with threadpool_limits(limits=sm.THREADS):  # one OpenMP thread throughout: the engine keeps the other core
        return _fit_window(X, y, t0, t1, group, strategy, regime, max_iter, folds, seed, path)


def _fit_window(X: np.ndarray, y: np.ndarray, t0: np.ndarray, t1: np.ndarray, group: np.ndarray,
                strategy: np.ndarray, regime: np.ndarray, max_iter: int, folds: int, seed: int,
                path: str) -> tuple[str, dict, list[dict] | None]:
    from ml import signal_model as sm
    from ml.registry import load_model, save_model

    n = len(y)
    data = sm.SignalSet(X, y.astype(np.int64), t0.astype(np.float64), t1.astype(np.float64), group.astype(np.int64),
                        np.zeros(n), np.ones(n), strategy.astype(str), regime.astype(str), np.full(n, "", dtype=str))
    model = sm.train(data, max_iter, n_splits=folds, seed=seed)
    sha = save_model(model, path)
    loaded = load_model(path, sha)
    figures = sm.scores(data.y, sm.predict(loaded, sm.filled(X)))
    metrics: dict = {f"train_{k}": v for k, v in figures.items()}
    metrics["calibration"] = sm.calibration_method(n)
    return sha, metrics, sm.OneRowCalibrated(loaded).arrays()


def warm_worker() -> int:
    """The worker's first job, at the run's start: the model libraries imported (a second of CPU that
    would otherwise fall in the first retrain)."""
    import sklearn.calibration  # noqa: F401
    import threadpoolctl  # noqa: F401

    import ml.registry  # noqa: F401
    import ml.signal_model  # noqa: F401

    return os.getpid()


def _low_priority() -> None:
    """The fit's worker yields the CPU to the engine (its event loop) whenever both want it."""
    if hasattr(os, "nice"):
        os.nice(10)


def process_executor() -> Executor:
    """One spawned worker process at a lower priority (no state inherited; the fit's CPU is off the event
    loop's thread and behind it)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_low_priority)


# where a retrain's fit runs: a process of its own, or (None) the learner's retrain thread itself
EXECUTORS: dict[str, Callable[[], Executor] | None] = {"process": process_executor, "thread": None}


class Ring:
    """The latest ``capacity`` closed trades as arrays (a window is one slice copy, not a stack of rows)."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self.X = np.full((capacity, width), np.nan)
        self.y = np.zeros(capacity, np.int64)
        self.t0 = np.zeros(capacity, np.int64)
        self.t1 = np.zeros(capacity, np.int64)
        self.group = np.zeros(capacity, np.int64)
        self.strategy = np.full(capacity, "", dtype=object)
        self.regime = np.full(capacity, "", dtype=object)
        self.n = 0

    def add(self, row: np.ndarray, y: int, t0: int, t1: int, group: int, strategy: str, regime: str) -> None:
        i = self.n % self.capacity
        self.X[i], self.y[i], self.t0[i], self.t1[i], self.group[i] = row, y, t0, t1, group
        self.strategy[i], self.regime[i] = strategy, regime
        self.n += 1

    def window(self, size: int) -> np.ndarray:
        """Positions of the latest ``size`` trades, oldest first."""
        size = min(size, self.n, self.capacity)
        return np.arange(self.n - size, self.n) % self.capacity


class OnlineLearner:
    """The online layer of one run over the champion signal classifier (see the module docstring).

    Threads: ``score``, ``learn`` and ``on_trade_closed`` run on the caller's thread (the engine's) and
    never wait. A retrain is one job on the learner's retrain thread: it waits for the fit (in
    ``fit_executor_factory``'s process, or on that thread when None), writes the skops file, loads it
    back verified, and returns the ready challenger; registry records go, in order, through a
    recorder thread. The engine's thread only picks up a finished job (``poll``).
    """

    def __init__(self, model: object, version: str, params: OnlineParams, *, model_dir: str | Path,
                 intercepts: dict | None = None, book: ModelBook | None = None,
                 fit_executor_factory: Callable[[], Executor] | None = process_executor) -> None:
        from ml.signal_model import FEATURES, OneRowCalibrated

        self.params = params
        self.model = model
        self.version = version
        self.one_row = OneRowCalibrated(model)
        self.intercepts = dict(intercepts or {})
        self.model_dir = Path(model_dir)
        self.book = book
        self.fit_executor_factory = fit_executor_factory
        self.fit_executor: Executor | None = None
        self.worker: ThreadPoolExecutor | None = None
        self.recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-registry") if book else None
        self.recalibration = Recalibrator(params.warmup_trades, params.learning_rate)
        self.drift = DriftMonitor(params.ph_delta, params.ph_threshold, params.adwin_delta, params.loss_window)
        self.open: OrderedDict[str, Scored] = OrderedDict()
        self.ring = Ring(params.retrain_window + params.promote_trades + 1, len(FEATURES))
        self.served: deque[float] = deque(maxlen=self.ring.capacity)  # the champion's q of each trade in the ring
        self.closed = 0
        self.since_retrain = 0
        self.pending: Future | None = None
        self.challenger: Challenger | None = None
        self.events: list[dict] = []  # drifts, retrains, challengers, promotions and retirements, in order
        self.retrains = 0
        self.stopped = False
        self.started: Future | None = None

    def start(self) -> Future:
        """Start the retrain thread and the fit's worker process now (the run's start), so a retrain
        only sends its data; the future is done once the worker answers."""
        if self.started is None:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-retrain")
            if self.fit_executor_factory is not None:
                self.fit_executor = self.fit_executor_factory()
            self.started = self.worker.submit(self._warm_up)
        return self.started

    def _warm_up(self) -> None:
        if self.fit_executor is not None:
            self.fit_executor.submit(warm_worker).result()

    # ---- scoring -------------------------------------------------------------------------------------
    def champion_probability(self, row: np.ndarray, strategy: str, regime: str) -> float:
        from ml.signal_model import adjusted

        p = np.array([self.one_row.probability(row)])
        return float(adjusted(p, np.array([strategy]), np.array([regime]), self.intercepts)[0])

    def score(self, key: str, row: np.ndarray, strategy: str, regime: str, ts: int, group: int = 0) -> float:
        """The served probability of a signal (remembered until its trade closes)."""
        p = self.champion_probability(row, strategy, regime)
        q = self.recalibration.apply(p, regime)
        self.open[key] = Scored(np.asarray(row, np.float64), p, q, strategy, regime, ts, group)
        self.open.move_to_end(key)
        if len(self.open) > OPEN_SIGNALS:
            self.open.popitem(last=False)
        return q

    # ---- learning ------------------------------------------------------------------------------------
    def on_trade_closed(self, trip: ClosedTrip, pnl: float, tick_value: float) -> None:
        """A round trip closed: its meta-label (``signal_model.trip_label``) is learned."""
        from ml.signal_model import trip_label

        key = trip.trip_id[2:] if trip.trip_id.startswith("o-") else trip.trip_id
        scored = self.open.get(key)
        if scored is None or not trip.qty or not trip.initial_stop or abs(trip.entry_price - trip.initial_stop) <= 0:
            self.open.pop(key, None)  # unlabelled, as in training (no fill, no stop)
            return
        net_ticks = pnl / (trip.qty * tick_value) if tick_value else 0.0
        label = trip_label(trip.exit_reason, trip.stop == trip.initial_stop, pnl, scored.ts,
                           max(scored.ts, trip.exit_ts), net_ticks)
        self.learn(key, label.label, label.t1)

    def learn(self, key: str, y: int, t1: int) -> None:
        """The outcome ``y`` (0 or 1) of the scored signal ``key``, closed at ``t1``."""
        scored = self.open.pop(key, None)
        if scored is None:
            return
        index = self.closed
        self.closed += 1
        self.since_retrain += 1
        fired = self.drift.update(log_loss(y, scored.q))
        self.recalibration.learn(scored.p_model, scored.regime, y)
        self.ring.add(scored.row, int(y), scored.ts, t1, scored.group, scored.strategy, scored.regime)
        self.served.append(scored.q)
        if fired:
            self.events.append({"event": "drift", "detectors": fired, "trade": index,
                                "rolling_log_loss": self.drift.rolling})
        self.poll()
        self._shadow()
        p = self.params
        if self.pending is None and self.challenger is None:  # one model in the making or on trial at a time
            if self.since_retrain >= p.retrain_every:
                self.start_retrain("periodic")
            elif fired and self.ring.n >= max(p.warmup_trades, DRIFT_RETRAIN_MIN):
                self.start_retrain("drift")

    # ---- retraining ----------------------------------------------------------------------------------
    def start_retrain(self, reason: str) -> Future | None:
        """Start a retrain on the latest window (the job's future); None when one is running or the
        window does not hold both outcomes."""
        if self.pending is not None or self.stopped:
            return None
        ring = self.ring
        at = ring.window(self.params.retrain_window)
        if len(at) == 0 or len(np.unique(ring.y[at])) < 2:
            return None
        args = (ring.X[at], ring.y[at], ring.t0[at], ring.t1[at], ring.group[at], ring.strategy[at].astype(str),
                ring.regime[at].astype(str), self.params.max_iter, self.params.folds, self.params.seed)
        self.since_retrain = 0
        self.retrains += 1
        after = self.closed - 1
        window = {"first_trade_ts": int(ring.t0[at].min()), "last_trade_ts": int(ring.t1[at].max()), "n": len(at),
                  "first_trade": after - len(at) + 1, "last_trade": after, "reason": reason, "parent": self.version}
        self.start()
        assert self.worker is not None
        self.pending = self.worker.submit(self._retrain_job, args, window, after, self.retrains)
        self.events.append({"event": "retrain", "reason": reason, "trade": after, "n": len(at)})
        return self.pending

    def _retrain_job(self, args: tuple, window: dict, after: int, number: int) -> Challenger | None:
        """On the retrain thread: the fit (in the worker process) saves the file and loads it back
        verified; here the challenger is registered and its scorer rebuilt from plain arrays."""
        from ml.signal_model import OneRowCalibrated

        stem = f"signal-online-{window['last_trade_ts']}-{number}"
        path = self.model_dir / f"{stem}.skops"
        call = (*args, str(path))
        if self.fit_executor is not None:
            sha, metrics, arrays = self.fit_executor.submit(fit_window, *call).result()
        else:
            sha, metrics, arrays = fit_window(*call)
        if self.stopped:
            return None
        version = f"{stem}-{sha[:8]}"
        model = None
        if arrays is not None:
            scorer = OneRowCalibrated.from_arrays(arrays)
        else:  # no fast path: the model itself, loaded here (slower, and on this process's threads)
            from ml.registry import load_model  # skops: its first import alone is 0.5 s of CPU

            model = load_model(path, sha)
            scorer = OneRowCalibrated(model)
        training = {"source": "online", "window": window, "max_iter": self.params.max_iter,
                    "folds": self.params.folds, "seed": self.params.seed}
        self._record("register", version=version, path=str(path), sha256=sha, training=training, metrics=metrics)
        return Challenger(version, model, scorer, after, window)

    def _record(self, what: str, **row) -> None:
        if self.book is not None and self.recorder is not None:
            self.recorder.submit(getattr(self.book, what), **row)

    def poll(self) -> bool:
        """Take a finished retrain's challenger; True if one was taken. Never waits."""
        if self.pending is None or not self.pending.done():
            return False
        future, self.pending = self.pending, None
        try:
            challenger = future.result()
        except Exception as exc:  # a failed fit is recorded; the champion keeps serving
            self.events.append({"event": "retrain_failed", "error": f"{type(exc).__name__}: {exc}"})
            return False
        if challenger is None:
            return False
        self.challenger = challenger
        self.events.append({"event": "challenger", "version": challenger.version, "trade": self.closed - 1})
        return True

    def _shadow(self) -> None:
        """Score the challenger on the trades after its window it has not seen; decide when enough."""
        ch = self.challenger
        if ch is None:
            return
        ring = self.ring
        first = max(ch.after, ch.scored_through) + 1
        for index in range(max(first, self.closed - len(self.served)), self.closed):
            at = index % ring.capacity
            y = int(ring.y[at])
            ch.champion_losses.append(log_loss(y, self.served[index - self.closed + len(self.served)]))
            ch.challenger_losses.append(log_loss(y, ch.scorer.probability(ring.X[at])))
            ch.scored_through = index
            if len(ch.challenger_losses) >= self.params.promote_trades:
                self._decide(ch)
                return

    def _decide(self, ch: Challenger) -> None:
        champion, challenger = float(np.mean(ch.champion_losses)), float(np.mean(ch.challenger_losses))
        promoted = challenger < champion
        metrics = {"shadow_trades": len(ch.challenger_losses), "shadow_log_loss": challenger,
                   "champion_shadow_log_loss": champion, "champion": self.version, "promoted": promoted}
        self._record("decide", version=ch.version, promoted=promoted, metrics=metrics)
        self.events.append({"event": "promoted" if promoted else "retired", "version": ch.version,
                            "log_loss": challenger, "champion_log_loss": champion, "trade": ch.scored_through})
        self.challenger = None
        if promoted:
            self.model, self.version, self.one_row, self.intercepts = ch.model, ch.version, ch.scorer, {}
            self.recalibration = Recalibrator(self.params.warmup_trades, self.params.learning_rate)

    # ---- the run -------------------------------------------------------------------------------------
    def state(self) -> dict:
        """For the run summary: the serving version, the recalibration, the drift figures and the events."""
        return {"version": self.version, "closed_trades": self.closed, "recalibration": self.recalibration.state(),
                "rolling_log_loss": self.drift.rolling, "retrains": self.retrains,
                "challenger": self.challenger.version if self.challenger else None, "events": list(self.events)}

    def wait(self, timeout: float | None = None) -> None:
        """Tests and tools: block until the running retrain (if any) is done, then take it."""
        if self.pending is not None:
            wait([self.pending], timeout)
            self.poll()
            self._shadow()

    def close(self) -> None:
        """End of the run: registry records are written out; a fit still running is dropped (its worker
        finishes it in the background and the result is discarded)."""
        self.stopped = True
        idle = self.pending is None or self.pending.done()
        if self.worker is not None:
            self.worker.shutdown(wait=idle, cancel_futures=True)
        if self.fit_executor is not None:
            self.fit_executor.shutdown(wait=idle, cancel_futures=True)
        if self.recorder is not None:
            self.recorder.shutdown(wait=True)
