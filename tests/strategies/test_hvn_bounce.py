"""S6 HVN/LVN Bounce on hand-built samples: the LVN rejection fades back toward the HVN it came from, a
deeper or slower penetration is a crossing, and the fallback nodes of a profile whose test found none."""

from __future__ import annotations

import pytest

from engine.book import BookView
from engine.features.profile import Node, ProfileSnapshot
from engine.features.vector import FeatureVector
from strategies.hvn_bounce import HvnBounce, volume_peaks, volume_troughs
from tests.strategies.helpers import tracker

NS = 1_000_000_000
HVN_LOW = Node("hvn", 1000.0, 998, 1002, 5.0)
LVN = Node("lvn", 1010.0, 1005, 1014, -4.0)
HVN_HIGH = Node("hvn", 1020.0, 1018, 1022, 5.0)


def profile(nodes=(HVN_LOW, LVN, HVN_HIGH)) -> ProfileSnapshot:
    return ProfileSnapshot(0, "session", 1, 995, (0,) * 30, (0,) * 30, 1020.0, 1022, 998, tuple(nodes))


def sample(ts_s: float, bid: int, ask: int, ofi_z: float = 0.0, seq: int = 0) -> FeatureVector:
    values = {"has_bbo": 1.0, "best_bid": float(bid), "best_ask": float(ask), "mid": (bid + ask) / 2,
              "spread": float(ask - bid), "queue_imbalance": 0.0, "cvd": 0.0, "ofi_z_ready": 1.0, "ofi_z_1s": ofi_z,
              "sigma1": 0.0}
    ts = int(ts_s * NS)
    view = BookView(0, ts, ts, seq, 0, (bid,), (10,), (ask,), (10,))
    return FeatureVector(0, ts, seq, 0, 0, values, view, (), {"profile": profile()})


def strategy() -> HvnBounce:
    """S6 with the 1 s frame turned up, the 10 s frame quiet and the 60 s frame against (a reversal's shape)."""
    return HvnBounce(0, confluence=tracker(0.8, 0.1, -0.9))


def run(s: HvnBounce, path: list[tuple[float, int, int, float]]):
    signals = [s.on_features(sample(t, bid, ask, ofi, seq)) for seq, (t, bid, ask, ofi) in enumerate(path)]
    return [x for x in signals if x is not None]


def test_a_shallow_quick_penetration_of_an_lvn_from_above_is_faded_back_up_to_the_hvn():
    """From above, the mid dips half a tick past the LVN's edge and is back above it 4 s later with OFI up: long, target
    the HVN above, stop below the dip by buf."""
    s = strategy()
    (signal,) = run(s, [(1, 1016, 1017, 0.0), (2, 1015, 1016, 0.0), (3, 1013, 1014, -1.0), (5, 1013, 1014, 0.5),
                        (7, 1015, 1016, 1.5), (8, 1016, 1017, 1.0)])
    assert signal.side == 1 and signal.evidence["lvn"] == 1.0
    assert signal.entry_price == 1016 and signal.targets[-1] >= 1020
    assert signal.stop == 1013 - 2 and signal.evidence["penetration"] == 0.5
    assert signal.evidence["home"] == 1020.0


def test_a_penetration_from_below_is_faded_back_down():
    """The mirror: from below, up into the LVN by a tick, back below with OFI down: short toward the HVN below."""
    (signal,) = run(strategy_short(), [(1, 1002, 1003, 0.0), (2, 1003, 1004, 0.0), (3, 1005, 1006, 1.0),
                                       (4, 1003, 1004, -1.5)])
    assert signal.side == -1 and signal.evidence["home"] == 1000.0
    assert signal.stop == 1006 + 2 and signal.entry_price == 1003


def strategy_short() -> HvnBounce:
    s = strategy()
    for frame, d in zip(s.confluence.frames.values(), (-0.8, -0.1, 0.9), strict=True):
        frame.d = d
        frame.history.clear()
        frame.history.extend([d])
    return s


@pytest.mark.parametrize("path", [
    # 3.5 ticks deep: a crossing
    [(1, 1016, 1017, 0.0), (2, 1010, 1011, -1.0), (3, 1015, 1016, 1.5)],
    # back after 12 s: too slow
    [(1, 1016, 1017, 0.0), (2, 1013, 1014, -1.0), (14, 1015, 1016, 1.5)],
    # back above, but the OFI still points down into the LVN
    [(1, 1016, 1017, 0.0), (2, 1013, 1014, -1.0), (3, 1015, 1016, -0.5)],
    # through the LVN and out on the other side
    [(1, 1016, 1017, 0.0), (2, 1013, 1014, -1.0), (3, 1003, 1004, -1.0), (4, 1002, 1003, 1.0)],
])
def test_no_fade_when_the_lvn_is_crossed_or_the_return_is_slow_or_unconfirmed(path):
    """Deeper than 2 ticks, back after more than 10 s, or without the OFI pointing away from the LVN: no signal."""
    assert [x for x in run(strategy(), path) if x.evidence["lvn"] == 1.0] == []


def test_fallback_nodes_are_the_volume_peaks_and_the_thin_run_between_them():
    """Without significant nodes: HVNs at the two volume peaks, an LVN over the thin bins between them."""
    volume = (10, 200, 900, 1000, 800, 100, 20, 10, 0, 5, 20, 150, 700, 1200, 900, 80, 5)
    snap = ProfileSnapshot(0, "session", 1, 990, volume, volume, 1003.0, 1005, 991, ())
    hvns = volume_peaks(snap, 1.5)
    assert [n.price for n in hvns] == [993.0, 1003.0]
    (lvn,) = volume_troughs(snap, hvns, 0.5)
    assert lvn.kind == "lvn" and lvn.price == 998.0
    assert hvns[0].hi < lvn.lo <= 998 <= lvn.hi < hvns[1].lo


def retest_path(inside_until_s: float, back_at_s: float) -> list[FeatureVector]:
    """The session starts with the mid inside HVN_LOW (998-1002), leaves it upward at ``inside_until_s``, stays 5
    ticks above, and is back in the node at ``back_at_s`` with QI 0.5 and the 1 s OFI z turning up (a long's
    confirmation); samples every 10 s."""
    path = [(t, 1000, 1001) for t in range(1, int(inside_until_s), 10)]
    path += [(t, 1007, 1008) for t in range(int(inside_until_s), int(back_at_s), 10)]
    two_hvns = ProfileSnapshot(0, "session", 1, 995, (1,) * 30, (1,) * 30, 1020.0, 1022, 998, (HVN_LOW, HVN_HIGH))
    samples = []
    for seq, (t, bid, ask) in enumerate([*path, (back_at_s, 1000, 1001)]):
        fv = sample(t, bid, ask, ofi_z=1.0 if t == back_at_s else 0.0, seq=seq)
        fv.values["queue_imbalance"] = 0.5 if t == back_at_s else 0.0
        samples.append(FeatureVector(0, fv.ts_recv, seq, 0, 0, fv.values, fv.view, (), {"profile": two_hvns}))
    return samples


def retests(inside_until_s: float, back_at_s: float) -> list:
    s = strategy()
    return [x for x in map(s.on_features, retest_path(inside_until_s, back_at_s)) if x is not None]


def test_on_a_short_profile_the_untested_time_is_a_share_of_its_span():
    """Below 2 h of profile the node needs min(untested_s, untested_share x span) untested: 0.083 x 999 s = 83 s,
    so a node left at 801 s and retested at 1000 s (199 s untested, short of the fixed 600 s) is a first retest: long
    from above, stop below the node by buf, target the HVN above."""
    s = strategy()
    s.session_start = 0
    assert s.untested_ns(1_000 * NS) == int(0.083 * 1_000 * NS)
    assert s.untested_ns(100 * NS) == int(8.3 * NS)
    (signal,) = retests(801, 1000)
    assert signal.side == 1 and signal.evidence["lvn"] == 0.0 and signal.evidence["node"] == 1000.0
    assert signal.entry_price == 1001 and signal.stop == 998 - 2 and signal.targets[-1] >= 1020
    # untested for 41 s only, short of 0.083 x 999 s: no retest
    assert retests(960, 1000) == []


def test_on_a_profile_of_two_hours_or_more_the_fixed_untested_time_applies():
    """From 2 h of profile on, untested_s (600 s) applies whatever the share: 199 s untested is not a first retest,
    611 s is."""
    s = strategy()
    s.session_start = 0
    assert s.untested_ns(7_200 * NS) == s.untested_ns(20_000 * NS) == 600 * NS
    assert retests(7_201, 7_400) == []
    (signal,) = retests(7_201, 7_812)
    assert signal.side == 1 and signal.evidence["node"] == 1000.0
