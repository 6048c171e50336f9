"""One evaluation of a parameter set for the optimiser: ``evaluate(params, dataset) -> Metrics``.

The configuration with ``params`` applied drives the very cores of a run (``run_reference``: the same
strategies, risk, simulated execution with its fees, latency and queue model) over every session of
the dataset: simulated sessions (one per seed, ``minutes`` long, ``[run] seed`` set to the session's
seed so the execution stream is seeded too) or tape files. Nothing is shared between calls and the
function and its arguments pickle, so a process pool or a Ray cluster runs it unchanged; the same
``(params, dataset)`` always gives the same metrics (common random numbers: every parameter set of a
study sees the same sessions).

Figures (SPEC 8), from the rows the execution stage writes:
- net R of a round trip = its PnL after fees / (lots x tick value x initial stop distance);
- ``mean_r``: mean net R per trade over every session; ``sharpe``: mean / standard deviation of the
  per-trade net R (not annualised; a simulated session lasts minutes, not a day), the same series the
  Deflated Sharpe Ratio uses; ``max_drawdown``: the largest portfolio drawdown of any session, as a
  share of equity (engine/analytics.py);
- per session, the PnL in each ``bucket_s`` of event time (``pnl_path``): on one time grid for every
  parameter set, the matrix CSCV and the walk-forward split work on.

Cost split: ``cpu_s`` holds the process CPU seconds of the evaluation by part, measured inside the run
itself (``run_reference`` with ``RunOptions.cpu``; parts ``COST_PARTS``: simulation or replay, features
and detectors, strategies, execution, other) and ``total``, the CPU time of the whole call; the parts add
up to the total but for the few timer calls between them. It is a measurement, not a result: the
optimiser keeps it beside a trial's figures and no figure depends on it.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from functools import partial
from pathlib import Path

import msgspec
import numpy as np

from engine.analytics import PORTFOLIO, equity_stats
from engine.config import Config, with_values
from engine.pipeline.run import COST_PARTS, RunOptions, run_reference
from engine.pipeline.wiring import fee_models, taker_fee
from engine.portfolio import Portfolio
from engine.records import TABLES
from ml.exit_agent import EntryPath, PathRecorder

NS = 1_000_000_000
NO_STREAK_STOP = 1_000_000_000  # ``risk.max_consecutive_losses`` no session reaches
_TRIP = {name: i for i, name in enumerate(TABLES["round_trips"])}
_EQUITY = {name: i for i, name in enumerate(TABLES["equity"])}


class Dataset(msgspec.Struct, frozen=True, kw_only=True):
    """The sessions a parameter set is judged on: simulated (``seeds`` x ``minutes`` of ``symbol``) or tapes."""

    config: Config
    symbol: str
    seeds: tuple[int, ...] = ()
    minutes: float = 10.0
    tapes: tuple[str, ...] = ()
    bucket_s: float = 60.0
    no_ml: bool = False
    # The kill switch's losing-streak trigger (``risk.max_consecutive_losses``) in these sessions. Off
    # (False), every signal of a session is traded and judged: a streak stop is the operator's stop of a
    # live day, and in an evaluation it ends a session after a few losses, so a parameter set would be
    # judged on its first trades only. The drawdown and daily-loss triggers always stay on.
    losing_streak_stop: bool = True

    def sessions(self) -> list[str]:
        """One label per session: ``seed:N`` or the tape's path."""
        return [f"seed:{s}" for s in self.seeds] + list(self.tapes)

    def run_config(self, params: dict | None = None) -> Config:
        """The configuration a session runs with: the dataset's, ``params`` applied (validated), and the
        losing-streak trigger out of reach unless ``losing_streak_stop``."""
        values = dict(params or {})
        if not self.losing_streak_stop:
            values["risk.max_consecutive_losses"] = NO_STREAK_STOP
        return with_values(self.config, values)

    def subset(self, seeds: tuple[int, ...]) -> Dataset:
        """The same dataset over other simulator seeds (held-out sessions)."""
        return msgspec.structs.replace(self, seeds=tuple(seeds), tapes=())


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One session's figures: its label, the net R of each round trip, PnL, drawdown and PnL per bucket."""

    label: str
    net_r: tuple[float, ...]
    pnl: float
    max_drawdown: float
    pnl_path: tuple[float, ...]


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """The objectives of one parameter set over a dataset, and the sessions they come from."""

    trades: int
    mean_r: float
    sharpe: float
    max_drawdown: float
    pnl: float
    sessions: tuple[Session, ...]
    cpu_s: dict[str, float] = {}  # CPU seconds per part of the evaluation and "total" (module docstring)

    def as_dict(self) -> dict:
        return {"trades": self.trades, "mean_r": self.mean_r, "sharpe": self.sharpe,
                "max_drawdown": self.max_drawdown, "pnl": self.pnl}


def combine(sessions: list[Session] | tuple[Session, ...], cpu_s: dict[str, float] | None = None) -> Metrics:
    """The figures over ``sessions`` (a subset of a dataset's for walk-forward windows)."""
    r = np.array([x for s in sessions for x in s.net_r], dtype=float)
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    return Metrics(
        trades=len(r),
        mean_r=float(r.mean()) if len(r) else 0.0,
        sharpe=float(r.mean()) / std if std > 0 else 0.0,
        max_drawdown=max((s.max_drawdown for s in sessions), default=0.0),
        pnl=float(sum(s.pnl for s in sessions)),
        sessions=tuple(sessions),
        cpu_s=dict(cpu_s or {}),
    )


def evaluate(params: dict, dataset: Dataset) -> Metrics:
    """Run every session of ``dataset`` with ``params`` (dotted config keys) applied; pure and picklable.

    Raises:
        ConfigError: a parameter outside its configuration range.
    """
    start = time.process_time()
    cpu = dict.fromkeys(COST_PARTS, 0.0)
    config = dataset.run_config(params)
    cpu["other"] += time.process_time() - start
    sessions = [_simulated(config, dataset, seed, cpu) for seed in dataset.seeds]
    sessions += [_taped(config, dataset, path, cpu) for path in dataset.tapes]
    mark = time.process_time()
    metrics = combine(sessions)
    end = time.process_time()
    cpu["other"] += end - mark
    return msgspec.structs.replace(metrics, cpu_s={**cpu, "total": end - start})


def entry_paths(dataset: Dataset, params: dict | None = None) -> list[EntryPath]:
    """Every entry's path after its fill (SPEC 7, ``ml.exit_agent``) over the simulated sessions of
    ``dataset``, from the same run as ``evaluate``: the recorder only watches the execution stage."""
    from feeds.simulator import MarketSimulator

    config = dataset.run_config(params)
    out: list[EntryPath] = []
    for seed in dataset.seeds:
        seeded = with_values(config, {"run.seed": seed})
        feed = MarketSimulator([dataset.symbol], seeded, seed, dataset.minutes * 60.0)
        instruments = feed.instruments()
        tick_value = {d.instrument_id: float(Decimal(d.tick_size) * Decimal(d.multiplier)) for d in instruments}
        fees = fee_models(instruments, seeded, Portfolio(instruments, seeded.risk.equity))
        recorder = PathRecorder(tick_value, partial(taker_fee, fees), label=f"seed:{seed}/")
        run_reference(feed, seeded, RunOptions(no_ml=dataset.no_ml, duration_s=dataset.minutes * 60.0,
                                               observer=recorder))
        out += recorder.paths()
    return out


def _simulated(config: Config, dataset: Dataset, seed: int, cpu: dict[str, float] | None = None) -> Session:
    mark = time.process_time()
    from feeds.simulator import MarketSimulator

    seeded = with_values(config, {"run.seed": seed})
    feed = MarketSimulator([dataset.symbol], seeded, seed, dataset.minutes * 60.0)
    if cpu is not None:
        cpu["simulation"] += time.process_time() - mark
    return _session(f"seed:{seed}", feed, seeded, dataset, dataset.minutes * 60.0, cpu)


def _taped(config: Config, dataset: Dataset, path: str, cpu: dict[str, float] | None = None) -> Session:
    from feeds.tape import open_tape

    return _session(str(Path(path)), open_tape(path), config, dataset, None, cpu)


def _session(label: str, feed, config: Config, dataset: Dataset, duration_s: float | None,
             cpu: dict[str, float] | None = None) -> Session:
    instruments = feed.instruments()
    _, records = run_reference(feed, config, RunOptions(no_ml=dataset.no_ml, duration_s=duration_s, cpu=cpu))
    mark = time.process_time()
    session = _figures(label, records, instruments, config, dataset, duration_s)
    if cpu is not None:
        cpu["other"] += time.process_time() - mark
    return session


def _figures(label: str, records: list, instruments: list, config: Config, dataset: Dataset,
             duration_s: float | None) -> Session:
    tick_value = {d.instrument_id: float(Decimal(d.tick_size) * Decimal(d.multiplier)) for d in instruments}
    net_r, trip_pnl = [], 0.0
    equity: list[dict] = []
    for table, row in records:
        if table == "round_trips" and row[_TRIP["pnl"]] is not None:
            trip_pnl += row[_TRIP["pnl"]]
            r = _net_r(row, tick_value[row[_TRIP["instrument_id"]]])
            if r is not None:
                net_r.append(r)
        elif table == "equity" and row[_EQUITY["instrument_id"]] == PORTFOLIO:
            equity.append({"instrument_id": PORTFOLIO, "ts": row[_EQUITY["ts"]], "equity": row[_EQUITY["equity"]]})
    equity0 = config.risk.equity
    stats = equity_stats(equity, equity0)
    return Session(label=label, net_r=tuple(net_r), pnl=trip_pnl, max_drawdown=float(stats["max_drawdown"] or 0.0),
                   pnl_path=_pnl_path(equity, equity0, dataset.bucket_s, duration_s,
                                      min(d.session_open for d in instruments)))


def _net_r(row: tuple, tick_value: float) -> float | None:
    risk = abs(row[_TRIP["entry_price"]] - row[_TRIP["initial_stop"]]) if row[_TRIP["initial_stop"]] else 0.0
    lots = row[_TRIP["qty"]]
    if not risk or not lots:
        return None
    return float(row[_TRIP["pnl"]]) / (lots * tick_value * risk)


def _pnl_path(equity: list[dict], equity0: float, bucket_s: float, duration_s: float | None,
              start: int) -> tuple[float, ...]:
    """Change of portfolio equity in each bucket of event time from the session's open (a simulated
    session has ``duration_s / bucket_s`` buckets whatever the parameters)."""
    if not equity:
        count = math.ceil(duration_s / bucket_s) if duration_s else 0
        return (0.0,) * count
    ts = np.array([e["ts"] for e in equity], dtype=np.int64)
    values = np.array([e["equity"] for e in equity], dtype=float)
    width = int(bucket_s * NS)
    span = duration_s * NS if duration_s else float(ts[-1] - start) + 1
    count = max(1, math.ceil(span / width))
    edges = start + width * np.arange(1, count + 1)
    index = np.searchsorted(ts, edges, side="left") - 1  # last row before each bucket's end
    closing = np.where(index >= 0, values[np.clip(index, 0, None)], equity0)
    return tuple(float(x) for x in np.diff(np.concatenate(([equity0], closing))))
