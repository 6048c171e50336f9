"""The optimiser's study file: optuna's journal in SQLite, read back whole by a new process, nothing told
lost when the writer is killed, and files in optuna's RDB schema (earlier Chimera) still resumed."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import optuna

from ml import optimize, selection, study_store
from ml.executors import SerialExecutor
from tests.ml.test_optimize import settings, toy_evaluate


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_study_is_one_journal_table_read_back_whole_by_a_fresh_storage(tmp_path):
    """Trials, parameters, values, constraints and user attributes (inf and NaN included) written through one
    storage are what a second, independent storage on the same file reads."""
    path = str(tmp_path / "study.db")
    st = settings(population=2)
    study = optimize.create_study(path, "s", st)
    optimize.run_study(study, st, toy_evaluate, None, 4, SerialExecutor())
    study.set_user_attr("odd", [math.inf, -math.inf, math.nan])
    assert _tables(path) == {study_store.TABLE}

    again = optuna.load_study(study_name="s", storage=study_store.storage(path))
    assert [(t.number, t.params, t.values, t.constraints, t.user_attrs) for t in selection.completed(again)] == \
           [(t.number, t.params, t.values, t.constraints, t.user_attrs) for t in selection.completed(study)]
    odd = again.user_attrs["odd"]
    assert odd[:2] == [math.inf, -math.inf] and math.isnan(odd[2])


WRITER = textwrap.dedent("""
    import sys
    from ml import optimize
    from ml.executors import SerialExecutor
    from tests.ml.test_optimize import settings, toy_evaluate

    st = settings(population=2)
    study = optimize.create_study(sys.argv[1], "s", st)
    told = 0
    while True:  # a generation at a time, forever: the test kills this process
        told += 2
        optimize.run_study(study, st, toy_evaluate, None, told, SerialExecutor())
        print(told, flush=True)
""")


def test_a_writer_killed_mid_study_loses_no_trial_it_had_told(tmp_path):
    """kill -9 of the process running a study: every trial it reported as told is in the file, and the study
    resumes from there."""
    path = str(tmp_path / "study.db")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if int(line) >= 6:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    study, st = optimize.load_study(path, "s")
    done = len(selection.completed(study))
    assert done >= 6
    optimize.run_study(study, st, toy_evaluate, None, done + 2, SerialExecutor())
    assert len(selection.completed(study)) == done + 2


def test_a_study_in_optunas_rdb_schema_is_still_resumed(tmp_path):
    """A study file written with optuna's RDB storage (as Chimera did before the journal) is opened with that
    storage: its settings load and the study continues."""
    path = str(tmp_path / "old.db")
    st = settings(population=2)
    old = optuna.create_study(storage=f"sqlite:///{path}", study_name="old", directions=optimize.DIRECTIONS,
                              sampler=optimize.sampler(st))
    old.set_user_attr("settings", st.as_dict())
    optimize.run_study(old, st, toy_evaluate, None, 2, SerialExecutor())
    assert "studies" in _tables(path)
    before = [t.params for t in old.get_trials()]

    resumed, loaded = optimize.load_study(path, "old")
    assert loaded == st
    assert isinstance(study_store.storage(path), optuna.storages.RDBStorage)
    optimize.run_study(resumed, loaded, toy_evaluate, None, 4, SerialExecutor())
    assert [t.params for t in resumed.get_trials()][:2] == before
    assert len(selection.completed(resumed)) == 4
    assert study_store.TABLE not in _tables(path)
