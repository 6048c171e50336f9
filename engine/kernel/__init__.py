"""The compiled per-event path (numba over column batches); ``engine.book`` and the Python listeners
are its reference. ``columns``: the batches; ``book``: the order book in arrays."""
