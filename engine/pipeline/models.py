"""The models a run uses: the registry's champions, verified and loaded before the run starts.

``load_run_models`` reads the champion of each kind from the run's database (``engine/store/models.py``)
and loads its file only if the SHA-256 matches the registry and every type in it is trusted
(``ml/registry.py``); a modified, missing or untrusted file raises ``ModelRefused`` (one line, exit
code 2) before any run row is written. ``--no-ml`` loads nothing.

Mode (SPEC section 12): a model trained only on simulated data runs ``shadow`` on real data (replays of
LOBSTER, DBN and tape files): its scores are computed and recorded (F26 in the feature samples and
the signals' evidence) but do not gate or size anything. On simulated data, or when the registry
marks it ``live`` (a real-data check passed), it runs ``live``.

Only the regime model exists as a pipeline model so far; without a signal classifier the confidence
stays the fallback ``S_raw * C`` (SPEC 4.8), which ``confidence_note`` says in the run summary.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from engine.store import models as registry_rows
from ml.registry import load_model

FALLBACK_NOTE = "S_raw*C fallback (no signal classifier in the registry)"
DISABLED_NOTE = "S_raw, models disabled (--no-ml)"


@dataclass(frozen=True)
class LoadedModel:
    kind: str
    version: str
    mode: str  # "live" or "shadow"
    model: object

    def describe(self) -> dict:
        return {"kind": self.kind, "version": self.version, "mode": self.mode}


@dataclass(frozen=True)
class RunModels:
    """The verified models of one run (none with ``--no-ml`` or an empty registry)."""

    regime: LoadedModel | None = None
    disabled: bool = False

    def describe(self) -> list[dict]:
        """``[{kind, version, mode}]`` of the models that ran."""
        return [m.describe() for m in (self.regime,) if m is not None]

    def confidence_note(self) -> str:
        return DISABLED_NOTE if self.disabled else FALLBACK_NOTE


def run_mode(row: registry_rows.ModelRow, real_data: bool) -> str:
    """``shadow`` for a model trained only on simulated data on real data (SPEC 12), else ``live``."""
    simulated_only = row.mode == "shadow" or row.training.get("source") == "simulator"
    return "shadow" if real_data and simulated_only else "live"


def load_run_models(conn: sqlite3.Connection, *, no_ml: bool, real_data: bool) -> RunModels:
    """The champions of the run's registry, verified and loaded (see the module docstring).

    Raises:
        ModelRefused: a champion's file is modified, missing, unknown or holds an untrusted type.
    """
    if no_ml:
        return RunModels(disabled=True)
    row = registry_rows.champion(conn, "regime")
    if row is None:
        return RunModels()
    model = load_model(row.path, row.sha256)
    return RunModels(regime=LoadedModel("regime", row.version, run_mode(row, real_data), model))
