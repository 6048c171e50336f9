"""The kernel's compiled-function cache is dropped when any kernel source changes (numba alone checks
only the file a function is defined in, not the files of the functions it calls)."""

from __future__ import annotations

from engine.kernel import STAMP, refresh_cache


def test_cache_is_dropped_when_any_source_changes_and_kept_otherwise(tmp_path):
    (tmp_path / "book.py").write_text("x = 1\n")
    (tmp_path / "lane.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    assert refresh_cache(tmp_path)  # no stamp yet: whatever is cached is dropped
    compiled = [cache / "lane.run_lane-1.py311.nbi", cache / "lane.run_lane-1.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"compiled")
    assert not refresh_cache(tmp_path) and all(p.exists() for p in compiled)  # unchanged sources: kept
    (tmp_path / "book.py").write_text("x = 3\n")  # a callee's module changed, not lane.py
    assert refresh_cache(tmp_path)
    assert not any(p.exists() for p in compiled)
    assert (cache / STAMP).exists() and not refresh_cache(tmp_path)
    (cache / "other.cpython-311.pyc").write_bytes(b"")  # Python's own cache is not numba's
    (tmp_path / "book.py").write_text("x = 4\n")
    assert refresh_cache(tmp_path) and (cache / "other.cpython-311.pyc").exists()


def test_every_engine_module_the_kernel_imports_is_in_the_cache_digest():
    """A constant the compiled code reads from another engine module is compiled into it: changing that
    module must drop the cache too, so each such module is one of ``INPUTS``."""
    import ast
    from pathlib import Path

    from engine.kernel import INPUTS

    folder = Path(__file__).resolve().parents[3] / "engine" / "kernel"
    imported = set()
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine.") \
                    and not node.module.startswith("engine.kernel"):
                imported.add(node.module.removeprefix("engine.").replace(".", "/") + ".py")
    assert imported == set(INPUTS)


def test_a_change_in_an_input_module_drops_the_cache(tmp_path):
    kernel, other = tmp_path / "kernel", tmp_path / "bars.py"
    kernel.mkdir()
    (kernel / "lane.py").write_text("y = 2\n")
    other.write_text("NS = 1\n")
    assert refresh_cache(kernel, (other,))
    compiled = kernel / "__pycache__" / "lane.run_lane-1.py311.nbi"
    compiled.write_bytes(b"compiled")
    assert not refresh_cache(kernel, (other,)) and compiled.exists()
    other.write_text("NS = 2\n")  # a constant the compiled code embeds
    assert refresh_cache(kernel, (other,)) and not compiled.exists()
