"""Which training rows each data-parallel worker takes."""

from __future__ import annotations

import numpy as np


def shard_rows(num_rows: int, rank: int, world: int, seed: int) -> np.ndarray:
    """This worker's fixed slice of a seeded permutation (identical on every rank), sorted.
    Every worker gets the same number of rows, so all run the same number of steps."""
    order = np.random.default_rng(seed).permutation(num_rows)
    per_worker = num_rows // world
    return np.sort(order[rank * per_worker : (rank + 1) * per_worker])
