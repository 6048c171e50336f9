"""Every detector gives the same samples (detections and their moments) whatever the batch size, on a
simulator preset where it fires."""

from __future__ import annotations

import pytest

from engine.detectors.absorption import AbsorptionDetection, AbsorptionDetector
from engine.detectors.iceberg import IcebergDetection, IcebergDetector
from engine.detectors.sweep import SweepDetection, SweepDetector
from engine.detectors.trapped import TrappedDetection, TrappedDetector
from engine.testing import run_market
from tests.engine.detectors.planted import simulate
from tests.engine.detectors.tape import finite, of_kind

CASES = [
    (AbsorptionDetector, AbsorptionDetection, "stacked_absorption", 4, 97),
    (IcebergDetector, IcebergDetection, "iceberg_defense", 4, 97),
    (SweepDetector, SweepDetection, "stop_run_reversal", 1, 37),
    (TrappedDetector, TrappedDetection, "stop_run_reversal", 2, 53),
]


@pytest.mark.parametrize(("factory", "kind", "preset", "seed", "odd"), CASES, ids=[c[1].__name__ for c in CASES])
def test_detections_do_not_depend_on_the_batch_size(factory, kind, preset, seed, odd):
    """The preset run gives the same samples in batches of 1, an odd size and everything, and fires."""
    inst, market, _, _ = simulate(preset, seed).single()
    reference = run_market(inst, market, factory)[1]
    found = of_kind(reference, kind)
    assert found and finite(*found)
    for size in (1, odd):
        assert run_market(inst, market, factory, batch_size=size)[1] == reference
