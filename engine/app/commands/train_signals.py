"""``train signals``: the signal classifier (SPEC section 6) on simulator sessions run through the product path.

Each session is one ``run_reference`` of the configuration's symbols on the simulator (seeds ``S ..
S+N-1``, ``[run] seed`` set to the session's seed, as the optimiser's evaluation does): the same
strategies, risk and simulated execution with fees, latency and queues. Every signal whose entry
filled is labelled by its round trip (``ml.signal_model.labels_from_records``); the report is
out-of-fold on purged, embargoed folds, with the logistic-regression baseline on the same folds.
When the registry holds a regime champion it runs in the sessions (F26 and regimes in the features).
The calibrated model is saved with skops next to the database and registered as a ``candidate``
(shadow: simulated data only, SPEC 12) with its training window and figures; ``--promote`` makes it
the champion.

The price-target model (``ml/price_target.py``) trains on the same labelled signals: the out-of-fold
pinball loss, coverage and error of the quantile model beside the strategies' own targets and a
constant; it is registered as kind ``target`` (a candidate, or champion with ``--promote``) when
enough signals carry an excursion, and the report says why not otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

from engine import store
from engine.app.commands.common import json_summary, progress_bar, register_model
from engine.config import Config, with_values
from engine.errors import UsageError
from engine.events import Liquidity
from engine.pipeline.models import RunModels, load_run_models
from engine.pipeline.run import RunOptions, run_reference
from engine.pipeline.wiring import fee_models
from engine.portfolio import Portfolio
from ml.registry import save_model

if TYPE_CHECKING:  # scikit-learn loads when a command trains, not with every command
    from ml import signal_model as sm


def add_parser(kinds, common, reporting, count) -> None:
    sig = kinds.add_parser("signals", parents=[common, reporting],
                           help="the signal classifier: label simulated signals, cross-validate, register")
    sig.add_argument("--sessions", type=count, default=6, help="simulated sessions (default 6)")
    sig.add_argument("--minutes", type=_minutes, default=30.0, help="simulated minutes per session (default 30)")
    sig.add_argument("--seed", type=count, default=1, help="first session seed (default 1)")
    sig.add_argument("--folds", type=int, default=5, help="purged K-fold folds, 2..10 (default 5)")
    sig.add_argument("--db", metavar="PATH", help="SQLite file of the model registry (default: [store] path)")
    sig.add_argument("--promote", action="store_true", help="make the new model the signal champion")


def _minutes(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes in (0, 1440], got {text!r}") from None
    if not np.isfinite(value) or not 0 < value <= 1440:
        raise argparse.ArgumentTypeError(f"expected minutes in (0, 1440], got {text!r}")
    return value


def simulated_signals(config: Config, seed: int, minutes: float, models, group: int) -> sm.SignalSet:
    """The labelled signals of one simulated session of every configured symbol."""
    from feeds.simulator import MarketSimulator
    from ml import signal_model as sm

    seeded = with_values(config, {"run.seed": seed})
    feed = MarketSimulator(list(seeded.run.symbols), seeded, seed, minutes * 60.0)
    instruments = feed.instruments()
    _, records = run_reference(feed, seeded, RunOptions(duration_s=minutes * 60.0, models=models))
    portfolio = Portfolio(instruments)
    fees = fee_models(instruments, seeded, portfolio)
    tick_value = dict(portfolio.tick_value)

    def fee_ticks(iid: int, price: float) -> float:
        return 2 * fees[iid].fee(int(price), 1, Liquidity.TAKER) / tick_value[iid]

    return sm.labels_from_records(records, tick_value, fee_ticks, group)


def cmd_train_signals(args, config: Config) -> int:
    from ml import signal_model as sm

    if not 2 <= args.folds <= 10:
        raise UsageError("--folds must be between 2 and 10")
    db = args.db or config.store.path
    store.check_database(db)
    conn = store.connect(db, config.store.busy_timeout_ms)
    try:
        models = RunModels(regime=load_run_models(conn, no_ml=False, real_data=False).regime)  # no classifier
    finally:
        conn.close()
    seeds = list(range(args.seed, args.seed + args.sessions))
    parts = []
    with progress_bar(args, remaining=False) as progress:
        task = progress.add_task("simulating sessions", total=len(seeds) + 1) if progress else None
        for k, seed in enumerate(seeds):
            parts.append(simulated_signals(config, seed, args.minutes, models, k))
            if progress:
                progress.advance(task)
        data = sm.SignalSet.concat(parts)
        if progress:
            progress.update(task, description="cross-validating the signal classifier")
        try:
            report = sm.cross_validated_report(data, n_splits=args.folds, seed=args.seed)
            model = sm.train(data, report.max_iter, n_splits=args.folds, seed=args.seed)
        except ValueError as exc:
            raise UsageError(f"{exc}; use more or longer sessions (--sessions, --minutes)") from None
        target = _price_target(args, config, db, data, seeds)
        if progress:
            progress.advance(task)
    summary = _register(args, config, db, model, report, data, seeds, models)
    summary["price_target"] = target
    _emit(args, summary)
    return 0


def _price_target(args, config: Config, db: str, data: sm.SignalSet, seeds: list[int]) -> dict:
    """Cross-validate, train and register the price-target model; the report's ``price_target`` part."""
    from ml import price_target as pt
    from ml import signal_model as sm

    q = config.ml.target_quantile
    try:
        report = pt.cross_validated_report(data, q, n_splits=args.folds, seed=args.seed)
        model = pt.train(data, q, seed=args.seed)
    except ValueError as exc:
        return {"trained": False, "reason": str(exc), "quantile": q}
    version = f"target-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    path = Path(db).resolve().parent / "models" / f"{version}.skops"
    sha = save_model(model, path)
    training = {"source": "simulator", "symbols": list(config.run.symbols), "minutes": args.minutes, "seeds": seeds,
                "window": {"t0": int(data.t0.min()), "t1": int(data.t1.max())}, "labelled": report["n"],
                "features": list(sm.FEATURES), "quantile": q}
    metrics = {"pinball": report["model"]["pinball"], "coverage": report["model"]["coverage"],
               "strategy_target_pinball": report["strategy_target"]["pinball"],
               "constant_pinball": report["constant"]["pinball"], "beats_baselines": report["beats_baselines"]}
    row = register_model(config, db, promote=args.promote, version=version, kind="target", path=str(path),
                         sha256=sha, training=training, metrics=metrics)
    return {"trained": True, **report, "registered": row.as_dict()}


def _register(args, config: Config, db: str, model, report: sm.Report, data: sm.SignalSet, seeds: list[int],
              models) -> dict:
    from ml import signal_model as sm

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    version = f"signal-{stamp}"
    path = Path(db).resolve().parent / "models" / f"{version}.skops"
    sha = save_model(model, path)
    figures = report.as_dict()
    regime = models.regime.version if models.regime is not None else None
    training = {"source": "simulator", "symbols": list(config.run.symbols), "minutes": args.minutes, "seeds": seeds,
                "window": {"t0": int(data.t0.min()), "t1": int(data.t1.max())}, "labelled": len(data),
                "unlabelled": data.unlabelled, "features": list(sm.FEATURES), "regime_model": regime,
                "calibration": report.method, "max_iter": report.max_iter,
                "intercepts": figures["regime_adjustment"]["intercepts"], "margin": sm.MARGIN}
    metrics = {"auc": figures["oof"]["auc"], "brier": figures["oof"]["brier"], "ece": figures["oof"]["ece"],
               "log_loss": figures["oof"]["log_loss"], "baseline_auc": figures["baseline"]["auc"],
               "economic": figures["economic"]}
    row = register_model(config, db, promote=args.promote, version=version, kind="signal", path=str(path),
                         sha256=sha, training=training, metrics=metrics)
    barriers = {b: int(np.sum(data.barrier == b)) for b in ("target", "stop", "vertical")}
    return {"command": "train signals", "db": db, "model": row.as_dict(), "seeds": seeds, "labelled": len(data),
            "unlabelled": data.unlabelled, "positives": int(data.y.sum()), "barriers": barriers,
            "regime_model": regime, **figures}


def _emit(args, summary: dict) -> None:
    from engine.app.report import console

    if json_summary(args, summary):
        return

    def fmt(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    table = Table(title=f"Signal classifier {summary['model']['version']}: out-of-fold on {summary['folds']} "
                        f"purged folds ({summary['n']} signals)")
    for col in ("model", "AUC", "Brier", "log-loss", f"ECE ({summary['ece_bins']} bins)", "taken", "mean R taken",
                "Sharpe taken"):
        table.add_column(col, justify="right")
    for name, fig, eco in (("calibrated HGB", summary["oof"], summary["economic"]),
                           ("logistic baseline", summary["baseline"], summary["baseline_economic"])):
        f = eco["filtered"]
        table.add_row(name, fmt(fig["auc"]), fmt(fig["brier"]), fmt(fig["log_loss"]), fmt(fig["ece"]),
                      str(f["trades"]), fmt(f["mean_r"]), fmt(f["sharpe"]))
    a = summary["economic"]["all"]
    table.add_row("all signals", "", "", "", "", str(a["trades"]), fmt(a["mean_r"]), fmt(a["sharpe"]))
    out = console()
    out.print(table)
    out.print(f"calibration {summary['calibration']}   uncalibrated ECE {fmt(summary['uncalibrated']['ece'])}   "
              f"status {summary['model']['status']} ({summary['model']['mode']})")
    target = summary["price_target"]
    if not target["trained"]:
        out.print(f"price-target model: not trained ({target['reason']})")
        return
    tt = Table(title=f"Price-target model {target['registered']['version']}: quantile {target['quantile']:g} of the "
                     f"favourable excursion (R), out-of-fold on {target['folds']} purged folds ({target['n']} signals)")
    for col in ("prediction", "pinball loss", "coverage", "median |error| (R)", "median prediction (R)"):
        tt.add_column(col, justify="right")
    for name, key in (("quantile model", "model"), ("strategies' targets", "strategy_target"),
                      ("constant", "constant")):
        f = target[key]
        tt.add_row(name, fmt(f["pinball"]), fmt(f["coverage"]), fmt(f["median_abs_error_r"]),
                   fmt(f["median_prediction_r"]))
    out.print(tt)
    verdict = "beats" if target["beats_baselines"] else "does not beat"
    out.print(f"the model {verdict} both baselines out of sample; status {target['registered']['status']} "
              f"({target['registered']['mode']})")
