"""MovieLens 100k from the installed wheel recbole==1.2.1 (never imported, never copied)."""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest

from cl_core.datasets import DatasetStore, IngestError, InteractionsSourceSpec, load_interactions
from cl_core.datasets.movielens import movielens_files

try:
    importlib.metadata.distribution("recbole")
    HAVE_RECBOLE = True
except importlib.metadata.PackageNotFoundError:
    HAVE_RECBOLE = False

needs_recbole = pytest.mark.skipif(
    not HAVE_RECBOLE, reason="recbole==1.2.1 is not installed (make install runs pip install --no-deps recbole==1.2.1)"
)


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    store = DatasetStore(tmp_path_factory.mktemp("store"))
    result = store.ingest_interactions("ml-100k", "ml-100k", InteractionsSourceSpec())
    return result, store.resolve("ml-100k")


@needs_recbole
@pytest.mark.slow
def test_ml100k_counts_and_leave_last_out(ml100k):
    result, version = ml100k
    assert (result.rows, result.details["users"], result.details["items"]) == (100_000, 943, 1_682)
    # Every MovieLens 100k user rated at least 20 movies: one test and one val interaction each.
    assert result.splits == {"train": 98_114, "val": 943, "test": 943}
    assert result.details["side_rows"] == {"users": 943, "items": 1_681}
    # The one bad row of the wheel: item 1412's release year reads "V".
    assert result.details["quarantined_by_cause"] == {"items": {"bad release_year": 1}}
    assert "ml-100k.item line 1413: column 3 'release_year' (release_year) is not a number: 'V'" in (
        result.quarantine_path.read_text())
    assert version.manifest["source"] == "recbole==1.2.1:ml-100k" and version.manifest["rated_rows"] == 100_000
    assert "recbole" not in sys.modules  # found through its metadata, never imported


@needs_recbole
@pytest.mark.slow
def test_ml100k_side_features_and_titles(ml100k):
    data = load_interactions(ml100k[1])
    items, users = data.items, data.users
    assert items.ids[:3].tolist() == ["1", "2", "3"] and items.index("1682") == 1681
    toy_story = items.index("1")
    assert items.title(toy_story) == "Toy Story" and items.numeric["release_year"].values[toy_story] == 1995
    genres = items.multi_valued["class"]
    assert len(genres.vocabulary) == 18  # the "unknown" genre is a missing value
    assert [genres.vocabulary[c - 1] for c in genres.codes[genres.offsets[toy_story]:genres.offsets[toy_story + 1]]] == [
        "Animation", "Children's", "Comedy"]
    assert items.titles[items.index("267")] is None  # the wheel writes its title as "unkonwn"
    first = users.index("1")
    assert users.numeric["age"].values[first] == 24
    assert users.categorical["gender"].vocabulary == ("F", "M")
    assert users.categorical["occupation"].vocabulary[users.categorical["occupation"].codes[first] - 1] == "technician"
    assert len(users.categorical["occupation"].vocabulary) == 21
    # Each user's test interaction is their last one (ties by item id).
    offsets, history = data.seen("train", "val").by_user(len(users))
    seen = data.seen("train", "val")
    for user in (0, 500, 942):
        last_seen = seen.timestamps[offsets[user + 1] - 1]
        test_row = np.flatnonzero(data.test.users == user)[0]
        assert data.test.timestamps[test_row] >= last_seen


def test_without_the_wheel_the_error_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(IngestError, match=r"not installed: pip install --no-deps recbole==1.2.1"):
        movielens_files()
