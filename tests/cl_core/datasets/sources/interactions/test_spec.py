"""InteractionsSourceSpec and SideTableSpec (cl_core/config/interactions_source.py, data.interactions): validation."""

from __future__ import annotations

import pytest

from cl_core.config import ConfigError, InteractionSplitSpec, InteractionsSourceSpec, SideTableSpec, build_config


def test_defaults_roles_and_feature_names():
    spec = InteractionsSourceSpec()
    assert spec.roles() == [("user", "user"), ("item", "item"), ("timestamp", "timestamp")]
    assert (spec.format, spec.header, spec.split.method, spec.side_tables()) == ("auto", True, "leave_last_out", {})
    items = SideTableSpec(
        path="items.tsv", id_column="item_id:token", title_column="movie_title", multi_valued_columns=["class:token_seq"],
        numeric_columns=[3], categorical_columns=("studio",),
    )
    assert items.multi_valued_columns == ("class:token_seq",)  # lists frozen into tuples
    assert items.features() == [("categorical", "studio"), ("multi_valued", "class:token_seq"), ("numeric", 3)]
    assert [items.feature_name(key) for _, key in items.features()] == ["studio", "class", "column_3"]
    spec = InteractionsSourceSpec(rating_column="stars", items=items)
    assert spec.roles()[-1] == ("rating", "stars") and list(spec.side_tables()) == ["items"]
    assert hash(spec) == hash(InteractionsSourceSpec(**spec.__dict__))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "xlsx"}, "format must be one of"),
        ({"header": 1}, "header must be True or False"),
        ({"user_column": "a", "item_column": "a"}, "column 'a' is given as both user and item"),
        ({"timestamp_column": -1}, "timestamp column must be a 0-based column position >= 0"),
        ({"rating_column": True}, "rating column must be"),
        ({"format": "csv", "header": False}, r"CSV without a header line .* user='user'"),
        ({"format": "atomic", "header": False}, "atomic files .* header must be True"),
        ({"split": {"method": "time_cutoff"}}, "needs test_from"),
        ({"split": {"val_from": 3}}, "val_from applies to method 'time_cutoff'"),
        ({"split": {"method": "time_cutoff", "test_from": 1, "val_from": 2}}, "val_from 2.0 must be < test_from 1.0"),
        ({"split": {"method": "time_cutoff", "test_from": 1, "val_from": 1}}, "val_from 1.0 must be < test_from 1.0"),
        ({"split": {"method": "time_cutoff", "test_from": 1}}, "method 'time_cutoff' needs val_from"),
        ({"split": {"method": "random"}}, "method"),
        ({"items": {"id_column": "id"}}, "path"),
        ({"items": {"path": " ", "id_column": "id"}}, "path must be a file path"),
        ({"items": {"path": "i.csv", "id_column": "id", "separator": ""}}, "separator must be a non-empty string"),
        ({"items": {"path": "i.csv", "id_column": "id", "numeric_columns": "year"}}, "numeric_columns must be a tuple"),
        ({"items": {"path": "i.csv", "id_column": "iid", "categorical_columns": ["title"]}}, "cannot be named"),
        ({"items": {"path": "i.csv", "id_column": "id", "numeric_columns": ["a:float"], "categorical_columns": ["a"]}},
         r"both be stored as \['a'\]"),
        ({"users": {"path": "u.csv", "id_column": "id", "numeric_columns": ["id"]}}, "given as both id and numeric"),
        ({"users": {"path": "u.csv", "id_column": "id", "missing_values": [None]}}, "missing_values must be strings"),
        ({"users": {"path": "u.csv", "id_column": "id", "colour": "x"}}, "Extra inputs"),
    ],
)
def test_invalid_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InteractionsSourceSpec(**kwargs)


def test_the_data_section_names_the_field():
    cfg = build_config({"data": {"modality": "interactions", "source": "r.csv", "interactions": {
        "user_column": "uid", "split": {"method": "time_cutoff", "test_from": 100, "val_from": 50}}}})
    assert cfg.data.interactions.user_column == "uid" and cfg.data.interactions.split.test_from == 100.0
    with pytest.raises(ConfigError, match=r"data\.interactions\.split"):
        build_config({"data": {"modality": "interactions", "interactions": {"split": {"method": "time_cutoff"}}}})
    with pytest.raises(ConfigError, match=r"data\.interactions\.split(.|\n)*needs val_from"):
        build_config({"data": {"modality": "interactions", "interactions": {"split": {"method": "time_cutoff",
                                                                                        "test_from": 100}}}})
    with pytest.raises(ConfigError, match=r"data\.interactions\.items\.id_column"):
        build_config({"data": {"modality": "interactions", "interactions": {"items": {"path": "i.csv", "id_column": 1.5}}}})


def test_missing_values_are_stripped():
    assert InteractionSplitSpec().method == "leave_last_out"
    side = SideTableSpec(path="u.csv", id_column="id", missing_values=[" unknown ", ""])
    assert side.missing_values == ("unknown", "")
