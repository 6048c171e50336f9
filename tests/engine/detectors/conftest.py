"""The AMZN LOBSTER days (5 and 1 levels) as ``(instrument, events)``, read once per test session."""

from __future__ import annotations

import pytest

from feeds.lobster import LobsterFeed, lobster_available, locate_sample


@pytest.fixture(scope="session", params=[1, 5])
def amzn(request, tmp_path_factory):
    if not lobster_available(request.param):
        pytest.skip("LOBSTER sample data not found under $CHIMERA_DATA or ../shared/data")
    message, _ = locate_sample(request.param, tmp_path_factory.mktemp("lobster"))
    feed = LobsterFeed(message)
    return feed.instruments()[0], list(feed.events())
