"""Version ids hashed per bucket: a naive reference written here from the documented scheme,
the bucket rule, and the properties both ingest engines rely on."""

from __future__ import annotations

import hashlib
import json

import pytest

from cl_core.datasets import DatasetStore, ImageRecord, split_for_id
from cl_core.datasets.sources.text import TextPairRecord
from cl_core.datasets.version_id import BUCKETS, bucket_of, bucket_order, combine
from tests.cl_core.datasets.test_content_hash import RECORDS


def _reference_version(lines_by_id: dict[str, bytes]) -> str:
    """sha256 over the 64 bucket digests, each a sha256 over its rows' lines in id order."""
    buckets: list[list[str]] = [[] for _ in range(64)]
    for record_id in lines_by_id:
        buckets[int.from_bytes(hashlib.sha1(record_id.encode()).digest()[8:16], "big") % 64].append(record_id)
    combined = hashlib.sha256()
    for ids in buckets:
        digest = hashlib.sha256(b"".join(lines_by_id[i] for i in sorted(ids))).hexdigest()
        combined.update(digest.encode() + b"\n")
    return combined.hexdigest()[:16]


def test_image_version_matches_the_reference(tmp_path):
    lines = {
        r.id: f"{len(r.id)}:{r.id}\t{hashlib.sha256(r.image).hexdigest()}\t{r.label}\t{split_for_id(r.id)}\n".encode()
        for r in RECORDS
    }
    assert DatasetStore(tmp_path).ingest_records(RECORDS, "d", description="t").version == _reference_version(lines)
    assert _reference_version(lines) == "fc28bd71774d2839"  # pinned in test_content_hash too


def test_text_version_matches_the_reference(tmp_path):
    records = [TextPairRecord(f"p{i}", f"first {i}\tx", None if i % 2 else "second", 1.5 * i, i % 3, ("neg",) * (i % 2))
               for i in range(30)]
    lines = {
        r.id: json.dumps([r.id, r.text1, r.text2, r.score, r.label, list(r.negatives), split_for_id(r.id)],
                         ensure_ascii=False).encode() + b"\n"
        for r in records
    }
    assert DatasetStore(tmp_path).ingest_text_records(records, "t", description="t").version == _reference_version(lines)


def test_buckets_spread_ids_and_ignore_the_split_bytes():
    counts = [0] * BUCKETS
    for i in range(6400):
        counts[bucket_of(f"id-{i}")] += 1
    assert min(counts) > 50 and max(counts) < 160
    # Bytes 8..16 of the sha1, not the 8 `split_for_id` uses.
    assert bucket_of("abc") == int.from_bytes(hashlib.sha1(b"abc").digest()[8:16], "big") % BUCKETS


def test_bucket_order_is_by_bucket_then_id():
    ids = [f"r{i}" for i in range(200)]
    order, buckets = bucket_order(ids)
    keys = [(bucket_of(ids[i]), ids[i]) for i in order]
    assert keys == sorted(keys) and buckets == [k[0] for k in keys]


def test_combine_needs_every_bucket():
    with pytest.raises(ValueError, match="64 bucket digests"):
        combine(["0" * 64])


def test_same_rows_in_any_order_give_one_version(tmp_path):
    store = DatasetStore(tmp_path)
    first = store.ingest_records(RECORDS, "d", description="a")
    again = store.ingest_records(list(reversed(RECORDS)), "d", description="b")
    assert (again.version, again.created) == (first.version, False)
    changed = [ImageRecord(RECORDS[0].id, RECORDS[1].image, RECORDS[0].label, None), *RECORDS[1:]]
    assert store.ingest_records(changed, "d", description="c").version != first.version
