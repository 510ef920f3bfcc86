"""content_sha256: stored by ingest for new image versions, computed on read for older ones,
and never part of the version id."""

from __future__ import annotations

import hashlib
import io

import pyarrow.parquet as pq
from PIL import Image

from cl_core.datasets import DatasetStore, ImageRecord
from cl_core.datasets.content_hash import content_sha256, iter_image_batches


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), color=value).save(buffer, format="PNG")
    return buffer.getvalue()


RECORDS = [ImageRecord(f"img{i}", _png(i * 20), i % 3, None) for i in range(6)]


def test_hashes_bytes_as_they_are_and_text_as_utf8():
    expected = [hashlib.sha256(b"ab").hexdigest(), hashlib.sha256("é".encode()).hexdigest()]
    assert content_sha256([b"ab", "é"]).to_pylist() == expected


def test_the_column_is_not_part_of_the_version_id(tmp_path):
    # The id these exact records get since version ids are hashed per bucket (issue 14; it was
    # 4517f58c0ea52d31 before), the same with or without the stored content_sha256 column:
    # tests/cl_core/datasets/test_version_id.py recomputes it from (id, image sha256, label, split).
    assert DatasetStore(tmp_path).ingest_records(RECORDS, "pinned", description="test").version == "fc28bd71774d2839"


def test_ingest_stores_the_hash_of_each_image(tmp_path):
    version = DatasetStore(tmp_path).resolve(DatasetStore(tmp_path).ingest_records(RECORDS, "d", description="t").name)
    stored = pq.read_table(version.files[0], columns=["id", "content_sha256"]).to_pydict()
    by_id = {r.id: hashlib.sha256(r.image).hexdigest() for r in RECORDS}
    assert dict(zip(stored["id"], stored["content_sha256"], strict=True)) == by_id
    assert version.read().column_names == ["id", "image", "label", "split"]  # readers see the same columns


def test_older_versions_get_the_same_hashes_computed_on_read(tmp_path):
    store = DatasetStore(tmp_path)
    version = store.resolve(store.ingest_records(RECORDS, "d", description="t").name)
    stored = [b.to_pydict() for b in iter_image_batches(version, 4, ["id", "label"])]
    for part in version.files:  # rewrite the parts as ingest wrote them before the column existed
        pq.write_table(pq.read_table(part).drop_columns(["content_sha256"]), part)
    computed = [b.to_pydict() for b in iter_image_batches(version, 4, ["id", "label"])]
    assert computed == stored and len(computed[0]["content_sha256"]) == 4
