"""version_order.py: a model is never scored on an interactions version older than the one it
trained on (leave-two-out and time cutoffs), nor on one whose held-out part starts before its
training rows end (time cutoffs); the error names both versions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cl_core.config import InteractionsSourceSpec
from cl_core.datasets import DatasetStore
from cl_core.evaluation.version_order import OlderVersionError, check_version_order

# Two users, five interactions each at t = 1..5; a later version adds t = 6 and 7.
EARLY = [(user, item, t) for user in ("a", "b") for item, t in zip((1, 2, 3, 4, 5), range(1, 6), strict=True)]
LATE = EARLY + [(user, item, t) for user in ("a", "b") for item, t in ((6, 6), (7, 7))]
LEAVE_TWO_OUT = InteractionsSourceSpec()


def _version(store: DatasetStore, folder, rows, spec, created_at: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inter.csv"
    path.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    version = store.ingest_interactions(path, "shop", spec).version
    # Published in the same second in a test: set the publication times apart.
    manifest_path = store.root / "shop" / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "created_at": created_at}))
    return store.resolve("shop", version)


def _cutoff(val_from: float, test_from: float = 6) -> InteractionsSourceSpec:
    return InteractionsSourceSpec(split={"method": "time_cutoff", "val_from": val_from, "test_from": test_from})


def test_leave_two_out_refuses_an_older_version_and_names_both(tmp_path):
    store = DatasetStore(tmp_path / "d")
    old = _version(store, tmp_path / "v1", EARLY, LEAVE_TWO_OUT, "2026-01-01T00:00:00+00:00")
    new = _version(store, tmp_path / "v2", LATE, LEAVE_TWO_OUT, "2026-02-01T00:00:00+00:00")
    check_version_order(store, "shop", old.version, new)  # trained on the older: fine
    check_version_order(store, "shop", new.version, new)  # the same version: fine
    with pytest.raises(OlderVersionError, match=rf"trained on shop@{new.version} .* cannot be scored on "
                                                rf"shop@{old.version} \(published 2026-01-01.*, older\)") as raised:
        check_version_order(store, "shop", new.version, old)
    assert isinstance(raised.value, ValueError)


def test_time_cutoffs_refuse_an_older_version_and_an_earlier_held_out_part(tmp_path):
    store = DatasetStore(tmp_path / "d")
    old = _version(store, tmp_path / "v1", EARLY, _cutoff(4, 5), "2026-01-01T00:00:00+00:00")
    new = _version(store, tmp_path / "v2", LATE, _cutoff(5, 7), "2026-02-01T00:00:00+00:00")
    check_version_order(store, "shop", old.version, new)
    with pytest.raises(OlderVersionError, match="older"):
        check_version_order(store, "shop", new.version, old)
    # Newer, but its val starts at 3: the model trained on `new` saw t = 3 and 4 in train.
    earlier = _version(store, tmp_path / "v3", LATE, _cutoff(3, 7), "2026-03-01T00:00:00+00:00")
    with pytest.raises(OlderVersionError, match=rf"shop@{new.version} \(its train split: timestamps before 5\) "
                                                rf"cannot be scored on shop@{earlier.version}, which holds out "
                                                "interactions from 3"):
        check_version_order(store, "shop", new.version, earlier)


def test_a_tie_in_publication_time_goes_by_the_store_order(tmp_path):
    store = DatasetStore(tmp_path / "d")
    same = "2026-01-01T00:00:00+00:00"
    old = _version(store, tmp_path / "v1", EARLY, LEAVE_TWO_OUT, same)
    new = _version(store, tmp_path / "v2", LATE, LEAVE_TWO_OUT, same)
    assert store.versions("shop") == [old.version, new.version]
    check_version_order(store, "shop", old.version, new)
    with pytest.raises(OlderVersionError):
        check_version_order(store, "shop", new.version, old)


def test_what_is_not_checked_and_a_training_version_that_is_gone(tmp_path):
    store = DatasetStore(tmp_path / "d")
    version = _version(store, tmp_path / "v1", EARLY, LEAVE_TWO_OUT, "2026-01-01T00:00:00+00:00")
    images = SimpleNamespace(kind="image", name="digits", version="0" * 16)
    check_version_order(store, "digits", "f" * 16, images)  # split by id, not by time
    check_version_order(store, "other", "f" * 16, version)  # another dataset: no order to keep
    with pytest.raises(OlderVersionError, match=rf"cannot check .* shop@{'f' * 16} is not in the store"):
        check_version_order(store, "shop", "f" * 16, version)
