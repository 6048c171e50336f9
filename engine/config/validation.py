"""From a msgspec validation error to a ConfigError naming the key, what it accepts and where it was set.

msgspec reports ``Expected `int` >= 1 - at `$.pipeline.queue_size```. This module adds what it
leaves out: the values a Literal accepts (``Invalid enum value 'nope'`` becomes ``Expected
'simulator' or 'zero_intelligence', got 'nope'``), a pattern in words, the key of a check across
values (``ranges.FieldError``, reported at ``$.section.key``, not at its section), numbers that are
not finite (TOML accepts ``inf`` and ``nan``; no key does), and the origin of the value: ``--set
KEY=VALUE: `` when a ``--set`` gave it, else the config file's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import msgspec
from msgspec import inspect

from engine.config.ranges import PATTERN_MEANINGS, FieldError
from engine.errors import ConfigError

AT = re.compile(r"(.*) - at `(\$[^`]*)`", re.DOTALL)
UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`")
ENUM = re.compile(r"Invalid enum value (.*)")
STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


@dataclass(frozen=True)
class Problem:
    """One invalid value: the message (``... - at `$.path```) and the dotted keys at fault."""

    message: str
    keys: tuple[str, ...]


def problem_of(exc: msgspec.ValidationError, root: type, at: str = "$") -> Problem:
    """The problem ``exc`` reports, for a value of type ``root`` found at path ``at``."""
    text = str(exc)
    match = AT.fullmatch(text)
    message, path = (match[1], match[2]) if match else (text, "$")
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        keys = [f"{path}.{name}" for name in cause.fields]
        path = keys[0]
    else:
        unknown = UNKNOWN_FIELD.match(message)
        keys = [f"{path}.{unknown[1]}" if unknown else path]
        message = _explain(message, root, path)
    full = at + path[1:]
    return Problem(f"{message} - at `{full}`" if full != "$" else message, tuple(_dotted(at + k[1:]) for k in keys))


def non_finite(tree: object, path: str = "$") -> Problem | None:
    """The first number of a parsed TOML tree that is ``inf`` or ``nan``, if any."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return Problem(f"Expected a finite number, got {tree} - at `{path}`", (_dotted(path),))
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        found = non_finite(value, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


def config_error(problem: Problem, file: object, overrides: list[tuple[str, str]]) -> ConfigError:
    """A ConfigError prefixed with the ``--set`` that set a key at fault (the last one), else with the file."""
    for key, text in reversed(overrides):
        if any(_related(dotted, key) for dotted in problem.keys):
            return ConfigError(f"--set {text}: {problem.message}")
    return ConfigError(f"{file}: {problem.message}" if file is not None else problem.message)


def _related(dotted: str, key: str) -> bool:
    """The key at fault is ``key``, inside it (``key.x``, ``key[1]``) or a table holding it."""
    return dotted == key or dotted.startswith((f"{key}.", f"{key}[")) or (bool(dotted) and key.startswith(f"{dotted}."))


def _dotted(path: str) -> str:
    return path[2:] if path.startswith("$.") else path[1:]


def _explain(message: str, root: type, path: str) -> str:
    """Name what a Literal (or a union with one, such as ``run.speed``) accepts and what a pattern means."""
    info = _type_at(inspect.type_info(root), path)
    allowed = _describe(info) if isinstance(info, inspect.LiteralType | inspect.UnionType) else None
    if allowed:
        enum = ENUM.fullmatch(message)
        return f"Expected {allowed}, got {enum[1]}" if enum else f"Expected {allowed}"
    for pattern, meaning in PATTERN_MEANINGS.items():
        message = message.replace(f"`str` matching regex {pattern!r}", meaning)
    return message


def _type_at(info: inspect.Type | None, path: str) -> inspect.Type | None:
    for name, index in STEP.findall(path):
        if isinstance(info, inspect.StructType):
            info = next((field.type for field in info.fields if field.encode_name == name), None)
        elif isinstance(info, inspect.DictType):
            info = info.value_type
        elif isinstance(info, inspect.ListType | inspect.VarTupleType):
            info = info.item_type
        elif isinstance(info, inspect.TupleType) and index:
            info = info.item_types[int(index)]
        else:
            return None
    return info


def _describe(info: inspect.Type | None) -> str | None:
    """``'a' or 'b'``, ``a number > 0 and <= 1000000``, or None for other types."""
    if isinstance(info, inspect.LiteralType):
        return " or ".join(repr(value) for value in info.values)
    if isinstance(info, inspect.IntType | inspect.FloatType):
        bounds = [(">", info.gt), (">=", info.ge), ("<", info.lt), ("<=", info.le)]
        conditions = " and ".join(f"{op} {_number(v)}" for op, v in bounds if v is not None)
        return f"a number {conditions}".rstrip()
    if isinstance(info, inspect.UnionType):
        parts = [_describe(member) for member in info.types]
        return None if None in parts else " or ".join(str(part) for part in parts)
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
