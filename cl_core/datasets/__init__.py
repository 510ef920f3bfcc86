"""Image and text datasets: ingest a source into a versioned Parquet store, then read or stream it.

    store = DatasetStore("workspace/datasets")
    result = store.ingest("digits", "digits")          # or a folder of tar shards / image folder
    version = store.resolve("digits")                   # the latest version
    for batch in version.iter_batches(1024, split="train"):
        images = decode_images(batch.column("image"), size=32)   # uint8 (N, C, H, W)

    spec = TextSourceSpec(text_columns=(5, 6), score_column=4)  # STS-B: tab-separated, by position
    store.ingest_text("../shared/data/stsb", "stsb", spec)
    pairs = store.resolve("stsb").read(split="val", columns=["text1", "text2", "score"])
"""

from __future__ import annotations

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.datasets.decode import decode_image, decode_images, image_channels
from cl_core.datasets.errors import DatasetNotFoundError, IngestError
from cl_core.datasets.records import IMAGE_SCHEMA, BadRecord, ImageRecord
from cl_core.datasets.sources.text import (
    TEXT_SCHEMA,
    TextPairRecord,
    TextSource,
    TextSourceSpec,
    open_text_source,
)
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
    "TEXT_SCHEMA",
    "TextPairRecord",
    "TextSource",
    "TextSourceSpec",
    "decode_image",
    "decode_images",
    "image_channels",
    "open_text_source",
    "split_for_id",
]
