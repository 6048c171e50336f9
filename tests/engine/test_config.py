"""Config loading: defaults, the shipped config.toml, --set overrides, errors that name their path, hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import pytest

from engine.config import DEFAULT_INSTRUMENTS, Config, InstrumentSpec, load_config, parse_override
from engine.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "config.toml"


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    assert info.value.exit_code == 2
    return str(info.value)


# ---- defaults and the shipped file ------------------------------------------------------------------
def test_defaults_load_without_a_file():
    """No file and no overrides give the built-in defaults."""
    config = load_config()
    assert config == Config()
    assert config.run.symbols == ["AAPL", "NVDA", "TSLA"]
    assert config.pipeline.queue_size == 64
    assert config.instruments == DEFAULT_INSTRUMENTS
    assert load_config(overrides=[]) == config


def test_an_empty_file_is_the_defaults(tmp_path):
    """Every key has a default, so an empty file is a valid configuration."""
    assert load_config(write(tmp_path, "")) == Config()


def test_shipped_config_toml_is_exactly_the_builtin_defaults():
    """config.toml loads to the built-in defaults (the file cannot drift from the code)."""
    config = load_config(SHIPPED)
    assert config == Config()
    assert config.hash() == Config().hash()


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.add(path)
        if isinstance(value, dict):
            out |= _keys(value, path + ".")
    return out


def test_shipped_config_toml_names_every_key():
    """config.toml lists every key of the config tree (every section, both profiles, each instrument)."""
    in_file = _keys(tomllib.loads(SHIPPED.read_text()))
    in_code = _keys(msgspec.to_builtins(Config()))
    missing, unknown = sorted(in_code - in_file), sorted(in_file - in_code)
    assert not missing, f"keys missing from config.toml (add them with their default and a comment): {missing}"
    assert not unknown, f"keys in config.toml that the code does not know: {unknown}"


def test_shipped_config_toml_comments_every_key():
    """Every key line of config.toml carries a comment, on the line itself or the line above."""
    lines = SHIPPED.read_text().splitlines()
    undocumented = [
        line for index, line in enumerate(lines)
        if re.match(r"^\w+ = ", line) and "#" not in line and not lines[index - 1].startswith("#")
    ]
    assert undocumented == []


# ---- files ------------------------------------------------------------------------------------------
def test_file_values_are_read_and_the_rest_stays_default(tmp_path):
    """A file sets only the keys it names."""
    config = load_config(write(tmp_path, '[risk]\nmax_position = 7\n[run]\nsymbols = ["ES"]\n'))
    assert config.risk.max_position == 7
    assert config.run.symbols == ["ES"]
    assert config.risk.order_size == Config().risk.order_size
    assert config.store == Config().store


def test_missing_file_names_the_file(tmp_path):
    """A config path that does not exist is a ConfigError naming it."""
    path = tmp_path / "nope.toml"
    message = error_of(path)
    assert str(path) in message and "not found" in message


def test_unreadable_file_names_the_file(tmp_path):
    """A directory or a non-UTF-8 file given as config is a ConfigError naming it."""
    assert str(tmp_path) in error_of(tmp_path)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"a = '\xff\xfe'\n")
    assert str(binary) in error_of(binary)


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    """A TOML syntax error names the file and the line."""
    path = write(tmp_path, "[run]\nseed = = 3\n")
    message = error_of(path)
    assert str(path) in message and "line 2" in message


def test_unknown_key_names_its_path(tmp_path):
    """An unknown key is an error naming the key and its table, from a file or from --set."""
    path = write(tmp_path, "[risk]\nmax_postion = 5\n")
    message = error_of(path)
    assert str(path) in message and "max_postion" in message and "`$.risk`" in message
    assert "`$.pipeline`" in error_of(overrides=["pipeline.queue_sise=3"])
    assert "unknown field `riks`" in error_of(overrides=["riks.max_position=3"])  # top level: no path


def test_type_errors_name_the_path(tmp_path):
    """A value of the wrong type names its full key path."""
    assert "`$.risk.max_position`" in error_of(overrides=['risk.max_position="lots"'])
    assert "`$.features.depth_ticks[1]`" in error_of(overrides=['features.depth_ticks=[5, "x"]'])
    assert "`$.simulator.large_tick.sigma0`" in error_of(overrides=['simulator.large_tick.sigma0="fast"'])
    message = error_of(write(tmp_path, "[run]\nseed = 1.5\n"))
    assert "`$.run.seed`" in message and "c.toml" in message


def test_instrument_errors_name_the_symbol(tmp_path):
    """Errors inside an [instruments.*] table name the symbol, not a generic dict entry."""
    assert "`$.instruments.XYZ.tick_size`" in error_of(overrides=["instruments.XYZ.tick_size=0.05"])
    assert "`$.instruments.XYZ`" in error_of(overrides=["instruments.XYZ.tick_sise=\"0.05\""])
    assert "`$.instruments.XYZ`" in error_of(overrides=["instruments.XYZ=5"])
    message = error_of(write(tmp_path, "[instruments.ES]\nbeta = \"high\"\n"))
    assert "`$.instruments.ES.beta`" in message and "c.toml" in message


# ---- --set ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "get", "expected"),
    [
        ("pipeline.queue_size=1", lambda c: c.pipeline.queue_size, 1),
        ("run.duration_s=12.5", lambda c: c.run.duration_s, 12.5),
        ("run.duration_s=30", lambda c: c.run.duration_s, 30.0),  # an int where a float is expected
        ('run.speed="10"', lambda c: c.run.speed, "10"),
        ("run.feed=simulator", lambda c: c.run.feed, "simulator"),  # a bare word is a string
        ('run.symbols=["ES", "SPY"]', lambda c: c.run.symbols, ["ES", "SPY"]),
        ("features.trade_window_s=[1.0, 2.5]", lambda c: c.features.trade_window_s, [1.0, 2.5]),
        ("book.check_l3=true", lambda c: c.book.check_l3, True),
        ("simulator.small_tick.sigma0=3.5", lambda c: c.simulator.small_tick.sigma0, 3.5),
        (" store.path = other.db ", lambda c: c.store.path, "other.db"),
    ],
)
def test_set_overrides_one_key(override, get, expected):
    """--set a.b=value parses the value as TOML and changes only that key."""
    config = load_config(overrides=[override])
    assert get(config) == expected
    assert type(get(config)) is type(expected)


def test_set_adds_an_instrument_and_keeps_the_builtin_ones():
    """--set instruments.XYZ.tick_size="0.05" adds XYZ with default fields; built-in symbols stay."""
    config = load_config(overrides=['instruments.XYZ.tick_size="0.05"', "instruments.XYZ.lot_size=100"])
    assert config.instruments["XYZ"] == InstrumentSpec(tick_size="0.05", lot_size=100)
    assert {k: v for k, v in config.instruments.items() if k != "XYZ"} == DEFAULT_INSTRUMENTS
    assert config.instrument("XYZ").tick_size == "0.05"
    assert config.instrument("UNKNOWN") == InstrumentSpec()


def test_partial_override_of_a_builtin_instrument_keeps_its_other_fields(tmp_path):
    """Changing one field of a built-in symbol keeps its profile, tick size and the rest."""
    config = load_config(overrides=["instruments.TSLA.start_price=300.0"])
    assert config.instruments["TSLA"] == msgspec.structs.replace(DEFAULT_INSTRUMENTS["TSLA"], start_price=300.0)
    from_file = load_config(write(tmp_path, "[instruments.ES]\nliquidity = 2.0\n"))
    assert from_file.instruments["ES"] == msgspec.structs.replace(DEFAULT_INSTRUMENTS["ES"], liquidity=2.0)


def test_set_wins_over_the_file(tmp_path):
    """Overrides apply after the file, and later overrides after earlier ones."""
    path = write(tmp_path, "[risk]\nmax_position = 7\norder_size = 3\n")
    config = load_config(path, ["risk.max_position=9", "risk.max_position=11"])
    assert (config.risk.max_position, config.risk.order_size) == (11, 3)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("pipeline.queue_size", "expected KEY=VALUE"),
        ("=3", "empty key"),
        (" =3", "empty key"),
    ],
)
def test_bad_set_syntax_is_a_config_error(override, fragment):
    """A --set without KEY=VALUE, or with an empty key, is a ConfigError quoting it."""
    message = error_of(overrides=[override])
    assert fragment in message and "--set" in message


def test_set_through_a_value_that_is_not_a_table():
    """--set a.b.c=1 where a.b already holds a value names the offending key."""
    message = error_of(overrides=["run.seed=3", "run.seed.low=1"])
    assert "'seed' is not a table" in message


def test_parse_override_values():
    """Values are TOML scalars or arrays; anything TOML cannot parse is kept as a string."""
    assert parse_override("a.b=1") == ("a.b", 1)
    assert parse_override("a=1.5e3") == ("a", 1500.0)
    assert parse_override('a=["x", 2]') == ("a", ["x", 2])
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a=") == ("a", "")


# ---- hash -------------------------------------------------------------------------------------------
def test_config_hash_is_stable_and_changes_with_any_value():
    """Equal configs hash equally (however built); changing one value changes the hash."""
    base = load_config().hash()
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert load_config().hash() == base == Config().hash()
    assert load_config(overrides=["run.seed=7"]).hash() == base  # the default value, set explicitly
    changed = {
        load_config(overrides=[o]).hash()
        for o in ("run.seed=8", "simulator.small_tick.k0=14.0", 'instruments.ES.tick_size="0.5"',
                  'instruments.NEW.profile="small_tick"', 'run.symbols=["NVDA", "AAPL", "TSLA"]')
    }
    assert base not in changed and len(changed) == 5


def test_maker_fee_is_no_longer_a_key():
    """execution.maker_fee_per_lot was read by nothing and is gone: setting it is an unknown-key error."""
    message = error_of(overrides=["execution.maker_fee_per_lot=-0.002"])
    assert "unknown field `maker_fee_per_lot`" in message and "`$.execution`" in message
