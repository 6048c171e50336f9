"""The layer contract names every module of the engine, and the cores stay free of new ``Any``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return [name.strip() for layer in layers for name in re.split(r"[:|]", layer)]


def test_every_engine_module_belongs_to_a_layer():
    """A new module or package directly under engine/ must be placed in the layers contract."""
    named = set(_contract_layers())
    children = {
        f"engine.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "engine").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert children - named == set()


def test_every_top_level_package_belongs_to_a_layer():
    """feeds, strategies and ml are layers of their own in the contract."""
    assert {"feeds", "strategies", "ml"} <= set(_contract_layers())


def test_cores_use_any_only_where_a_toml_tree_is_parsed():
    """``typing.Any`` appears in the type-checked cores only in the config loader."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    users = set()
    for entry in config["tool"]["mypy"]["files"]:
        path = ROOT / entry
        for file in ([path] if path.is_file() else path.rglob("*.py")):
            if re.search(r"\bAny\b", file.read_text()):
                users.add(file.relative_to(ROOT).as_posix())
    assert users <= {"engine/config/tree.py"}
