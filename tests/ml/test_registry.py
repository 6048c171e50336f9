"""The model registry: skops files verified by SHA-256 and a trusted-type list before anything loads."""

from __future__ import annotations

import zipfile

import numpy as np
import orjson
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from skops import io as sio

from engine import store
from engine.app.cli import main
from engine.store import models as rows
from ml.registry import ModelRefused, load_model, save_model, sha256_of


class NotTrusted:
    """A type no model file may hold."""

    def __init__(self) -> None:
        self.x = 1


@pytest.fixture
def trained():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y), x


@pytest.fixture
def db(tmp_path, trained):
    path = tmp_path / "c.db"
    conn = store.connect(path)
    model, _ = trained
    for version in ("regime-1", "regime-2"):
        file = tmp_path / "models" / f"{version}.skops"
        sha = save_model(model, file)
        rows.register_model(conn, version=version, kind="regime", path=str(file.resolve()), sha256=sha,
                            training={"seeds": [1, 2]}, metrics={"balanced_accuracy": 0.8})
    conn.close()
    return path


def test_round_trip_predicts_the_same(tmp_path, trained):
    model, x = trained
    sha = save_model(model, tmp_path / "m.skops")
    assert sha == sha256_of((tmp_path / "m.skops").read_bytes())
    loaded = load_model(tmp_path / "m.skops", sha)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_modified_file_is_refused(tmp_path, trained):
    model, _ = trained
    file = tmp_path / "m.skops"
    sha = save_model(model, file)
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(ModelRefused, match="differs from the registered.*modified") as info:
        load_model(file, sha)
    assert info.value.exit_code == 2


def test_unknown_file_is_refused(tmp_path, trained):
    file = tmp_path / "m.skops"
    save_model(trained[0], file)
    with pytest.raises(ModelRefused, match="unknown to the model registry"):
        load_model(file, None)


def test_untrusted_type_is_refused_even_with_matching_hash(tmp_path):
    data = sio.dumps({"payload": NotTrusted()})
    file = tmp_path / "evil.skops"
    file.write_bytes(data)
    with pytest.raises(ModelRefused, match="untrusted types.*NotTrusted"):
        load_model(file, sha256_of(data))
    with pytest.raises(ModelRefused, match="outside the trusted list"):
        save_model({"payload": NotTrusted()}, tmp_path / "other.skops")


def test_a_pickle_inside_the_archive_is_refused(tmp_path, trained):
    file = tmp_path / "m.skops"
    save_model(trained[0], file)
    with zipfile.ZipFile(file) as archive:
        schema = orjson.loads(archive.read("schema.json"))
    schema["__class__"], schema["__module__"] = "system", "os"
    forged = tmp_path / "forged.skops"
    with zipfile.ZipFile(file) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, orjson.dumps(schema) if item.filename == "schema.json" else src.read(item))
    with pytest.raises(ModelRefused, match="os.system"):
        load_model(forged, sha256_of(forged.read_bytes()))


def test_cli_list_show_promote(db, capsys):
    assert main(["models", "list", "--db", str(db), "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert [m["version"] for m in listed["models"]] == ["regime-1", "regime-2"]
    assert {m["status"] for m in listed["models"]} == {"candidate"}
    assert main(["models", "promote", "regime-1", "--db", str(db), "--json"]) == 0
    assert main(["models", "promote", "regime-2", "--db", str(db), "--json"]) == 0
    promoted = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert promoted["model"]["status"] == "champion" and promoted["verified"] is True
    assert promoted["estimator"] == "HistGradientBoostingClassifier"
    conn = store.connect(db)
    assert rows.get_model(conn, "regime-1").status == "retired"
    assert rows.champion(conn, "regime").version == "regime-2"
    conn.close()


def test_cli_refuses_a_tampered_file_in_one_line(db, capsys):
    conn = store.connect(db)
    target = rows.get_model(conn, "regime-1")
    conn.close()
    with open(target.path, "ab") as handle:
        handle.write(b"\x00")
    assert main(["models", "show", "regime-1", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(modified); refusing to load it" in err and "Traceback" not in err
    assert main(["models", "promote", "regime-1", "--db", str(db)]) == 2
    conn = store.connect(db)
    assert rows.get_model(conn, "regime-1").status == "candidate"
    conn.close()


def test_cli_refuses_an_unknown_file(db, tmp_path, trained, capsys):
    stray = tmp_path / "stray.skops"
    save_model(trained[0], stray)
    assert main(["models", "show", str(stray), "--db", str(db)]) == 2
    assert "unknown to the model registry" in capsys.readouterr().err
    assert main(["models", "show", "nope", "--db", str(db)]) == 2
