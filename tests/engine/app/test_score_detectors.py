"""`chimera score-detectors`: the planted-truth table and the LOBSTER hidden-liquidity score."""

from __future__ import annotations

import json

import pytest

from engine.app.cli import main
from feeds.lobster import lobster_available, locate_sample

KEYS = {"detector", "precision", "recall", "matched", "missed", "false", "delay_ms_p50"}


def test_one_preset_gives_one_json_object_per_detector(capsys):
    """On spoof_pull the spoof detector finds the planted spoof; every row has the documented keys."""
    assert main(["score-detectors", "--scenario", "spoof_pull", "--seeds", "2", "--background", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {row["detector"]: row for row in summary["detectors"]}
    assert all(set(row) >= KEYS for row in rows.values())
    spoof = rows["SpoofDetection"]
    assert (spoof["recall"], spoof["matched"], spoof["missed"]) == (1.0, 2, 0)
    assert summary["sessions"] == 2


def test_an_unknown_preset_is_one_line(capsys):
    """--scenario with a name that is no preset: exit 2 naming it."""
    assert main(["score-detectors", "--scenario", "nope", "--seeds", "1"]) == 2
    assert "--scenario nope: no such preset" in capsys.readouterr().err


def test_lobster_hidden_liquidity_beats_the_baseline(tmp_path, capsys):
    """On the AMZN level-1 day the hidden-liquidity detector's precision is well above flagging every hidden
    execution, at a recall of at least 0.95 (issue 14 item 5)."""
    if not lobster_available(1):
        pytest.skip("LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data")
    message, _ = locate_sample(1, tmp_path)
    assert main(["score-detectors", "--lobster", str(message), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["detectors"]
    ours, baseline = rows
    assert ours["detector"] == "hidden_liquidity" and ours["episodes"] == 195
    assert ours["recall"] >= 0.95 and ours["precision"] >= 2 * baseline["precision"]


SMALL_PACK = ("iceberg_defense", "iceberg_exhausted", "stacked_absorption", "breakout_sweep", "stop_run_reversal",
              "vacuum", "spoof_pull")
# (recall, precision) bars of the small pack; None: reported, not asserted here
SMALL_PACK_BARS = {
    "IcebergDetection": (0.7, 0.6),
    "AbsorptionDetection": (0.8, 0.8),
    "VacuumDetection": (0.8, 0.8),
    "SweepDetection": (0.9, 0.9),
    "HiddenLiquidity": (0.9, 0.7),
    "SpoofDetection": (0.8, 0.8),
}


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory) -> dict[str, dict]:
    """The small pack's rows by detector (one run for the tests below)."""
    out = tmp_path_factory.mktemp("score") / "summary.json"
    args = ["score-detectors", "--seeds", "2", "--background", "0", "--json", "--summary-json", str(out)]
    for preset in SMALL_PACK:
        args += ["--scenario", preset]
    assert main(args) == 0
    return {row["detector"]: row for row in json.loads(out.read_text())["detectors"]}


def test_a_small_pack_meets_its_documented_bar(small_pack):
    """Two seeds of the seven presets that plant icebergs, absorbers, sweeps, vacuums and spoofs (issue 14 item 4's
    smaller pack; the standard pack is 20 seeds of every preset plus background sessions). Measured (recall,
    precision): iceberg (1.0, 1.0), absorption (0.92, 1.0; 25 natural labels, 23 found, no false detection; 7 of
    the 11 planted ones found), vacuum (1.0, 1.0; 14 natural labels; the 4 planted ones found), sweep (1.0, 1.0;
    383 labels, 8 planted and 375 natural), hidden liquidity (1.0, 0.76), spoofing (1.0, 1.0). The bar: iceberg
    (0.7, 0.6), absorption (0.8, 0.8), vacuum (0.8, 0.8), sweep (0.9, 0.9), hidden liquidity (0.9, 0.7),
    spoofing (0.8, 0.8). Sweeps, vacuums and absorptions are scored against complete truth: the simulator labels
    every aggressive order that executes at two or more prices (SPEC F22), every F18 vacuum and every F20
    absorption of its own flow as natural events (feeds/simulator/natural.py); the vacuum and absorption recall
    counts those (a planted absorber that was used up and traded through is no F20 event; ``recall_planted``
    gives the recall against the planted labels alone). Before the natural vacuum and absorption labels,
    absorption precision was 0.30 and vacuum 0.75: every false event was a real event of the background flow
    (absorption: 19 false and 17 unscored detections, all at levels whose executed volume was background orders
    and hidden fills, 20 of them in the warm-up the presets of a seed share; vacuum: 2 false and 6 unscored, the
    depth removed by background cancels, orders reaching the end of their lifetime in 5 and stale-quote cancels
    in 3). With the labels, absorptions stayed false (17 of them, precision 0.60, while the detector let one
    aggressive order trade past a price re-quoted within its 50 ms grace): most were levels one sell had traded
    through (the bid taken and a lot below it, the bid re-quoted at once), which SPEC F20's adv = 0 says are
    broken. The detector now breaks a price on any trade beyond it, and no false detection is left."""
    for detector, (recall, precision) in SMALL_PACK_BARS.items():
        row = small_pack[detector]
        assert row["recall"] >= recall, row
        assert precision is None or row["precision"] >= precision, row
