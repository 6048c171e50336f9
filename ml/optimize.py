"""Multi-objective search over the strategies' parameters (SPEC 8) with optuna's NSGA-II.

- Genome: the genes below, per strategy and shared, each a config key with a search range inside the
  key's configuration range (tested); floats and ints use SBX crossover (eta 15) and polynomial
  mutation, booleans uniform crossover, as optuna's ``NSGAIISampler`` does with ``SBXCrossover``.
- Objectives: maximise net mean R per trade, maximise the per-trade Sharpe, minimise the max
  drawdown; constraint ``trades >= min_trades`` over the evaluation (``Trial.set_constraint``: a feasible
  trial dominates an infeasible one).
- Common random numbers: every trial is evaluated on the same dataset (simulator seeds, tapes).
- Determinism: the sampler is seeded and asks a whole generation (``population`` trials) in the main
  process, the evaluations run anywhere (executors.py), and the results are told in trial order; so
  serial, pool and Ray runs of one seed give identical trials.
- Storage: the study in one SQLite file, as optuna's journal (study_store.py); every trial keeps its
  metrics and per-session figures as user attributes (what the validation needs) and the CPU seconds
  of its evaluation by part (``cpu_s``, a measurement no figure depends on), the study keeps its
  settings, so ``--resume`` continues it (trials left running by a crash are evaluated again first).
- Perturbation (SPEC 8, guard 4): the chosen set is evaluated again with each float or int gene moved by
  ``-10 %`` and ``+10 %`` of its search range (clipped to the range; an int moves by at least 1), one gene
  at a time, on the same sessions (common random numbers); it is robust when its Sharpe is positive and
  every perturbed Sharpe keeps at least half of it.

The evaluation function is passed in (``engine.pipeline.evaluation.evaluate`` for the product: it
drives the run's own cores), so this module stays below the pipeline in the layers.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import optuna

from engine.errors import UsageError
from ml.executors import Executor
from ml.study_store import storage

OBJECTIVES = ("mean_r", "sharpe", "max_drawdown")
DIRECTIONS = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MAXIMIZE,
              optuna.study.StudyDirection.MINIMIZE]


@dataclass(frozen=True)
class Gene:
    """One searched config key: ``kind`` float, int or bool; ``low``/``high`` bound floats and ints."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 1.0


def _f(key: str, low: float, high: float) -> Gene:
    return Gene(key, "float", low, high)


def _i(key: str, low: int, high: int) -> Gene:
    return Gene(key, "int", low, high)


S = "strategies."
SHARED = (
    _f(S + "common.buffer_sigma1", 0.25, 1.5),
    _f(S + "common.cooldown_s", 5.0, 120.0),
    Gene(S + "common.extend_target", "bool"),
    _f(S + "confluence.min_trend", 0.0, 0.6),
    _f(S + "confluence.min_reversal", 0.0, 0.6),
)
SEARCH_SPACE: dict[str, tuple[Gene, ...]] = {
    "sweep_reversal": (  # SPEC 8's example genome of S1
        _i(S + "sweep_reversal.p_max_ticks", 2, 12), _f(S + "sweep_reversal.reversal_s", 2.0, 60.0),
        _f(S + "sweep_reversal.trap_share", 0.0, 0.8), _f(S + "sweep_reversal.min_rr", 1.0, 3.0),
        _f(S + "sweep_reversal.time_stop_s", 30.0, 900.0)),
    "stacked_absorption": (
        _i(S + "stacked_absorption.min_events", 2, 5), _f(S + "stacked_absorption.min_strength", 0.5, 2.0),
        _f(S + "stacked_absorption.target_r", 1.0, 4.0), _f(S + "stacked_absorption.time_stop_s", 60.0, 900.0)),
    "iceberg_defense": (
        _i(S + "iceberg_defense.min_refills", 2, 6), _f(S + "iceberg_defense.target_stops", 1.0, 4.0),
        _f(S + "iceberg_defense.time_stop_s", 60.0, 900.0)),
    "vacuum_entry": (
        _f(S + "vacuum_entry.min_ofi_z", 0.0, 3.0), _f(S + "vacuum_entry.target_stops", 1.0, 4.0),
        _f(S + "vacuum_entry.time_stop_s", 5.0, 120.0)),
    "mean_reversion": (
        _f(S + "mean_reversion.min_dev_sigma", 1.0, 4.0), _f(S + "mean_reversion.time_stop_s", 60.0, 900.0)),
    "hvn_bounce": (
        _f(S + "hvn_bounce.min_rr", 1.0, 3.0), _f(S + "hvn_bounce.time_stop_s", 60.0, 900.0)),
    "queue_imbalance": (
        _f(S + "queue_imbalance.threshold", 0.5, 0.95), _i(S + "queue_imbalance.stop_ticks", 2, 10),
        _f(S + "queue_imbalance.reward_ratio", 1.0, 3.0), _f(S + "queue_imbalance.time_stop_s", 10.0, 300.0)),
}


GENES: dict[str, Gene] = {g.key: g for g in SHARED + tuple(x for space in SEARCH_SPACE.values() for x in space)}


def genes_for(enabled: Iterable[str]) -> list[Gene]:
    """The shared genes and those of each enabled built-in strategy (user strategies bring none)."""
    genes = list(SHARED)
    for name in enabled:
        genes += SEARCH_SPACE.get(name, ())
    return genes


def suggest(trial: optuna.trial.BaseTrial, genes: list[Gene]) -> dict[str, object]:
    """The trial's value of every gene, keyed by config key."""
    params: dict[str, object] = {}
    for g in genes:
        if g.kind == "float":
            params[g.key] = trial.suggest_float(g.key, g.low, g.high)
        elif g.kind == "int":
            params[g.key] = trial.suggest_int(g.key, int(g.low), int(g.high))
        else:
            params[g.key] = trial.suggest_categorical(g.key, [False, True])
    return params


@dataclass(frozen=True)
class Settings:
    """What a study was started with; stored in the study so ``--resume`` repeats it."""

    symbol: str
    seeds: tuple[int, ...]
    minutes: float
    tapes: tuple[str, ...]
    holdout_seeds: tuple[int, ...]
    seed: int
    population: int
    min_trades: int
    genes: tuple[str, ...]
    config_hash: str
    losing_streak_stop: bool = False  # the kill switch's losing-streak trigger in evaluations (Dataset)

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        return cls(symbol=d["symbol"], seeds=tuple(d["seeds"]), minutes=d["minutes"], tapes=tuple(d["tapes"]),
                   holdout_seeds=tuple(d["holdout_seeds"]), seed=d["seed"], population=d["population"],
                   min_trades=d["min_trades"], genes=tuple(d["genes"]), config_hash=d["config_hash"],
                   losing_streak_stop=d.get("losing_streak_stop", True))  # studies before the option had it on


def create_study(path: str, name: str, settings: Settings) -> optuna.Study:
    study = optuna.create_study(storage=storage(path), study_name=name, directions=DIRECTIONS,
                                sampler=sampler(settings))
    study.set_user_attr("settings", settings.as_dict())
    return study


def load_study(path: str, name: str) -> tuple[optuna.Study, Settings]:
    """The study ``name`` in ``path`` with its settings, or a UsageError listing the studies there."""
    store = storage(path)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if name not in names:
        raise UsageError(f"--resume {name}: no such study in {path} (studies: {', '.join(names) or 'none'})")
    attrs = optuna.load_study(study_name=name, storage=store).user_attrs
    if "settings" not in attrs:
        raise UsageError(f"--resume {name}: not a chimera optimize study")
    settings = Settings.from_dict(attrs["settings"])
    return optuna.load_study(study_name=name, storage=store, sampler=sampler(settings)), settings


def sampler(settings: Settings) -> optuna.samplers.NSGAIISampler:
    """NSGA-II seeded by the study's seed, SBX crossover (eta 15, p 0.9); the min-trades constraint is set on
    each trial (``Trial.set_constraint``, which optuna 5 reads in place of ``constraints_func``)."""
    with warnings.catch_warnings():  # SBXCrossover is marked experimental by optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIISampler(
            population_size=settings.population, seed=settings.seed,
            crossover=optuna.samplers.nsgaii.SBXCrossover(eta=15.0), crossover_prob=0.9)


def trial_record(metrics, min_trades: int) -> dict[str, object]:
    """The user attributes a trial keeps: its objectives, the constraint, its sessions and its CPU split."""
    return {
        "metrics": metrics.as_dict(),
        "cpu_s": dict(getattr(metrics, "cpu_s", None) or {}),
        "constraint": [float(min_trades - metrics.trades)],
        "sessions": [{"label": s.label, "net_r": list(s.net_r), "pnl": s.pnl, "max_drawdown": s.max_drawdown,
                      "pnl_path": list(s.pnl_path)} for s in metrics.sessions],
    }


def objective_values(metrics) -> list[float]:
    return [float(getattr(metrics, name)) for name in OBJECTIVES]


Progress = Callable[[int, int, float | None], None]  # (trials done, trials wanted, best mean R so far)


def run_study(study: optuna.Study, settings: Settings, evaluate: Callable, dataset: object, trials: int,
              executor: Executor, progress: Progress | None = None) -> None:
    """Evaluate trials until the study holds ``trials`` completed ones, one generation at a time."""
    genes = [GENES[key] for key in settings.genes]
    _requeue_running(study)
    done = _completed(study)
    if progress:
        progress(done, trials, best_mean_r(study))
    while done < trials:
        batch = [study.ask() for _ in range(min(settings.population, trials - done))]
        params = [suggest(t, genes) for t in batch]
        _tell(study, settings, batch, executor.map(evaluate, [(p, dataset) for p in params]))
        done += len(batch)
        if progress:
            progress(done, trials, best_mean_r(study))


def _requeue_running(study: optuna.Study) -> None:
    """Trials a crash left running are marked failed and their parameters queued again, so the next
    generation evaluates them first."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), skip_if_exists=False)


def _tell(study: optuna.Study, settings: Settings, trials: list[optuna.trial.Trial], results: list) -> None:
    for trial, metrics in zip(trials, results, strict=True):
        record = trial_record(metrics, settings.min_trades)
        for key, value in record.items():
            trial.set_user_attr(key, value)
        trial.set_constraint("min_trades", float(settings.min_trades - metrics.trades))
        study.tell(trial, objective_values(metrics))


def _completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def best_mean_r(study: optuna.Study) -> float | None:
    """The best net mean R of the feasible trials so far (None before any)."""
    values = [t.values[0] for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.user_attrs.get("constraint", [1.0])[0] <= 0]
    return max(values) if values else None


PERTURBATION = 0.10  # share of a gene's search range (SPEC 8)
ROBUST_SHARE = 0.5  # a perturbed set must keep this share of the unperturbed Sharpe (SPEC 8)


def perturbations(params: dict[str, object], genes: Iterable[Gene],
                  fraction: float = PERTURBATION) -> list[dict[str, object]]:
    """The moves of the perturbation check: for each float or int gene of ``params``, its value moved down
    and up by ``fraction`` of the gene's range, clipped to the range; an int moves by at least 1. Booleans
    are not perturbed. ``delta`` is the move after clipping (0 at a bound)."""
    if not 0 < fraction <= 1:
        raise UsageError(f"perturbation fraction must be in (0, 1], got {fraction}")
    moves: list[dict[str, object]] = []
    for gene in genes:
        if gene.kind == "bool" or gene.key not in params:
            continue
        base = params[gene.key]
        assert isinstance(base, int | float)
        step: float = fraction * (gene.high - gene.low)
        if gene.kind == "int":
            step = max(1, round(step))
        for direction in (-1, 1):
            wanted = base + direction * step
            value: float = min(gene.high, max(gene.low, wanted))
            if gene.kind == "int":
                value = int(value)
            moves.append({"gene": gene.key, "direction": direction, "value": value, "delta": value - base,
                          "clipped": value != wanted})
    return moves


def perturbation_check(params: dict[str, object], genes: Iterable[Gene], evaluate: Callable, dataset: object,
                       executor: Executor, base, fraction: float = PERTURBATION,
                       share: float = ROBUST_SHARE) -> tuple[list[dict[str, object]], bool]:
    """Evaluate ``params`` with each move of ``perturbations`` applied alone, on ``dataset`` (the same
    sessions as ``base``, the unperturbed metrics), and judge robustness by SPEC 8's rule.

    A move clipped to no change is not evaluated again (its figure is the base one). Each row gives the
    gene, direction, delta and value, the perturbed Sharpe (``objective``), its ``change`` from the base
    Sharpe, its trades and mean R, and ``ok``: the perturbed Sharpe keeps at least ``share`` of the base.

    Returns:
        ``(rows, robust)``: robust when the base Sharpe is positive and every row is ok.
    """
    moves = perturbations(params, genes, fraction)
    todo = [m for m in moves if m["delta"] != 0]
    results = executor.map(evaluate, [({**params, m["gene"]: m["value"]}, dataset) for m in todo])
    by_move = {id(m): r for m, r in zip(todo, results, strict=True)}
    reference = float(base.sharpe)
    rows = []
    for move in moves:
        metrics = by_move.get(id(move), base)
        objective = float(metrics.sharpe)
        rows.append({**move, "objective": objective, "change": objective - reference, "trades": metrics.trades,
                     "mean_r": float(metrics.mean_r), "ok": reference > 0 and objective >= share * reference})
    return rows, reference > 0 and all(row["ok"] for row in rows)


def now_name(symbol: str) -> str:
    return f"optimize-{symbol}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x
