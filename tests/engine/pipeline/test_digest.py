"""Pinned digests of what the reference path persists, so that speed work cannot change behaviour unseen.

Every table's rows (in the order the cores emit them) are hashed for a fixed simulator session and
for the first 30 minutes of the AMZN level-5 LOBSTER day. A change of the features, the detectors
or the book changes a digest on purpose: then update ``SIMULATOR`` / ``AMZN`` with the digests the
failure prints (``python -m tests.engine.pipeline.test_digest`` prints both), and say why in the
commit. A speed change must leave every digest as it is.
"""

from __future__ import annotations

import hashlib

import orjson
import pytest

from engine.config import load_config
from engine.pipeline import RunOptions, run_reference

SIMULATOR = {
    "book_samples": "2eb633b2e0b188e9",
    "detections": "e4c7511c4e260170",
    "equity": "bcee06dfc5f2e5ba",
    "feature_samples": "debfb191e3c175ce",
    "fills": "f72208bd91246c58",
    "instruments": "5d0c4e93e1663045",
    "integrity": "67a6cd22cc2a4eb3",
    "orders": "64e2099e2ca838ff",
    "round_trips": "f7e463f82c82bd89",
    "signals": "e6b2a3782cf40504",
    "trades": "6541d80b56d3e0cf",
    "truth_labels": "e4d7011f1206e080",
}

AMZN = {
    "book_samples": "d8c6007bda869b89",
    "detections": "f60c794d7b1c4fa6",
    "equity": "8c92c8363edd877c",
    "feature_samples": "aa98d6f3511e0139",
    "fills": "b6d6ae3b27356bd4",
    "instruments": "1e4ca8f32da7e8a8",
    "integrity": "285cfa59323e33e3",
    "orders": "525822e574ce8136",
    "round_trips": "2286c3a28ce085e2",
    "signals": "1f1c5c7f304938ee",
    "trades": "be2793e2b5e30a9f",
}


def digests(records: list) -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of each table's rows, in emission order."""
    hashes: dict[str, hashlib._Hash] = {}
    for table, row in records:
        hashes.setdefault(table, hashlib.sha256()).update(orjson.dumps(row) + b"\n")
    return {table: h.hexdigest()[:16] for table, h in sorted(hashes.items())}


def simulator_digests() -> dict[str, str]:
    from feeds.simulator import MarketSimulator

    config = load_config()
    feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=120.0)
    return digests(run_reference(feed, config, RunOptions())[1])


def amzn_digests() -> dict[str, str]:
    from feeds.lobster import LobsterFeed
    from feeds.lobster_files import locate_sample

    feed = LobsterFeed(locate_sample(5)[0])
    return digests(run_reference(feed, load_config(), RunOptions(duration_s=1800.0))[1])


def test_simulator_session_rows_are_pinned():
    """Two minutes of AAPL and TSLA (seed 5), every feature and detector on: every table as pinned."""
    assert simulator_digests() == SIMULATOR


def test_amzn_half_hour_rows_are_pinned():
    """The first 30 minutes of the AMZN level-5 day: every table as pinned."""
    from feeds.lobster_files import lobster_available

    if not lobster_available(5):
        pytest.skip("the LOBSTER AMZN level-5 sample is not available ($CHIMERA_DATA or ../shared/data)")
    assert amzn_digests() == AMZN


if __name__ == "__main__":
    print("SIMULATOR =", simulator_digests())
    print("AMZN =", amzn_digests())
