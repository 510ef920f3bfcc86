"""The dataset version id, computable one bucket at a time.

Rows are hash-partitioned by id into `BUCKETS` buckets. Each bucket's rows are hashed in id order
(one line per row, the kind's own line: `ImageRows`, `TextRows`), and the version id is the
sha256 over the bucket digests in bucket order, truncated to 16 hex digits. So no node needs all
rows to compute it (the `ray` ingest engine hashes each bucket where it was grouped), the local
engine computes exactly the same id, and the same rows give the same id whatever the file order.

Versions ingested before this scheme (one sha256 over all rows in id order) get a different id
when the same content is ingested again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Fixed for good: changing it changes every version id. 64 buckets keep each one small enough to
# sort in one task for datasets of tens of millions of rows, and few enough that tiny datasets
# are not spread over dozens of files.
BUCKETS = 64
VERSION_HEX = 16


def bucket_of(record_id: str) -> int:
    """The bucket of a row id: sha1 of the UTF-8 id, bytes 8..16, modulo `BUCKETS`."""
    # Bytes 8..16, not 0..8: `split_for_id` uses the first 8, and buckets would otherwise hold
    # skewed split proportions (64 and 100 share the factor 4).
    digest = hashlib.sha1(record_id.encode("utf-8")).digest()
    return int.from_bytes(digest[8:16], "big") % BUCKETS


def bucket_array(ids: Sequence[str]) -> pa.Array:
    """`bucket_of` for each id, as an int32 array."""
    return pa.array([bucket_of(i) for i in ids], pa.int32())


class BucketHashes:
    """One running sha256 per bucket; feed each bucket's row lines in id order."""

    def __init__(self) -> None:
        self._hashes = [hashlib.sha256() for _ in range(BUCKETS)]

    def update(self, bucket: int, line: bytes) -> None:
        self._hashes[bucket].update(line)

    def digest(self, bucket: int) -> str:
        return self._hashes[bucket].hexdigest()

    def version(self) -> str:
        return combine([h.hexdigest() for h in self._hashes])


def empty_bucket_digest() -> str:
    """The digest of a bucket no row falls into."""
    return hashlib.sha256().hexdigest()


def combine(bucket_digests: Sequence[str]) -> str:
    """The version id from every bucket's hex digest, in bucket order (empty buckets included)."""
    if len(bucket_digests) != BUCKETS:
        raise ValueError(f"need {BUCKETS} bucket digests, got {len(bucket_digests)}")
    combined = hashlib.sha256()
    for digest in bucket_digests:
        combined.update(digest.encode("ascii") + b"\n")
    return combined.hexdigest()[:VERSION_HEX]


def bucket_order(ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """The row positions ordered by (bucket, id), and the bucket of each row in that order.

    This is the order versions are stored in: id order within each bucket, buckets in order,
    whichever engine wrote them, so both engines' versions read back in the same order.
    """
    buckets = bucket_array(ids)
    keys = pa.table({"bucket": buckets, "id": pa.array(ids, pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("bucket", "ascending"), ("id", "ascending")])
    return order.to_pylist(), buckets.take(order).to_pylist()
