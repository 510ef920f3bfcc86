"""Image datasets: ingest a source into a versioned Parquet store, then read or stream it.

    store = DatasetStore("workspace/datasets")
    result = store.ingest("digits", "digits")          # or a folder of tar shards / image folder
    version = store.resolve("digits")                   # the latest version
    for batch in version.iter_batches(1024, split="train"):
        images = decode_images(batch.column("image"), size=32)   # uint8 (N, C, H, W)
"""

from __future__ import annotations

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.datasets.decode import decode_image, decode_images, image_channels
from cl_core.datasets.errors import DatasetNotFoundError, IngestError
from cl_core.datasets.records import IMAGE_SCHEMA, BadRecord, ImageRecord
from cl_core.datasets.store import DatasetStore, IngestResult, split_for_id

__all__ = [
    "IMAGE_SCHEMA",
    "BadRecord",
    "DatasetNotFoundError",
    "DatasetStore",
    "DatasetVersion",
    "ImageRecord",
    "IngestError",
    "IngestResult",
    "decode_image",
    "decode_images",
    "image_channels",
    "split_for_id",
]
