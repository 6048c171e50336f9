"""``models list|show|promote``: the model registry of a database.

``show`` and ``promote`` verify the model file before answering: its SHA-256 must equal the one the
registry recorded and every type in it must be trusted (ml/registry.py). A modified, unknown or
untrusted file is refused with one line and exit code 2; it is never loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.markup import escape
from rich.table import Table

from engine.app.commands.common import open_database
from engine.config import Config
from engine.errors import UsageError
from engine.store import models as registry_rows
from ml.registry import load_model


def register(sub, common, reporting) -> dict:
    models = sub.add_parser("models", help="list, inspect and promote trained models")
    actions = models.add_subparsers(dest="action", required=True)
    for name, text in (("list", "every registered model version"),
                       ("show", "one model version (or file), verified and loaded"),
                       ("promote", "make a model version the champion of its kind")):
        action = actions.add_parser(name, parents=[common, reporting], help=text)
        action.add_argument("--db", metavar="PATH", help="SQLite file (default: [store] path)")
        if name != "list":
            action.add_argument("model", metavar="VERSION|FILE", help="a model version, or a model file's path")
    return {"models": cmd_models}


def resolve(conn, ref: str) -> registry_rows.ModelRow:
    """The registry row of a version or of a model file path; an unknown one is refused (exit 2)."""
    row = registry_rows.get_model(conn, ref)
    if row is None and Path(ref).exists():
        row = registry_rows.find_by_path(conn, str(Path(ref).resolve()))
        if row is None:
            load_model(ref, None)  # raises ModelRefused: unknown to the registry
    if row is None:
        raise UsageError(f"model {ref!r}: no such model version in the registry (see `chimera models list`)")
    return row


def load_verified(row: registry_rows.ModelRow) -> Any:
    """The model of a registry row, loaded only if its file is intact and trusted."""
    return load_model(row.path, row.sha256)


def cmd_models(args, config: Config) -> int:
    from engine.app.report import console

    path, conn = open_database(args, config)
    try:
        if args.action == "list":
            rows = [row.as_dict() for row in registry_rows.list_models(conn)]
            summary: dict = {"command": "models list", "db": path, "models": rows}
            text: Any = models_table(path, rows)
        else:
            row = resolve(conn, args.model)
            model = load_verified(row)
            if args.action == "promote":
                row = registry_rows.promote_model(conn, row.version)
            summary = {"command": f"models {args.action}", "db": path, "model": row.as_dict(),
                       "verified": True, "estimator": type(model).__name__}
            text = model_text(summary)
    finally:
        conn.close()
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        console().print(text)
    return 0


def models_table(path: str, rows: list[dict]) -> Table:
    table = Table(title=f"Models in {escape(path)}")
    for column in ("version", "kind", "status", "mode", "created", "sha256"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(escape(row["version"]), row["kind"], row["status"], row["mode"], row["created_at"][:19],
                      row["sha256"][:12])
    return table


def model_text(summary: dict) -> str:
    row = summary["model"]
    lines = [f"{summary['command']}: {row['version']} ({row['kind']}, {summary['estimator']})",
             f"  status {row['status']}, mode {row['mode']}, file {row['path']}",
             f"  sha256 {row['sha256']} (verified)"]
    lines += [f"  {key}: {value}" for key, value in row["metrics"].items() if not isinstance(value, list | dict)]
    return escape("\n".join(lines))
