"""`make bench`'s runner: a numpy figure is reported, and one failing benchmark does not lose the others'."""

from __future__ import annotations

import numpy as np
import orjson

from benchmarks import common, run


def test_a_numpy_scalar_figure_becomes_a_plain_number_the_runner_can_read(capsys):
    row = common.result("p99", np.float64(0.25), "ms", 1.0, higher_is_better=False)
    assert type(row["value"]) is float and row["met"] is True
    common.emit([row])
    assert orjson.loads(capsys.readouterr().out) == [row]


def test_a_failing_benchmark_is_noted_and_the_others_are_still_written(monkeypatch):
    written = {}
    monkeypatch.setattr(run, "BENCHMARKS", [("benchmarks.no_such_benchmark_module", False),
                                            ("benchmarks.common", False)])
    monkeypatch.setattr(run.Path, "exists", lambda self: True)
    calls = []

    def fake_isolated(module):
        calls.append(module)
        if module == "benchmarks.no_such_benchmark_module":
            raise RuntimeError(f"{module} failed: ModuleNotFoundError")
        return [common.result("figure", 1.0, "x", None)]

    monkeypatch.setattr(run, "run_isolated", fake_isolated)
    monkeypatch.setattr(run, "write_markdown", lambda results, notes: written.update(results=results, notes=notes))
    assert run.main() == 1
    assert calls == ["benchmarks.no_such_benchmark_module", "benchmarks.common"]
    assert [r["name"] for r in written["results"]] == ["figure"]
    assert written["notes"] == ["benchmarks.no_such_benchmark_module: FAILED, no figures (its error is printed "
                                "by `make bench`)"]
