"""The L2 queue model against exact FIFO on the simulator's L3 stream: time-to-fill errors (SPEC 10)."""

from __future__ import annotations

from engine.config import load_config
from engine.execution.calibration import queue_time_to_fill
from engine.execution.models import ProbQueueModel, RiskAverseQueueModel
from feeds.simulator import MarketSimulator

NS = 1_000_000_000


def test_prob_queue_model_tracks_fifo_better_than_the_risk_averse_model():
    """On a large-tick simulated session (deep queues), one lot rested at each best every 5 s: the prob model's
    mean absolute time-to-fill error against exact FIFO is below the risk-averse model's, which fills later."""
    feed = MarketSimulator(["TSLA"], load_config(None, []), 7, 600.0)
    models = {"prob_n2": lambda: ProbQueueModel(2.0), "prob_n3": lambda: ProbQueueModel(3.0),
              "risk_averse": RiskAverseQueueModel}
    result = queue_time_to_fill(feed.instruments()[0], feed.events(), models, 5 * NS, 60 * NS)
    print({name: {k: round(v, 3) for k, v in row.items()} for name, row in result.items()})
    assert result["fifo"]["orders"] > 100 and result["fifo"]["mae_s"] == 0.0
    assert result["fifo"]["filled_share"] > 0.8
    assert result["prob_n2"]["mae_s"] < result["risk_averse"]["mae_s"]
    assert result["prob_n3"]["mae_s"] < result["risk_averse"]["mae_s"]
    assert result["risk_averse"]["mean_ttf_s"] > result["fifo"]["mean_ttf_s"]
