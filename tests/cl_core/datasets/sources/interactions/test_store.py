"""DatasetStore.ingest_interactions on small hand-made files: splits, side tables, quarantine,
versioning, and reading a version back with load_interactions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_core.datasets import (
    INTERACTIONS_SCHEMA,
    DatasetStore,
    IngestError,
    InteractionsSourceSpec,
    SideTableSpec,
    TextSourceSpec,
    UnknownIdError,
    load_interactions,
)

# user a: four items, three tied at t=30 (item ids compare as numbers: 9 < 20 < 100);
# user b: two; user c: one; user d: the last two tie at t=5.
ROWS = [
    ("a", "3", 10, 4.0), ("a", "100", 30, 5.0), ("a", "9", 30, 3.0), ("a", "20", 30, 2.0),
    ("b", "5", 1, 1.0), ("b", "6", 2, 2.0),
    ("c", "1", 7, 3.0),
    ("d", "4", 5, 4.0), ("d", "2", 1, 5.0), ("d", "8", 5, 1.0),
]
EXPECTED_SPLITS = {
    ("a", "3"): "train", ("a", "9"): "train", ("a", "20"): "val", ("a", "100"): "test",
    ("b", "5"): "train", ("b", "6"): "test",
    ("c", "1"): "train",
    ("d", "2"): "train", ("d", "4"): "val", ("d", "8"): "test",
}
RATED = InteractionsSourceSpec(rating_column="rating")


def _csv(path, header, rows, sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([sep.join(header), *(sep.join(str(v) for v in row) for row in rows)]) + "\n", encoding="utf-8")
    return path


def _interactions(path, rows=ROWS):
    return _csv(path, ["user", "item", "timestamp", "rating"], rows)


def _quarantine(result):
    return [json.loads(line) for line in result.quarantine_path.read_text().splitlines()]


def _items_spec(path, **extra):
    return SideTableSpec(path=str(path), id_column="item_id", title_column="title", multi_valued_columns=("genres",),
                         numeric_columns=("year",), **extra)


# ---- splits ------------------------------------------------------------------------------


def test_leave_last_out_from_a_file_with_ties(tmp_path):
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", RATED)
    assert (result.rows, result.quarantined, result.created, result.channels) == (10, 0, True, None)
    assert result.splits == {"train": 5, "val": 2, "test": 3}
    assert result.details["users"] == 4 and result.details["items"] == 10
    version = store.resolve("toy")
    assert version.kind == "interactions" and version.schema.equals(INTERACTIONS_SCHEMA)
    table = version.read()
    assert table.schema.equals(INTERACTIONS_SCHEMA)
    assert {(r["user"], r["item"]): r["split"] for r in table.to_pylist()} == EXPECTED_SPLITS
    # Stored by (user, timestamp, item) in id order.
    assert [(r["user"], r["item"]) for r in table.to_pylist()][:4] == [("a", "3"), ("a", "9"), ("a", "20"), ("a", "100")]
    assert version.read(split="test", columns=["user", "item"]).to_pylist() == [
        {"user": "a", "item": "100"}, {"user": "b", "item": "6"}, {"user": "d", "item": "8"}]


def test_time_cutoff_split(tmp_path):
    spec = InteractionsSourceSpec(rating_column="rating", split={"method": "time_cutoff", "test_from": 7, "val_from": 5})
    result = DatasetStore(tmp_path / "store").ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", spec)
    table = DatasetStore(tmp_path / "store").resolve("toy").read()
    by_time = {r["timestamp"]: r["split"] for r in table.to_pylist()}
    assert by_time == {1.0: "train", 2.0: "train", 5.0: "val", 7.0: "test", 10.0: "test", 30.0: "test"}
    assert result.splits == {"train": 3, "val": 2, "test": 5}
    manifest = DatasetStore(tmp_path / "store").resolve("toy").manifest
    assert manifest["split_rule"] == {"method": "time_cutoff", "test_from": 7.0, "val_from": 5.0}


def test_the_split_rule_is_part_of_the_version(tmp_path):
    source = _interactions(tmp_path / "inter.csv")
    store = DatasetStore(tmp_path / "store")
    first = store.ingest_interactions(source, "toy", RATED)
    cutoff = InteractionsSourceSpec(rating_column="rating", split={"method": "time_cutoff", "test_from": 7, "val_from": 5})
    assert store.ingest_interactions(source, "toy", cutoff).version != first.version


# ---- versioning --------------------------------------------------------------------------


def test_same_rows_in_any_file_order_or_format_give_the_same_version(tmp_path):
    store = DatasetStore(tmp_path / "store")
    one = store.ingest_interactions(_interactions(tmp_path / "one.csv"), "toy", RATED)

    shuffled = [ROWS[i] for i in np.random.default_rng(1).permutation(len(ROWS))]
    folder = tmp_path / "folder"
    _interactions(folder / "z-first.csv", shuffled[:4])
    _csv(folder / "a-second.tsv", ["user", "item", "timestamp", "rating"], shuffled[4:], sep="\t")
    two = store.ingest_interactions(folder, "toy", RATED)
    assert (two.version, two.created) == (one.version, False)

    parquet = tmp_path / "inter.parquet"
    pq.write_table(pa.table({
        "user": [r[0] for r in shuffled], "item": [int(r[1]) for r in shuffled],  # ints: stored as "3", "100"
        "timestamp": [r[2] for r in shuffled], "rating": [r[3] for r in shuffled],
    }), parquet)
    three = store.ingest_interactions(parquet, "toy", RATED)
    assert (three.version, three.created) == (one.version, False)
    assert store.versions("toy") == [one.version]

    changed = store.ingest_interactions(_interactions(tmp_path / "changed.csv", [*ROWS[:-1], ("d", "8", 6, 1.0)]), "toy", RATED)
    assert changed.version != one.version and changed.created


def test_parquet_datetimes_are_unix_seconds(tmp_path):
    when = [datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2)]  # naive: UTC
    path = tmp_path / "inter.parquet"
    pq.write_table(pa.table({"u": ["x", "x"], "i": ["p", "q"], "t": when}), path)
    spec = InteractionsSourceSpec(user_column="u", item_column="i", timestamp_column="t")
    store = DatasetStore(tmp_path / "store")
    store.ingest_interactions(path, "toy", spec)
    table = store.resolve("toy").read()
    assert table["timestamp"].to_pylist() == [1577836800.0, 1577923200.0]
    assert table["rating"].null_count == 2 and store.resolve("toy").manifest["rated_rows"] == 0


# ---- side tables -------------------------------------------------------------------------


def test_side_tables_with_multi_valued_genres_read_back_as_arrays(tmp_path):
    items = _csv(tmp_path / "items.csv", ["item_id", "title", "genres", "year"], [
        ("3", "Three", "Comedy|Drama", "1995"),
        ("100", "Hundred", "Drama| Action |Drama", ""),  # spaces stripped, the repeat dropped, the year unknown
        ("9", "Nine", "", "2001"),  # no genres
        ("20", "", "Action", "1999"),
    ])
    users = _csv(tmp_path / "users.tsv", ["uid", "age", "gender"], [("a", "30", "F"), ("d", "41", "unknown")], sep="\t")
    spec = InteractionsSourceSpec(
        rating_column="rating", items=_items_spec(items),
        users=SideTableSpec(path=str(users), id_column="uid", numeric_columns=("age",), categorical_columns=("gender",),
                            missing_values=("", "unknown")),
    )
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", spec)
    assert result.quarantined == 0 and result.details["side_rows"] == {"users": 2, "items": 4}
    manifest = store.resolve("toy").manifest
    assert manifest["entities"]["items"]["features"] == {"genres": "multi_valued", "year": "numeric"}
    assert manifest["entities"]["users"]["features"] == {"gender": "categorical", "age": "numeric"}

    data = load_interactions(store.resolve("toy"))
    assert data.items.ids.tolist() == ["1", "2", "3", "4", "5", "6", "8", "9", "20", "100"]  # numeric order
    assert data.users.ids.tolist() == ["a", "b", "c", "d"]
    genres = data.items.multi_valued["genres"]
    assert genres.vocabulary == ("Action", "Comedy", "Drama")
    index = data.items.index(["3", "100", "9", "20", "1"])
    assert genres.multi_hot()[index].tolist() == [[0, 1, 1], [1, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert genres.padded()[index].tolist() == [[2, 3], [3, 1], [0, 0], [1, 0], [0, 0]]
    year = data.items.numeric["year"].values[index]
    assert year[0] == 1995 and np.isnan(year[1]) and np.isnan(year[4])
    assert [data.items.title(i) for i in index] == ["Three", "Hundred", "Nine", "20", "1"]  # no title: the id
    gender = data.users.categorical["gender"]
    assert gender.vocabulary == ("F",) and gender.codes.tolist() == [1, 0, 0, 0]  # d's "unknown" is missing
    age = data.users.numeric["age"]
    assert age.missing.tolist() == [False, True, True, False]
    assert age.standardized().tolist() == pytest.approx([-1.0, 0.0, 0.0, 1.0])


def test_load_interactions_gives_integer_coded_splits(tmp_path):
    store = DatasetStore(tmp_path / "store")
    store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", RATED)
    data = load_interactions(store.resolve("toy"))
    assert (len(data.train), len(data.val), len(data.test)) == (5, 2, 3)
    users, items = data.users, data.items
    decoded = {(users.ids[u], items.ids[i]) for u, i in zip(data.test.users, data.test.items, strict=True)}
    assert decoded == {pair for pair, split in EXPECTED_SPLITS.items() if split == "test"}
    assert data.test.ratings.tolist() == [5.0, 2.0, 1.0] and data.test.timestamps.tolist() == [30.0, 2.0, 5.0]
    offsets, history = data.train.by_user(len(users))
    assert offsets.tolist() == [0, 2, 3, 4, 5]
    assert items.ids[history].tolist() == ["3", "9", "5", "1", "2"]  # each user's in time order
    seen = data.seen("train", "val")
    assert len(seen) == 7 and items.ids[seen.items[:3]].tolist() == ["3", "9", "20"]
    assert users.index("d") == 3 and users.index(["b", "a"]).tolist() == [1, 0]
    with pytest.raises(UnknownIdError, match="user id 'zz' is not in this dataset"):
        users.index("zz")
    with pytest.raises(ValueError, match="split must be one of"):
        data.split("dev")


def test_a_parquet_side_table_with_a_list_column_and_gaps(tmp_path):
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({
        "item_id": [3, 100, 9],
        "genres": [["Drama", "Comedy"], None, []],
        "year": [1995.0, float("nan"), None],  # NaN and null: both unknown
        "studio": ["A", None, "B"],
    }), items)
    spec = InteractionsSourceSpec(rating_column="rating", items=SideTableSpec(
        path=str(items), id_column="item_id", multi_valued_columns=("genres",), numeric_columns=(2,),
        categorical_columns=("studio",)))
    store = DatasetStore(tmp_path / "store")
    assert store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", spec).quarantined == 0
    data = load_interactions(store.resolve("toy"))
    index = data.items.index(["3", "100", "9"])
    assert data.items.multi_valued["genres"].multi_hot()[index].tolist() == [[1, 1], [0, 0], [0, 0]]
    year = data.items.numeric["column_2"]  # a position names the feature after itself
    assert year.values[index[0]] == 1995 and year.missing[index].tolist() == [False, True, True]
    assert data.items.categorical["studio"].codes[index].tolist() == [1, 0, 2]


def test_gzipped_csv_interactions(tmp_path):
    import gzip

    source = tmp_path / "inter.csv.gz"
    source.write_bytes(gzip.compress(_interactions(tmp_path / "plain.csv").read_bytes()))
    store = DatasetStore(tmp_path / "store")
    assert store.ingest_interactions(source, "toy", RATED).version == store.ingest_interactions(
        tmp_path / "plain.csv", "toy", RATED).version


def test_atomic_files_match_names_without_their_types(tmp_path):
    inter = _csv(tmp_path / "toy.inter", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                 [(u, i, r, t) for u, i, t, r in ROWS], sep="\t")
    item = _csv(tmp_path / "toy.item", ["item_id:token", "movie_title:token_seq", "class:token_seq"],
                [("3", "Toy Story", "Animation Comedy"), ("9", "unknown", "unknown")], sep="\t")
    spec = InteractionsSourceSpec(
        user_column="user_id", item_column="item_id", timestamp_column="timestamp:float", rating_column="rating",
        items=SideTableSpec(path=str(item), id_column="item_id", title_column="movie_title",
                            multi_valued_columns=("class",), separator=" ", missing_values=("", "unknown")),
    )
    store = DatasetStore(tmp_path / "store")
    assert store.ingest_interactions(inter, "toy", spec).splits == {"train": 5, "val": 2, "test": 3}
    data = load_interactions(store.resolve("toy"))
    index = data.items.index(["3", "9"])
    assert data.items.multi_valued["class"].vocabulary == ("Animation", "Comedy")
    assert data.items.multi_valued["class"].multi_hot()[index].tolist() == [[1, 1], [0, 0]]
    assert [data.items.titles[i] for i in index] == ["Toy Story", None]


# ---- bad input ---------------------------------------------------------------------------


def test_bad_rows_are_quarantined_with_file_line_and_reason(tmp_path):
    lines = ["user,item,timestamp,rating", *(f"{u},{i},{t},{r}" for u, i, t, r in ROWS)]
    lines += [
        "a,3,yesterday,4",  # line 12: a timestamp that is not a number
        ",3,11,4",  # line 13: no user
        "b",  # line 14: no item
        "a,100,30,1",  # line 15: (a, 100, 30) again
        "c,7,3,nan",  # line 16: a rating that is not finite
    ]
    source = tmp_path / "inter.csv"
    source.write_text("\n".join(lines) + "\n")
    items = _csv(tmp_path / "items.csv", ["item_id", "title", "genres", "year"], [
        ("3", "Three", "Comedy", "1995"),  # line 2
        ("999", "Unseen", "Drama", "2000"),  # line 3: no interaction has item 999
        ("9", "Nine", "Drama", "MCMXCV"),  # line 4: a year that is not a number
        ("3", "Three again", "Comedy", "1995"),  # line 5: item 3 a second time
    ])
    spec = InteractionsSourceSpec(rating_column="rating", items=_items_spec(items))
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_interactions(source, "toy", spec, max_bad_fraction=0.75)
    assert (result.rows, result.quarantined) == (10, 8)
    at, at_items = str(source.resolve()), str(items.resolve())
    assert _quarantine(result) == [
        {"id": "inter.csv line 12", "source": at,
         "reason": "inter.csv line 12: column 3 'timestamp' (timestamp) is not a number: 'yesterday'"},
        {"id": "inter.csv line 13", "source": at, "reason": "inter.csv line 13: column 1 'user' (user) is empty"},
        {"id": "inter.csv line 14", "source": at,
         "reason": "inter.csv line 14: column 2 'item' (item) is missing (the line has 1 column)"},
        {"id": "inter.csv line 15", "source": at,
         "reason": "inter.csv line 15: duplicate (user, item, timestamp) ('a', '100', 30.0), first at inter.csv line 3"},
        {"id": "inter.csv line 16", "source": at,
         "reason": "inter.csv line 16: column 4 'rating' (rating) is not a finite number: 'nan'"},
        {"id": "items.csv line 3", "source": at_items, "reason": "items.csv line 3: item id '999' is in no interaction"},
        {"id": "items.csv line 4", "source": at_items,
         "reason": "items.csv line 4: column 4 'year' (year) is not a number: 'MCMXCV'"},
        {"id": "items.csv line 5", "source": at_items,
         "reason": "items.csv line 5: duplicate id '3', first at items.csv line 2"},
    ]
    assert result.details["quarantined_by_table"] == {"interactions": 5, "users": 0, "items": 3}
    assert result.details["quarantined_by_cause"] == {
        "interactions": {"bad rating": 1, "bad timestamp": 1, "duplicate (user, item, timestamp)": 1, "missing item": 1,
                         "missing user": 1},
        "items": {"bad year": 1, "duplicate id": 1, "unknown id": 1},
    }
    # The good rows are exactly the clean file's: the same version as without the bad lines.
    clean = store.ingest_interactions(_interactions(tmp_path / "clean.csv"), "clean", RATED)
    assert store.resolve("toy").read().equals(store.resolve("clean").read()) and clean.rows == 10
    titles = load_interactions(store.resolve("toy")).items
    assert titles.title(titles.index("3")) == "Three"  # the first row of a duplicated id is kept


def test_too_many_bad_rows_in_one_table_publish_nothing(tmp_path):
    store = DatasetStore(tmp_path / "store")
    first = store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", RATED)
    items = _csv(tmp_path / "items.csv", ["item_id", "title", "genres", "year"],
                 [("3", "Three", "Comedy", "x"), ("9", "Nine", "Drama", "1990")])
    spec = InteractionsSourceSpec(rating_column="rating", items=_items_spec(items))
    # 1 bad of 2 item rows is 50%; the interactions themselves are clean.
    with pytest.raises(IngestError, match=r"1 of 2 items rows are bad \(50.0% > max_bad_fraction 20.0%\); nothing was published"):
        store.ingest_interactions(tmp_path / "inter.csv", "toy", spec, max_bad_fraction=0.2)
    assert store.latest("toy") == first.version and store.versions("toy") == [first.version]
    failed = sorted((tmp_path / "store" / "toy" / "quarantine").glob("*-failed.jsonl"))
    assert len(failed) == 1 and "'year'" in failed[0].read_text()

    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,timestamp\n,1,2\nx,,3\n")
    with pytest.raises(IngestError, match="no good interaction"):
        store.ingest_interactions(bad, "toy", InteractionsSourceSpec(), max_bad_fraction=1.0)
    assert store.latest("toy") == first.version


def test_side_rows_outside_a_limit_are_passed_over(tmp_path):
    items = _csv(tmp_path / "items.csv", ["item_id", "title", "genres", "year"],
                 [("3", "Three", "Comedy", "1995"), ("5", "Five", "Drama", "1990")])
    spec = InteractionsSourceSpec(rating_column="rating", items=_items_spec(items))
    result = DatasetStore(tmp_path / "store").ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", spec, limit=4)
    assert (result.rows, result.quarantined) == (4, 0)
    assert result.details["side_rows"] == {"items": 1} and result.details["side_rows_outside_limit"] == {"items": 1}


@pytest.mark.parametrize(
    "spec, message",
    [
        (InteractionsSourceSpec(user_column="uid"), r"the header of .*inter.csv has no column \['uid'\]; its columns are"),
        (InteractionsSourceSpec(items=SideTableSpec(path="/no/such/items.csv", id_column="id")),
         r"the items side table '/no/such/items.csv' \(data.interactions.items.path\) is not a file"),
        (InteractionsSourceSpec(format="parquet"), "cannot read Parquet file"),
    ],
)
def test_a_spec_that_does_not_fit_fails_before_reading(tmp_path, spec, message):
    source = _interactions(tmp_path / "inter.csv")
    with pytest.raises(IngestError, match=message):
        DatasetStore(tmp_path / "store").ingest_interactions(source, "toy", spec)
    assert not (tmp_path / "store").exists()


def test_an_interactions_name_cannot_hold_text(tmp_path):
    store = DatasetStore(tmp_path / "store")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a\tb\n")
    store.ingest_text(pairs, "toy", TextSourceSpec())
    with pytest.raises(IngestError, match="dataset 'toy' .* holds text versions; ingest interactions under another name"):
        store.ingest_interactions(_interactions(tmp_path / "inter.csv"), "toy", RATED)
    with pytest.raises(TypeError, match="spec must be an InteractionsSourceSpec"):
        store.ingest_interactions(pairs, "other", TextSourceSpec())
    with pytest.raises(TypeError, match="is a text dataset, not an interactions one"):
        load_interactions(store.resolve("toy"))
