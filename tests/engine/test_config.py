"""Config loading: defaults, the shipped config.toml, --set overrides, errors that name their path, hash."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import msgspec
import pytest
from msgspec import inspect

from engine.app.cli import main
from engine.config import DEFAULT_INSTRUMENTS, PROFILES, Config, InstrumentSpec, load_config, parse_override
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
    config = load_config(write(tmp_path, '[risk]\nmax_position = 700\n[run]\nsymbols = ["ES"]\n'))
    assert config.risk.max_position == 700
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
        ('run.speed="10"', lambda c: c.run.speed, 10.0),  # a numeric string is read as its number
        ("run.speed=2", lambda c: c.run.speed, 2.0),
        ("run.speed=max", lambda c: c.run.speed, "max"),
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


# ---- ranges -----------------------------------------------------------------------------------------
ENTRY = "AAPL"  # the instrument entry whose fields stand for every [instruments.*] table


def leaves(info, path: tuple[str, ...] = ()):
    """``(dotted key, type info)`` of every leaf key of the tree (one instrument entry for all)."""
    if isinstance(info, inspect.StructType):
        for field in info.fields:
            yield from leaves(field.type, (*path, field.encode_name))
    elif isinstance(info, inspect.DictType):
        yield from leaves(info.value_type, (*path, ENTRY))
    else:
        yield ".".join(path), info


LEAVES = dict(leaves(inspect.type_info(Config)))


def numbers(info, key: str):
    """``(key, IntType | FloatType)`` of a leaf's numbers, items of lists and pairs included."""
    if isinstance(info, inspect.IntType | inspect.FloatType):
        yield key, info
    elif isinstance(info, inspect.ListType | inspect.VarTupleType):
        yield from numbers(info.item_type, f"{key}[]")
    elif isinstance(info, inspect.TupleType):
        for index, item in enumerate(info.item_types):
            yield from numbers(item, f"{key}[{index}]")
    elif isinstance(info, inspect.UnionType):
        for member in info.types:
            yield from numbers(member, key)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def bounds(info) -> list[tuple[str, float]]:
    return [(op, value) for op, value in ((">", info.gt), (">=", info.ge), ("<", info.lt), ("<=", info.le))
            if value is not None]


def refused(info, default, in_union: bool = False):
    """``(value, fragment)`` pairs the type refuses; ``fragment`` is what the error must say (the range)."""
    if isinstance(info, inspect.IntType | inspect.FloatType):
        is_float = isinstance(info, inspect.FloatType)
        step = 0.5 if is_float else 1
        outside = {">": lambda b: b, ">=": lambda b: b - step, "<": lambda b: b, "<=": lambda b: b + step}
        shown = _number if in_union else (lambda b: repr(float(b))) if is_float else str  # msgspec's format
        out = [(outside[op](bound), f"{op} {shown(bound)}") for op, bound in bounds(info)]
        return out + [(math.inf, "Expected a finite number"), (math.nan, "Expected a finite number")] * is_float
    if isinstance(info, inspect.LiteralType):
        return [("nope", f"Expected {' or '.join(repr(v) for v in info.values)}")]
    if isinstance(info, inspect.UnionType):
        return [value for member in info.types for value in refused(member, default, in_union=True)]
    if isinstance(info, inspect.StrType):
        if info.pattern and re.fullmatch(info.pattern, ""):  # empty allowed ("none"): refuse a stray word
            return [("nope", "Expected")]
        return [("", "Expected")] if info.pattern or info.min_length else []
    if isinstance(info, inspect.BoolType):
        return [("yes", "Expected `bool`")]
    if isinstance(info, inspect.ListType | inspect.VarTupleType):
        items = [([value], fragment) for value, fragment in refused(info.item_type, default[0])]
        return ([([], "length >= 1")] if info.min_length else []) + items
    if isinstance(info, inspect.TupleType):
        return [([*default[:i], value, *default[i + 1:]], fragment)
                for i, item in enumerate(info.item_types) for value, fragment in refused(item, default[i])]
    raise AssertionError(f"no refused value for {info}")


def toml(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    return json.dumps(value)


def default_of(key: str):
    node = msgspec.to_builtins(Config())
    for part in key.split("."):
        node = node[part]
    return node


CASES = [
    pytest.param(key, f"{key}={toml(value)}", fragment, id=f"{key}={toml(value)}")
    for key, info in LEAVES.items()
    for value, fragment in refused(info, default_of(key))
]


def test_every_leaf_key_has_a_refused_value():
    """The walk below reaches every key of the tree (both profiles and an instrument entry) and can refuse each."""
    walked = {key for key, _ in leaves(inspect.type_info(Config))}
    assert walked == set(_keys(msgspec.to_builtins(Config())) - _tables()) - _other_instruments()
    assert {case.values[0] for case in CASES} == walked
    assert len(walked) > 100


def _tables() -> set[str]:
    return {key for key in _keys(msgspec.to_builtins(Config())) if isinstance(default_of(key), dict)}


def _other_instruments() -> set[str]:
    return {key for key in _keys(msgspec.to_builtins(Config()))
            if key.startswith("instruments.") and not key.startswith(f"instruments.{ENTRY}")}


@pytest.mark.parametrize(("key", "override", "fragment"), CASES)
def test_every_key_refuses_a_value_outside_its_range(key, override, fragment):
    """A --set value outside a key's range or Literal is refused naming the --set, the key's path and the range."""
    message = error_of(overrides=[override])
    assert message.startswith(f"--set {override}: "), message
    assert f"`$.{key}" in message, message
    assert fragment in message, message


def test_every_numeric_key_declares_a_range():
    """No numeric key (list items and pairs included) is without a lower bound, so a new key needs a range."""
    unbounded = [key for leaf, info in LEAVES.items() for key, number in numbers(info, leaf)
                 if number.ge is None and number.gt is None]
    assert unbounded == []
    assert len([1 for leaf, info in LEAVES.items() for _ in numbers(info, leaf)]) > 80


def test_shipped_config_toml_states_every_range():
    """The comment of each numeric key in config.toml states the range its type declares."""
    lines = SHIPPED.read_text().splitlines()
    comments, section = {}, ""
    for index, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[]")
        elif match := re.match(r"^(\w+) = ", line):
            above = []
            while index and lines[index - 1].startswith("#"):
                index -= 1
                above.insert(0, lines[index].lstrip("# "))
            key = f"{section}.{match[1]}"
            comments[re.sub(r"^instruments\.\w+\.", f"instruments.{ENTRY}.", key)] = " ".join(
                [*above, line.partition("#")[2]])
    missing = []
    for leaf, info in LEAVES.items():
        for _, number in numbers(info, leaf):
            if not bounds(number):
                continue  # test_every_numeric_key_declares_a_range fails on it
            (low_op, low), *upper = bounds(number)
            text = f"{low_op} {_number(low)}" if not upper else (
                f"{'[' if low_op == '>=' else '('}{_number(low)}, {_number(upper[0][1])}"
                f"{']' if upper[0][0] == '<=' else ')'}")
            if text not in comments[leaf]:
                missing.append((leaf, text))
    assert missing == []


@pytest.mark.parametrize("tick_size", ["0", "0.0", "-1", "abc", "", "1e-2", ".5", "0.01 "])
def test_tick_size_is_a_positive_decimal_string(tick_size):
    """tick_size refuses zero, negatives and anything but a plain positive decimal, saying what it expects."""
    message = error_of(overrides=[f"instruments.XYZ.tick_size={json.dumps(tick_size)}"])
    assert 'Expected a positive decimal string, such as "0.01" - at `$.instruments.XYZ.tick_size`' in message


@pytest.mark.parametrize("tick_size", ["0.01", "0.25", "1", "5", "0.005", "10.50"])
def test_tick_size_accepts_positive_decimals(tick_size):
    """Positive decimal strings are accepted as tick sizes."""
    assert load_config(overrides=[f'instruments.XYZ.tick_size="{tick_size}"']).instruments["XYZ"].tick_size == tick_size


@pytest.mark.parametrize(("value", "expected"), [('"max"', "max"), ("10", 10.0), ('"10"', 10.0), ('"1"', 1.0),
                                                 ("0.5", 0.5), ('"0.25"', 0.25), ("1000000", 1e6)])
def test_speed_is_max_or_a_positive_number(value, expected):
    """run.speed takes "max" or a number in (0, 1000000], given as a TOML number or a numeric string."""
    assert load_config(overrides=[f"run.speed={value}"]).run.speed == expected


@pytest.mark.parametrize("value", ['"fast"', "0", '"0"', "-1", '"-2"', "1e7", "true", '""'])
def test_speed_refuses_anything_else(value):
    """Any other run.speed is refused with the values it accepts."""
    message = error_of(overrides=[f"run.speed={value}"])
    assert message.startswith(f"--set run.speed={value}: Expected 'max' or a number > 0 and <= 1000000")
    assert message.endswith(" - at `$.run.speed`")


@pytest.mark.parametrize("value", ['"nan"', '"inf"', "inf", "nan"])
def test_speed_refuses_non_finite_numbers(value):
    """A non-finite run.speed, as a number or as a string, is refused as not finite."""
    assert error_of(overrides=[f"run.speed={value}"]).startswith(f"--set run.speed={value}: Expected a finite number")


@pytest.mark.parametrize(("override", "message"), [
    ("simulator.meta_participation=[0.3, 0.2]",
     "Expected [lo, hi] with lo <= hi, got [0.3, 0.2] - at `$.simulator.meta_participation`"),
    ("simulator.vacuum_s=[10.0, 2.0]", "Expected [lo, hi] with lo <= hi, got [10.0, 2.0] - at `$.simulator.vacuum_s`"),
    ("simulator.large_tick.lo_sizes=[[1, 0.5], [2, 0.4]]", "Expected [lots, probability] pairs whose probabilities "
     "sum to 1, got 0.9 - at `$.simulator.large_tick.lo_sizes`"),
    ("simulator.small_tick.mo_sizes=[[0, 1.0]]", "Expected `int` >= 1 - at `$.simulator.small_tick.mo_sizes[0][0]`"),
    ("features.depth_ticks=[5, 5]", "Expected distinct values, got 5 twice - at `$.features.depth_ticks`"),
    ("features.trade_window_s=[5.0, 5.0]", "Expected distinct values, got 5.0 twice - at `$.features.trade_window_s`"),
    ('run.symbols=["ES", "ES"]', "Expected distinct values, got 'ES' twice - at `$.run.symbols`"),
    ('run.symbols=["E S"]', 'Expected a symbol without spaces, such as "AAPL" - at `$.run.symbols[0]`'),
    ("simulator.mo_pull_min=6.0", "Expected mo_pull_min <= mo_pull_max, got 6.0 > 5.0 - at `$.simulator.mo_pull_min`"),
    ("simulator.mo_pull_max=0.1", "Expected mo_pull_min <= mo_pull_max, got 0.2 > 0.1 - at `$.simulator.mo_pull_min`"),
    ("simulator.hawkes_c_cross=0.5", "Expected hawkes_c_self + hawkes_c_cross <= 1 (shares of the branching ratio), "
     "got 0.9 + 0.5 - at `$.simulator.hawkes_c_self`"),
    ("risk.max_position=50", "Expected order_size <= max_order_size and max_position (every order would be "
     "rejected), got 100 > 50 - at `$.risk.order_size`"),
    ("ml.target_min_r=7.0", "Expected target_min_r <= target_max_r, got 7.0 > 6.0 - at `$.ml.target_min_r`"),
    ("book.view_levels=3", "Expected store.book_sample_levels <= book.view_levels (samples are cut from the book "
     "views), got 5 > 3 - at `$.store.book_sample_levels`"),
])
def test_checks_across_values_name_the_key_and_the_set(override, message):
    """Ordered pairs, size mixtures, distinct lists and related keys are checked, naming the --set and the key."""
    assert error_of(overrides=[override]) == f"--set {override}: {message}"


def test_checks_across_values_accept_what_they_should():
    """Equal ends of a pair, mixtures summing to 1 within rounding, and equal related keys are accepted."""
    config = load_config(overrides=["simulator.meta_participation=[0.1, 0.1]", "simulator.vacuum_s=[3.0, 3.0]",
                                    "simulator.small_tick.lo_sizes=[[1, 0.1], [2, 0.2], [3, 0.7000000001]]",
                                    "risk.order_size=500", "store.book_sample_levels=10"])
    assert config.simulator.meta_participation == (0.1, 0.1)
    assert config.simulator.small_tick.lo_sizes[2] == (3, 0.7000000001)
    assert (config.risk.order_size, config.store.book_sample_levels) == (500, 10)


def test_a_file_value_out_of_range_names_the_file(tmp_path):
    """A value out of range in the config file is prefixed with the file's name, not with a --set."""
    path = write(tmp_path, '[run]\nfeed = "nope"\n[pipeline]\nqueue_size = 0\n')
    assert error_of(path) == f"{path}: Expected 'simulator' or 'zero_intelligence', got 'nope' - at `$.run.feed`"
    assert error_of(path, ['run.feed="simulator"']) == f"{path}: Expected `int` >= 1 - at `$.pipeline.queue_size`"
    assert error_of(path, ["pipeline.queue_size=-1", 'run.feed="simulator"']) == \
        "--set pipeline.queue_size=-1: Expected `int` >= 1 - at `$.pipeline.queue_size`"
    inf = write(tmp_path, "[instruments.ES]\nstart_price = inf\n", "inf.toml")
    assert error_of(inf) == f"{inf}: Expected a finite number, got inf - at `$.instruments.ES.start_price`"


def test_the_last_set_of_a_key_is_the_one_named():
    """When several --set give the refused key, the error names the last one (the one that took effect)."""
    message = error_of(overrides=["risk.order_size=-1", "risk.order_size=-2"])
    assert message == "--set risk.order_size=-2: Expected `int` >= 1 - at `$.risk.order_size`"
    unknown = "--set riks.max_position=3: Object contains unknown field `riks`"
    assert error_of(overrides=["riks.max_position=3"]) == unknown


def test_profiles_are_the_literal_values():
    """The profile names come from the Literal the instrument spec is declared with."""
    assert PROFILES == ("large_tick", "small_tick")


# ---- the command line -------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "message"), [
    ("pipeline.queue_size=-1", "Expected `int` >= 1 - at `$.pipeline.queue_size`"),
    ("pipeline.queue_size=0", "Expected `int` >= 1 - at `$.pipeline.queue_size`"),
    ("pipeline.batch_size=0", "Expected `int` >= 1 - at `$.pipeline.batch_size`"),
    ("pipeline.batch_size=-3", "Expected `int` >= 1 - at `$.pipeline.batch_size`"),
    ("store.sample_interval_ms=0", "Expected `int` >= 1000 - at `$.store.sample_interval_ms`"),
    ('instruments.AAPL.tick_size="0"', 'Expected a positive decimal string, such as "0.01" - at '
     "`$.instruments.AAPL.tick_size`"),
    ('run.speed="fast"', "Expected 'max' or a number > 0 and <= 1000000, got 'fast' - at `$.run.speed`"),
    ("run.speed=fast", "Expected 'max' or a number > 0 and <= 1000000, got 'fast' - at `$.run.speed`"),
    ("run.feed=nope", "Expected 'simulator' or 'zero_intelligence', got 'nope' - at `$.run.feed`"),
    ("risk.order_size=-100", "Expected `int` >= 1 - at `$.risk.order_size`"),
])
def test_cli_refuses_an_out_of_range_set_before_running(tmp_path, capsys, override, message):
    """`chimera run --set KEY=BAD` exits 2 with one line naming the --set, the key and its range; nothing runs."""
    db = tmp_path / "run.db"
    code = main(["run", "--symbol", "AAPL", "--duration", "2", "--set", override, "--db", str(db)])
    assert code == 2
    assert capsys.readouterr().err == f"chimera: error: --set {override}: {message}\n"
    assert not db.exists()


@pytest.mark.parametrize("duration", ["nan", "inf", "1e308"])
def test_cli_refuses_a_duration_that_is_not_a_finite_positive_number(tmp_path, capsys, duration):
    """`--duration nan|inf|1e308` exits 2 with one line naming the flag and the value; nothing runs."""
    db = tmp_path / "run.db"
    with pytest.raises(SystemExit) as info:
        main(["run", "--symbol", "AAPL", "--duration", duration, "--db", str(db)])
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"chimera run: error: argument --duration: expected a positive number "
                                       f"(at most 3.16224e+07), got '{duration}' (see --help)\n")
    assert not db.exists()


def test_cli_reads_a_numeric_speed_from_the_config(tmp_path, capsys):
    """[run] speed given as a number paces the run (the command converts it like --speed)."""
    db = tmp_path / "run.db"
    code = main(["run", "--symbol", "AAPL", "--duration", "1", "--set", "run.speed=1000", "--db", str(db), "--json",
                 "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] > 0


def test_with_values_sets_dotted_keys_and_validates_them():
    """with_values changes only the keys given, and refuses an unknown key or a value out of range by name."""
    from engine.config import with_values

    base = Config()
    changed = with_values(base, {"strategies.sweep_reversal.min_rr": 2.5, "run.seed": 3})
    assert (changed.strategies.sweep_reversal.min_rr, changed.run.seed) == (2.5, 3)
    assert changed.risk == base.risk and with_values(base, {}) == base
    with pytest.raises(ConfigError, match="min_rrr"):
        with_values(base, {"strategies.sweep_reversal.min_rrr": 2.5})
    with pytest.raises(ConfigError, match="trap_share"):
        with_values(base, {"strategies.sweep_reversal.trap_share": 1.5})
