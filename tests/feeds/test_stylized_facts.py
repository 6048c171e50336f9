"""Acceptance: two simulated hours of each profile reproduce the stylized facts of SPEC section 9."""

from __future__ import annotations

import pytest

from engine.config import Config
from feeds.simulator.check import run_sim_check

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skip(reason="simulator calibration in progress: remove this mark once `sim-check` passes"),
]

CHECKS = ["1", "2", "3", "4", "5", "6", "7", "8a", "8b", "9"]


@pytest.fixture(scope="module", params=["small_tick", "large_tick"])
def facts(request):
    results = run_sim_check(Config(), minutes=120, profile=request.param, seed=7)
    return {r.name.split()[0]: r for r in results}


@pytest.mark.parametrize("check", CHECKS)
def test_stylized_fact_holds(facts, check):
    """Each stylized-fact check passes (or does not apply) on a 2-hour session of three instruments."""
    result = facts[check]
    shown = {k: v for k, v in result.detail.items() if not isinstance(v, dict | list)}
    assert result.passed is not False, f"{result.name}: value {result.value}, target {result.target}, {shown}"
