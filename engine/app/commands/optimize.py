"""``optimize``: NSGA-II over the strategies' parameters on simulated sessions or tapes (SPEC 8), with the
Pareto front, the chosen set's in-sample and held-out figures, walk-forward, deflated Sharpe and PBO.

The study lives in an optuna SQLite file beside the database (``chimera.db`` -> ``chimera.optuna.db``) or
at ``--study-db``; ``--resume STUDY`` continues one with its recorded sessions and settings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec
import orjson

from engine.app import arguments
from engine.app.commands.common import seed_list
from engine.config import Config, with_values
from engine.errors import UsageError


def register(sub, common, reporting) -> dict:
    p = sub.add_parser("optimize", parents=[common, reporting],
                       help="multi-objective parameter search with walk-forward, deflated Sharpe and PBO")
    p.add_argument("--symbol", type=str.upper, help="the simulated instrument (default: the first of [run] symbols)")
    p.add_argument("--trials", type=int, default=48, help="completed trials the study should hold (default 48)")
    p.add_argument("--seeds", type=seed_list, default=(1, 2, 3, 4, 5, 6),
                   help="simulator seeds of the selection sessions, e.g. 1,2,3 (default 1,2,3,4,5,6)")
    p.add_argument("--holdout-seeds", type=seed_list, default=(101, 102),
                   help="seeds of the held-out sessions, never used for selection (default 101,102)")
    p.add_argument("--minutes", type=arguments.positive, default=60.0,
                   help="minutes per simulated session (default 60: six hours of sessions hold the 30 trades "
                        "a trial needs)")
    p.add_argument("--tape", nargs="+", default=[], metavar="FILE", help="tapes as further selection sessions")
    p.add_argument("--population", type=int, help="trials per generation (default: 48, at most half of --trials)")
    p.add_argument("--min-trades", type=int, default=30, help="a trial needs this many trades to be feasible (30)")
    p.add_argument("--max-drawdown", type=float, help="drawdown cap of the chosen set (default [risk] drawdown_soft)")
    p.add_argument("--windows", type=int, default=3, help="walk-forward windows over the sessions (default 3)")
    p.add_argument("--seed", type=int, help="the sampler's seed (default [run] seed)")
    p.add_argument("--workers", type=int, default=1, help="parallel evaluations (default 1: in this process)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local process pool, or Ray (pip install 'chimera[distributed]')")
    p.add_argument("--address", help="Ray cluster: auto or HOST:PORT (default: a local Ray)")
    p.add_argument("--study-db", metavar="PATH", help="optuna SQLite file (default: beside [store] path)")
    p.add_argument("--resume", metavar="STUDY",
                   help="continue this study up to --trials, with its recorded sessions and settings")
    p.add_argument("--write-config", metavar="PATH", help="write the configuration with the chosen parameters")
    p.add_argument("--losing-streak-stop", action="store_true",
                   help="keep the kill switch's losing-streak trigger ([risk] max_consecutive_losses) in the "
                        "evaluations, as chimera run has it (default: off, every signal of a session is judged; "
                        "the drawdown and daily-loss triggers stay on)")
    p.add_argument("--no-perturbation", action="store_true",
                   help="skip the robustness check (the chosen set re-run with each gene moved by -10%% and "
                        "+10%% of its range on the held-out seeds: two runs of the held-out sessions per gene)")
    return {"optimize": cmd_optimize}



def study_path(args, config: Config) -> str:
    if args.study_db:
        return args.study_db
    db = Path(config.store.path)
    return str(db.with_name(f"{db.stem}.optuna.db"))


def cmd_optimize(args, config: Config) -> int:
    import optuna

    from engine.pipeline.evaluation import Dataset, evaluate
    from ml import optimize
    from ml.executors import make_executor

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    for tape in args.tape:
        if not Path(tape).is_file():
            raise UsageError(f"--tape {tape}: no such file")
    path = study_path(args, config)
    executor = make_executor(args.executor, args.workers, args.address)
    try:
        study, settings = _study(args, config, path)
        dataset = Dataset(config=config, symbol=settings.symbol, seeds=settings.seeds, minutes=settings.minutes,
                          tapes=settings.tapes, losing_streak_stop=settings.losing_streak_stop)
        started = time.perf_counter()
        with _progress(args) as progress:
            optimize.run_study(study, settings, evaluate, dataset, args.trials, executor, progress)
        summary = _analyse(args, config, study, settings, dataset, evaluate, path, executor)
    finally:
        executor.close()
    summary["executor"] = {"kind": executor.name, "workers": executor.workers}
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    if args.write_config and summary["chosen"] is not None:
        write_config(with_values(config, summary["chosen"]["params"]), args.write_config)
        summary["config_written"] = args.write_config
    _report(args, summary)
    return 0


def _study(args, config: Config, path: str):
    """The study resumed (its settings recorded) or created (settings from the flags)."""
    from ml import optimize

    if args.resume:
        study, settings = optimize.load_study(path, args.resume)
        if settings.config_hash != config.hash():
            raise UsageError(f"--resume {args.resume}: the effective configuration differs from the study's; "
                             "use the same -c and --set")
        return study, settings
    settings = _new_settings(args, config)
    return optimize.create_study(path, optimize.now_name(settings.symbol), settings), settings


def _new_settings(args, config: Config):
    from ml import optimize

    symbol = args.symbol or config.run.symbols[0]
    enabled = config.strategies.enabled
    spec = config.instruments.get(symbol)
    if spec is not None and spec.strategies != ["all"]:
        enabled = [s for s in enabled if s in spec.strategies]
    population = args.population or max(2, min(48, args.trials // 2))
    if population < 2:
        raise UsageError(f"--population must be >= 2, got {population}")
    overlap = set(args.seeds) & set(args.holdout_seeds)
    if overlap:
        raise UsageError(f"--holdout-seeds {sorted(overlap)} are also selection seeds: held-out sessions must be new")
    return optimize.Settings(
        symbol=symbol, seeds=tuple(args.seeds), minutes=args.minutes,
        tapes=tuple(str(Path(t).resolve()) for t in args.tape), holdout_seeds=tuple(args.holdout_seeds),
        seed=config.run.seed if args.seed is None else args.seed, population=population,
        min_trades=args.min_trades, genes=tuple(g.key for g in optimize.genes_for(enabled)),
        config_hash=config.hash(), losing_streak_stop=args.losing_streak_stop)


def _analyse(args, config: Config, study, settings, dataset, evaluate, path: str, executor) -> dict:
    from ml import optimize, selection

    trials = selection.completed(study)
    cap = config.risk.drawdown_soft if args.max_drawdown is None else args.max_drawdown
    front, chosen = selection.choose(trials, cap)
    pbo = selection.pbo_of(trials)
    wf = selection.walk_forward_of(trials, args.windows)
    holdout = None
    most = max((t.user_attrs["metrics"]["trades"] for t in trials), default=0)
    survives, reasons = False, [f"no feasible trial on the Pareto front within the drawdown cap (min trades "
                                f"{settings.min_trades}, the most any trial made {most}; max drawdown {cap}): "
                                "add --seeds or --minutes, or lower --min-trades"]
    perturbation, robust = None, None
    if chosen is not None:
        held_out = dataset.subset(settings.holdout_seeds)
        held = evaluate(chosen["params"], held_out)
        holdout = held.as_dict()
        if not args.no_perturbation:
            genes = [optimize.GENES[key] for key in settings.genes]
            perturbation, robust = optimize.perturbation_check(chosen["params"], genes, evaluate, held_out,
                                                               executor, held)
        survives, reasons = selection.verdict(chosen, holdout, len(dataset.sessions()), len(settings.holdout_seeds),
                                              pbo, wf, perturbation)
    return {
        "command": "optimize", "study": study.study_name, "study_db": path, "settings": settings.as_dict(),
        "trials": len(trials), "feasible": sum(1 for t in trials if selection.feasible(t)),
        "distinct_params": len({tuple(sorted(t.params.items())) for t in trials}),
        "pareto_front": front, "chosen": chosen, "in_sample": _figures(chosen), "holdout": holdout,
        "walk_forward": wf, "pbo": pbo, "drawdown_cap": cap, "perturbation": perturbation, "robust": robust,
        "survives": survives, "reasons": reasons,
    }


def _figures(chosen: dict | None) -> dict | None:
    if chosen is None:
        return None
    return {k: chosen[k] for k in ("trades", "mean_r", "sharpe", "max_drawdown", "pnl", "dsr")}


def write_config(config: Config, path: str) -> None:
    """The whole effective configuration as TOML (keys without a value are left to their defaults)."""
    Path(path).write_bytes(msgspec.toml.encode(_without_none(msgspec.to_builtins(config))))


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


class _progress:
    """A rich bar (trials done, best net mean R so far, ETA) on a terminal; nothing otherwise."""

    def __init__(self, args) -> None:
        self.show = sys.stdout.isatty() and not args.json and not args.no_progress
        self.bar = None

    def __enter__(self):
        if not self.show:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]optimize"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("best mean R {task.fields[best]}"), TimeRemainingColumn(), transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("optimize", total=None, best="-")

        def update(done: int, wanted: int, best: float | None) -> None:
            self.bar.update(task, total=wanted, completed=done, best="-" if best is None else f"{best:+.3f}")

        return update

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _report(args, summary: dict) -> None:
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    from rich.table import Table

    from engine.app.report import console

    out = console(sys.stderr if args.json else sys.stdout)  # --json: stdout is the JSON line alone
    front = Table(title=f"Pareto front of {summary['study']} ({summary['trials']} trials, "
                        f"{summary['feasible']} feasible)")
    for column in ("trial", "trades", "mean R", "Sharpe", "max DD", "PnL", "DSR"):
        front.add_column(column, justify="right")
    for m in summary["pareto_front"]:
        front.add_row(str(m["trial"]), str(m["trades"]), f"{m['mean_r']:+.3f}", f"{m['sharpe']:+.3f}",
                      f"{m['max_drawdown']:.4f}", f"{m['pnl']:+.2f}", _num(m["dsr"]))
    out.print(front)
    chosen = summary["chosen"]
    if chosen is None:
        out.print(f"No parameter set chosen: {summary['reasons'][0]}")
    else:
        figures = Table(title=f"Chosen: trial {chosen['trial']}")
        for column in ("", "trades", "mean R", "Sharpe", "max DD", "PnL"):
            figures.add_column(column, justify="right")
        for name, row in (("in sample", summary["in_sample"]), ("held out", summary["holdout"])):
            figures.add_row(name, str(row["trades"]), f"{row['mean_r']:+.3f}", f"{row['sharpe']:+.3f}",
                            f"{row['max_drawdown']:.4f}", f"{row['pnl']:+.2f}")
        out.print(figures)
        wf = summary["walk_forward"]
        out.print(f"deflated Sharpe {_num(chosen['dsr'])} (N = {summary['distinct_params']} parameter sets) · "
                  f"PBO {_num(summary['pbo'])} · walk-forward OOS mean R "
                  f"{_num(wf['oos_mean_r'] if wf else None)}, efficiency {_num(wf['efficiency'] if wf else None)}")
        if summary["perturbation"] is not None:
            out.print(_perturbation_table(summary))
        if summary["survives"]:
            out.print("The chosen set survives out of sample.")
        else:
            out.print("The chosen set does NOT survive out of sample: " + "; ".join(summary["reasons"]))
    if summary.get("config_written"):
        out.print(f"configuration written to {summary['config_written']}")
    if args.json:
        print(orjson.dumps(summary).decode())


def _perturbation_table(summary: dict):
    from rich.table import Table

    verdict = "robust" if summary["robust"] else "NOT robust"
    sharpe = summary["holdout"]["sharpe"]
    table = Table(title=f"Perturbation of the chosen set on the held-out seeds (Sharpe {sharpe:+.3f}; {verdict}: "
                        "each move must keep half of it)", caption="* clipped to the search range")
    table.add_column("gene", overflow="fold")
    for column in ("move", "value", "Sharpe", "change", "ok"):
        table.add_column(column, justify="right")
    for row in summary["perturbation"]:
        move = f"{'+' if row['direction'] > 0 else '-'}10%" + ("*" if row["clipped"] else "")
        table.add_row(row["gene"].removeprefix("strategies."), move, f"{row['value']:.4g}", f"{row['objective']:+.3f}",
                      f"{row['change']:+.3f}", "yes" if row["ok"] else "no")
    return table


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
