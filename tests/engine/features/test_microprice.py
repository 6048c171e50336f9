"""F4 micro-price table: estimated from a process whose G* is known in closed form, sampled from
events, written and read back by ``chimera calibrate-microprice``, the weighted-mid fallback where
the table is silent, and bad files refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.app.cli import main
from engine.errors import ConfigError
from engine.events import LAST, BookSnapshot, Clock
from engine.features.microprice import MicropriceTable, book_states, estimate, load_table
from engine.testing import instrument
from feeds.tape import TapeWriter

NS = 1_000_000_000
Q_MOVE, C_SWITCH, UP_HIGH = 0.3, 0.1, 0.8  # the two-state process below


def two_state_process(steps: int, seed: int = 7) -> list[tuple[int, int, int, int]]:
    """Spread 1; state H (bid 3 lots, ask 1: I = 0.75) or L (I = 0.25). Each step: with probability
    q the mid moves one tick (up with probability u in H, 1 - u in L) and the next state is H or L
    at random; else the state switches with probability c or stays. The first move's expected size
    from H is g = q (2u - 1) / (q + 2c) (from L, -g), and a move forgets the state, so G* = G1 = +-g."""
    rng = np.random.default_rng(seed)
    bid, high = 1000, True
    states = []
    for _ in range(steps):
        states.append((bid, bid + 1, 3, 1) if high else (bid, bid + 1, 1, 3))
        u = rng.random()
        if u < Q_MOVE:
            bid += 1 if rng.random() < (UP_HIGH if high else 1 - UP_HIGH) else -1
            high = rng.random() < 0.5
        elif u < Q_MOVE + C_SWITCH:
            high = not high
    return states


G_HIGH = Q_MOVE * (2 * UP_HIGH - 1) / (Q_MOVE + 2 * C_SWITCH)  # 0.36 ticks


def test_the_estimate_recovers_the_known_micro_price():
    """200,000 steps of the two-state process: the table's lean is +g in H and -g in L (g = 0.36),
    within 0.02, and antisymmetric (the data are symmetrised)."""
    table, used = estimate(two_state_process(200_000), buckets=2, max_spread=1)
    low, high = table.adjustments[0]
    assert used == 199_999 and high == pytest.approx(G_HIGH, abs=0.02) and low == pytest.approx(-high, abs=1e-12)
    assert table.lean(0.75, 1) == high and table.lean(0.25, 1) == low and table.lean(0.75, 2) is None


def test_jumps_larger_than_max_jump_and_wide_spreads_are_dropped():
    """A two-tick mid jump and a spread beyond S_max leave no transition; a state never seen has no lean."""
    states = [(1000, 1001, 3, 1), (1002, 1003, 3, 1), (1002, 1006, 3, 1), (1002, 1003, 1, 3)]
    table, used = estimate(states, buckets=2, max_spread=3)
    assert used == 0 and all(v is None for row in table.adjustments for v in row)


def test_book_states_are_the_book_as_of_each_grid_time():
    """Snapshots at 0.2 s and 2.5 s, sampled every second: the first state at 1 s and 2 s, the second at 3 s;
    a one-sided book reads None."""
    inst = instrument(1, "TEST")
    t0 = 100 * NS
    events = [BookSnapshot(1, t0 + 200_000_000, t0 + 200_000_000, 1, LAST, ((999, 5, 1),), ((1001, 7, 1),), 1, True),
              BookSnapshot(1, t0 + 2_500_000_000, t0 + 2_500_000_000, 2, LAST, ((999, 5, 1),), ((1002, 1, 1),), 1,
                           True),
              BookSnapshot(1, t0 + 3_500_000_000, t0 + 3_500_000_000, 3, LAST, ((999, 5, 1),), (), 1, True),
              Clock(1, t0 + 4_100_000_000, t0 + 4_100_000_000, 4, LAST)]
    assert inst.instrument_id == 1
    assert book_states(events, 1.0) == [(999, 1001, 5, 7), (999, 1001, 5, 7), (999, 1002, 5, 1), None]


def write_tape(path, states) -> None:
    """One snapshot a second of each state."""
    inst = instrument(1, "TEST")
    with TapeWriter(path, [inst], "test") as writer:
        for i, (bid, ask, qb, qa) in enumerate(states):
            ts = (100 + i) * NS + 1
            writer.write(BookSnapshot(1, ts, ts, i + 1, LAST, ((bid, qb, 1),), ((ask, qa, 1),), 1, True))


def test_the_command_writes_a_table_the_config_key_loads(tmp_path, capsys):
    """calibrate-microprice on a tape of the process: a file load_table reads, with +-g within 0.05."""
    tape, out = tmp_path / "day.jsonl", tmp_path / "micro.json"
    write_tape(tape, two_state_process(20_000))
    assert main(["calibrate-microprice", str(tape), "--out", str(out), "--buckets", "2", "--max-spread", "1",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["transitions"] == 19_998 and summary["states_seen"] == 2
    table = load_table(out)
    assert table.buckets == 2 and table.spreads == (1,)
    assert table.lean(0.75, 1) == pytest.approx(G_HIGH, abs=0.05)


def test_a_table_round_trips(tmp_path):
    """to_json then load_table gives the same buckets, spreads and leans (None kept)."""
    table = MicropriceTable(3, (1, 2), [[-0.2, 0.0, 0.2], [None, 0.0, None]])
    path = tmp_path / "t.json"
    path.write_bytes(table.to_json(samples=5))
    loaded = load_table(path)
    assert (loaded.buckets, loaded.spreads, loaded.adjustments) == (3, (1, 2), table.adjustments)


@pytest.mark.parametrize(("content", "fragment"), [
    ("{", "invalid JSON"),
    ('{"format": "other"}', 'field "format"'),
    ('{"format": "chimera-microprice", "version": 9}', "version 9"),
    ('{"format": "chimera-microprice", "version": 1, "buckets": 0, "spreads": [1], "lean": [[]]}', '"buckets"'),
    ('{"format": "chimera-microprice", "version": 1, "buckets": 2, "spreads": [], "lean": []}', '"spreads"'),
    ('{"format": "chimera-microprice", "version": 1, "buckets": 2, "spreads": [1], "lean": [[0.1]]}', '"lean"'),
    ('{"format": "chimera-microprice", "version": 1, "buckets": 1, "spreads": [1], "lean": [["x"]]}',
     '"lean"[0][0]'),
])
def test_a_bad_table_names_the_file_and_field(tmp_path, content, fragment):
    """A malformed table file is a ConfigError naming the file and what is wrong."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="bad.json") as info:
        load_table(path)
    assert fragment in str(info.value)


def test_a_run_with_a_bad_table_stops_in_one_line(tmp_path, capsys):
    """`chimera run` with features.microprice_table naming a missing file: exit 2, one line naming it."""
    missing = tmp_path / "none.json"
    code = main(["run", "--symbol", "AAPL", "--duration", "1", "--speed", "max", "--db", str(tmp_path / "r.db"),
                 "--set", f'features.microprice_table="{missing}"'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "none.json" in err[0] and "Traceback" not in err[0]
