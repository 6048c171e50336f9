"""Model files: saved with skops, loaded back only from bytes whose SHA-256 matches the registry and
whose every type is on an explicit trusted list.

No pickle or joblib: ``skops.io`` stores an estimator as a zip of JSON plus numpy arrays and refuses
to build any type it is not told to trust. ``load_model`` hashes the bytes it read and loads those
same bytes (no second read between the check and the load). Every refusal is a ``ModelRefused``
(exit code 2) with one line naming the file and the reason; nothing of a refused file is executed.

The registry rows themselves (version, kind, path, SHA-256, training window, metrics, status) live in
the store (``engine/store/models.py``); this module only reads and writes files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.errors import ChimeraError

# Every type a Chimera model file may contain. A file naming any other type is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.PinballLoss",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.random.mtrand.RandomState",
    "builtins.slice",
)


class ModelRefused(ChimeraError):
    """A model file that is modified, unknown to the registry, unreadable or holds an untrusted type."""

    exit_code = 2


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified_bytes(path: Path, expected_sha256: str | None, what: str) -> bytes:
    """The bytes of a registered file whose SHA-256 is ``expected_sha256`` (nothing is parsed here).

    Raises:
        ModelRefused: unknown to the registry (None), unreadable, or modified; one line naming ``what``
            and the file.
    """
    if expected_sha256 is None:
        raise ModelRefused(f"{what} {path}: unknown to the model registry; refusing to load it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelRefused(f"{what} {path}: cannot be read ({exc.strerror or exc}); refusing to load it") from None
    found = sha256_of(data)
    if found != expected_sha256:
        raise ModelRefused(f"{what} {path}: SHA-256 {found[:16]}... differs from the registered "
                           f"{expected_sha256[:16]}... (modified); refusing to load it")
    return data


def save_model(model: object, path: str | Path) -> str:
    """Write ``model`` with skops to ``path`` (parents created); return the file's SHA-256."""
    from skops import io as sio  # skops and scikit-learn load with the first model, not with every command

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = sio.dumps(model)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelRefused(f"model for {path}: holds types outside the trusted list ({', '.join(untrusted)}); "
                           "not saved")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return sha256_of(data)


def load_model(path: str | Path, expected_sha256: str | None) -> object:
    """Load a registered model file, refusing it unless its SHA-256 equals ``expected_sha256``.

    ``expected_sha256`` is None for a file the registry does not know: always refused.

    Raises:
        ModelRefused: unknown, missing, modified, unreadable, or holding an untrusted type.
    """
    from skops import io as sio

    path = Path(path)
    data = verified_bytes(path, expected_sha256, "model file")
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    except Exception as exc:  # a damaged or foreign archive: skops raises many kinds
        raise ModelRefused(f"model file {path}: not a readable skops file ({type(exc).__name__}); "
                           "refusing to load it") from None
    if untrusted:
        raise ModelRefused(f"model file {path}: holds untrusted types ({', '.join(untrusted)}); refusing to load it")
    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as exc:
        raise ModelRefused(f"model file {path}: cannot be loaded ({type(exc).__name__}: {exc}); "
                           "refusing to load it") from None
