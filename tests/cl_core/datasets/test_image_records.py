"""ImageRecord / BadRecord (IMAGE_SCHEMA's columns: tests/cl_core/test_modalities.py)."""

from __future__ import annotations

import dataclasses

import pytest

from cl_core.datasets.records import BadRecord, ImageRecord


def test_image_record_is_frozen_and_repr_hides_bytes():
    record = ImageRecord(id="a", image=b"x" * 10_000, label=None, split=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.label = 3
    assert "10000 bytes" in repr(record) and "xxxx" not in repr(record)


def test_bad_record_json_names_id_source_reason():
    bad = BadRecord("shard.tar:key", "/data/shard.tar", "truncated")
    assert bad.to_json_dict() == {
        "id": "shard.tar:key",
        "source": "/data/shard.tar",
        "reason": "truncated",
    }
