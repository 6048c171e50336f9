"""``chimera optimize``: the study, the summary, the written configuration and its errors."""

from __future__ import annotations

import json

import pytest

from engine.app.cli import main
from engine.config import load_config


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def optimize(tmp_path, *more: str) -> list[str]:
    return ["optimize", "-c", "config.toml", "--symbol", "AAPL", "--trials", "2", "--seeds", "1,2",
            "--holdout-seeds", "5", "--minutes", "1", "--min-trades", "0", "--windows", "2",
            "--study-db", str(tmp_path / "study.db"), "--json", *more]


def test_optimize_reports_the_front_and_writes_a_config_run_accepts(tmp_path, capsys):
    """Two trials on two one-minute sessions: the summary holds the front, the chosen set with its
    in-sample and held-out figures and the guards; the written config loads with the chosen values and
    `chimera run -c` runs on it; --resume adds trials to the same study."""
    written = tmp_path / "chosen.toml"
    assert main(optimize(tmp_path, "--write-config", str(written))) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1  # --json: stdout holds the summary alone, the tables go to stderr
    summary = json.loads(out)
    assert "Pareto front of " + summary["study"] in err and "deflated Sharpe" in err
    assert summary["trials"] == 2 and summary["distinct_params"] == 2
    assert summary["settings"]["losing_streak_stop"] is False  # every signal judged unless asked
    assert summary["chosen"]["trial"] in [m["trial"] for m in summary["pareto_front"]]
    assert set(summary["holdout"]) == {"trades", "mean_r", "sharpe", "max_drawdown", "pnl"}
    assert summary["walk_forward"]["steps"][0]["train"] == [0]
    assert isinstance(summary["survives"], bool) and (summary["survives"] or summary["reasons"])
    moved = {row["gene"] for row in summary["perturbation"]}
    assert moved and moved <= set(summary["chosen"]["params"]) and isinstance(summary["robust"], bool)
    assert all({"gene", "delta", "objective", "change", "ok"} <= set(row) for row in summary["perturbation"])
    config = load_config(written)
    for key, value in summary["chosen"]["params"].items():
        section, name = key.removeprefix("strategies.").split(".")
        assert getattr(getattr(config.strategies, section), name) == value
    assert config.hash() != load_config("config.toml").hash()
    assert main(["run", "-c", str(written), "--symbol", "AAPL", "--duration", "5", "--speed", "max",
                 "--db", str(tmp_path / "run.db"), "--json"]) == 0
    assert last_json(capsys.readouterr().out)["status"] == "completed"
    assert main(["optimize", "-c", "config.toml", "--trials", "3", "--resume", summary["study"],
                 "--study-db", str(tmp_path / "study.db"), "--no-perturbation", "--json"]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert (resumed["study"], resumed["trials"]) == (summary["study"], 3)
    assert (resumed["perturbation"], resumed["robust"]) == (None, None)


def test_resume_with_another_configuration_is_refused(tmp_path, capsys):
    """A study resumed under a different effective configuration is refused in one line, exit 2."""
    assert main(optimize(tmp_path, "--no-perturbation")) == 0
    study = last_json(capsys.readouterr().out)["study"]
    code = main(["optimize", "-c", "config.toml", "--set", "risk.equity=50000", "--resume", study,
                 "--study-db", str(tmp_path / "study.db")])
    assert code == 2
    assert "configuration differs" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--seeds", "1,x"], "expected comma-separated integers"),
    (["--holdout-seeds", "2"], "also selection seeds"),
    (["--resume", "nope"], "no such study"),
    (["--address", "auto"], "--executor ray only"),
])
def test_bad_options_give_one_line_and_exit_2(tmp_path, capsys, args, message):
    """Bad seeds, held-out seeds reused for selection, an unknown study, --address without Ray: exit 2."""
    try:
        code = main(optimize(tmp_path, *args))
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
