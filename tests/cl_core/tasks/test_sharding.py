"""sharding.py: every worker's rows, disjoint, equal in number and the same on every call."""

from __future__ import annotations

import numpy as np
import pytest

from cl_core.tasks import shard_rows


@pytest.mark.parametrize("num_rows,world", [(10, 1), (10, 2), (103, 4), (7, 3)])
def test_shards_are_disjoint_sorted_and_equal_in_size(num_rows, world):
    shards = [shard_rows(num_rows, rank, world, seed=5) for rank in range(world)]
    assert {len(shard) for shard in shards} == {num_rows // world}
    joined = np.concatenate(shards)
    assert len(np.unique(joined)) == len(joined) and joined.min() >= 0 and joined.max() < num_rows
    assert all((np.diff(shard) > 0).all() for shard in shards)


def test_one_worker_takes_every_row():
    np.testing.assert_array_equal(shard_rows(12, 0, 1, seed=3), np.arange(12))


def test_the_seed_alone_decides_the_shard():
    np.testing.assert_array_equal(shard_rows(50, 1, 2, seed=7), shard_rows(50, 1, 2, seed=7))
    assert not np.array_equal(shard_rows(50, 1, 2, seed=7), shard_rows(50, 1, 2, seed=8))
