"""The optimiser's study: genes inside the configuration's ranges, identical trials whichever executor
runs them, the min-trades constraint, resuming after a crash, selection from the front."""

from __future__ import annotations

import importlib.util

import optuna
import pytest

from engine.config import Config, load_config, with_values
from engine.errors import UsageError
from engine.pipeline.evaluation import Dataset, Metrics, Session, evaluate
from ml import optimize, selection
from ml.executors import PoolExecutor, SerialExecutor, make_executor

CONFIG = load_config("config.toml")
GENES = optimize.genes_for(CONFIG.strategies.enabled)


def settings(population: int = 2, min_trades: int = 1, genes=GENES) -> optimize.Settings:
    return optimize.Settings(symbol="AAPL", seeds=(1,), minutes=2.0, tapes=(), holdout_seeds=(5,), seed=3,
                             population=population, min_trades=min_trades, genes=tuple(g.key for g in genes),
                             config_hash=CONFIG.hash())


def toy_evaluate(params: dict, dataset) -> Metrics:
    """A known landscape: mean R peaks at min_rr = 2; trades fall as the cooldown grows."""
    x = params["strategies.sweep_reversal.min_rr"]
    trades = int(60 - params["strategies.common.cooldown_s"] / 2)
    r = 1.0 - (x - 2.0) ** 2
    session = Session(label="toy", net_r=tuple(r + (0.1 if i % 2 else -0.1) for i in range(trades)), pnl=r * trades,
                      max_drawdown=0.001 * abs(x - 2.0), pnl_path=tuple(r + i % 3 for i in range(8)))
    return Metrics(trades=trades, mean_r=r, sharpe=r / 0.1, max_drawdown=session.max_drawdown, pnl=session.pnl,
                   sessions=(session,))


def study_in(tmp_path, name: str = "s", **kw) -> tuple[optuna.Study, optimize.Settings]:
    st = settings(**kw)
    return optimize.create_study(str(tmp_path / "study.db"), name, st), st


def test_every_gene_is_a_config_key_searched_inside_its_range():
    """Each gene's bounds (or both booleans) are accepted by the configuration's own validation."""
    all_genes = list(optimize.GENES.values())
    assert len(all_genes) == len(set(g.key for g in all_genes))
    for gene in all_genes:
        values = (False, True) if gene.kind == "bool" else (gene.low, gene.high)
        for value in values:
            with_values(Config(), {gene.key: int(value) if gene.kind == "int" else value})


def test_genes_follow_the_enabled_strategies():
    """Only the shared genes and those of enabled strategies are searched."""
    keys = [g.key for g in optimize.genes_for(["vacuum_entry"])]
    assert keys == [g.key for g in optimize.SHARED] + [g.key for g in optimize.SEARCH_SPACE["vacuum_entry"]]


def test_the_search_improves_on_a_known_landscape_and_keeps_every_trial(tmp_path):
    """On a landscape peaking at min_rr = 2, NSGA-II's third generation beats its random first on the whole,
    and the stored trials carry their metrics and sessions."""
    study, st = study_in(tmp_path, population=6)
    optimize.run_study(study, st, toy_evaluate, None, 18, SerialExecutor())
    trials = selection.completed(study)
    assert len(trials) == 18
    first = sorted(t.values[0] for t in trials[:6])
    later = sorted(t.values[0] for t in trials[12:])
    assert sum(later) > sum(first)  # the third generation is better on the whole than the random first
    assert trials[0].user_attrs["sessions"][0]["label"] == "toy"


def test_infeasible_trials_stay_off_the_front(tmp_path):
    """With min trades above what long cooldowns give, those trials are infeasible and never on the front."""
    study, st = study_in(tmp_path, population=4, min_trades=30)
    optimize.run_study(study, st, toy_evaluate, None, 8, SerialExecutor())
    trials = selection.completed(study)
    infeasible = [t for t in trials if t.user_attrs["metrics"]["trades"] < 30]
    assert infeasible and all(t.constraints == {"min_trades": 30 - t.user_attrs["metrics"]["trades"]}
                              for t in infeasible)
    assert all(t.user_attrs["metrics"]["trades"] >= 30 for t in selection.pareto_front(trials))


def test_resume_requeues_a_trial_left_running_and_completes_the_study(tmp_path):
    """A study interrupted with a trial running continues from storage: that trial is failed, its parameters
    are evaluated again, and the study reaches the number of trials asked for."""
    study, st = study_in(tmp_path, population=2)
    optimize.run_study(study, st, toy_evaluate, None, 2, SerialExecutor())
    crashed = study.ask()
    left = optimize.suggest(crashed, GENES)
    resumed, loaded = optimize.load_study(str(tmp_path / "study.db"), "s")
    assert loaded == st
    optimize.run_study(resumed, loaded, toy_evaluate, None, 4, SerialExecutor())
    trials = resumed.get_trials()
    assert trials[crashed.number].state == optuna.trial.TrialState.FAIL
    assert len(selection.completed(resumed)) == 4
    assert trials[crashed.number + 1].params == left


def test_settings_of_a_study_older_than_the_losing_streak_option_keep_the_stop_it_ran_with():
    """Studies recorded before the option evaluated with the kill switch's losing-streak trigger on; resumed,
    they keep it, so their new trials are judged as their old ones."""
    recorded = settings().as_dict()
    assert recorded.pop("losing_streak_stop") is False
    assert optimize.Settings.from_dict(recorded).losing_streak_stop is True


def test_an_unknown_study_is_refused_naming_the_studies_there(tmp_path):
    """--resume of a study that is not in the file names the ones that are."""
    study_in(tmp_path)
    with pytest.raises(UsageError, match=r"no such study .* \(studies: s\)"):
        optimize.load_study(str(tmp_path / "study.db"), "nope")


def _trials_with(executor, tmp_path, name: str) -> tuple[list, dict | None]:
    study, st = study_in(tmp_path, name=name, population=2)
    dataset = Dataset(config=CONFIG, symbol="AAPL", seeds=(1,), minutes=2.0)
    try:
        optimize.run_study(study, st, evaluate, dataset, 4, executor)
    finally:
        executor.close()
    trials = selection.completed(study)
    return [(t.params, t.values, t.user_attrs["sessions"]) for t in trials], selection.choose(trials, 1.0)[1]


def test_serial_and_process_pool_give_identical_trials(tmp_path):
    """For one seed, the study's trials, metrics and chosen parameters are the same in this process and
    in a pool of two spawned workers."""
    serial = _trials_with(SerialExecutor(), tmp_path, "serial")
    pooled = _trials_with(PoolExecutor(2), tmp_path, "pool")
    assert pooled == serial
    assert any(values[0] != 0 for _, values, _ in serial[0])  # trades happened: the comparison has content


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install '.[distributed]')")
def test_ray_gives_the_trials_of_the_serial_run(tmp_path):
    """On a local Ray with two CPUs the trials and the chosen parameters equal the serial run's."""
    import ray

    serial = _trials_with(SerialExecutor(), tmp_path, "serial")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert _trials_with(make_executor("ray", 2), tmp_path, "ray") == serial
    finally:
        ray.shutdown()
