"""The compiled per-event path (numba over column batches); ``engine.book`` and the Python listeners
are its reference. ``columns``: the batches; ``book``: the order book in arrays; ``accumulators``:
trade flow, OFI, time-weighted spread; ``structure``: swing structure; ``sweep``: the sweep detector;
``lane``: the market stage's loop over them.

Compiled functions are cached on disk (``cache=True``) next to the sources. numba checks a cached
function against its own file only, while a function compiled here embeds the functions it calls
from the other kernel modules and the constants it reads from the engine modules it imports
(``INPUTS``); so on import the cache is dropped whenever any of those sources changed (a digest of
them all, kept beside the cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

STAMP = "kernel-sources.sha256"
# engine modules outside the kernel whose constants the compiled functions read (a test checks the list)
INPUTS = ("events.py", "book.py", "features/bars.py", "features/ofi.py", "features/sample.py",
          "features/structure.py", "detectors/sweep.py", "config/detectors.py", "config/features.py")


def refresh_cache(folder: Path, inputs: tuple[Path, ...] = ()) -> bool:
    """Drop numba's cache files under ``folder/__pycache__`` unless they were compiled from the
    ``*.py`` sources of ``folder`` and ``inputs`` as they are now; True when it dropped them. A
    read-only install is left alone."""
    sources = [*sorted(folder.glob("*.py")), *inputs]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    cache = folder / "__pycache__"
    stamp = cache / STAMP
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for path in cache.glob("*.nb[ic]"):
            path.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False
    return True


_HERE = Path(__file__).resolve().parent
refresh_cache(_HERE, tuple(_HERE.parent / name for name in INPUTS))
