"""Image, text and interaction datasets: ingest a source into a versioned Parquet store, then read
or stream it.

    store = DatasetStore("workspace/datasets")
    result = store.ingest("digits", "digits")          # or a folder of tar shards / image folder
    version = store.resolve("digits")                   # the latest version
    for batch in version.iter_batches(1024, split="train"):
        images = decode_images(batch.column("image"), size=32)   # uint8 (N, C, H, W)

    spec = TextSourceSpec(text_columns=(5, 6), score_column=4)  # STS-B: tab-separated, by position
    store.ingest_text("../shared/data/stsb", "stsb", spec)
    pairs = store.resolve("stsb").read(split="val", columns=["text1", "text2", "score"])

    store.ingest_interactions("ml-100k", "ml-100k", InteractionsSourceSpec())  # the recbole wheel's
    data = load_interactions(store.resolve("ml-100k"))  # integer-coded splits, users, items

The names below load on first use (PEP 562): looking a dataset up (`cl_core.datasets.layout`)
then needs neither pyarrow's dataset reader nor torch.
"""

from __future__ import annotations

from cl_core.lazy_names import lazy_exports

# Each public name -> the module of this package that defines it.
_HOMES = {
    "DatasetVersion": "dataset_version",
    "decode_image": "decode",
    "decode_images": "decode",
    "image_channels": "decode",
    "DatasetNotFoundError": "errors",
    "IngestError": "errors",
    "IMAGE_SCHEMA": "records",
    "BadRecord": "records",
    "ImageRecord": "records",
    "INTERACTIONS_SCHEMA": "sources.interactions",
    "InteractionsSourceSpec": "sources.interactions",
    "SideTableSpec": "sources.interactions",
    "open_interactions_source": "sources.interactions",
    "InteractionData": "sources.interactions.data",
    "UnknownIdError": "sources.interactions.data",
    "load_interactions": "sources.interactions.data",
    "TEXT_SCHEMA": "sources.text",
    "TextPairRecord": "sources.text",
    "TextSource": "sources.text",
    "TextSourceSpec": "sources.text",
    "open_text_source": "sources.text",
    "split_for_id": "splits",
    "DatasetStore": "store",
    "IngestResult": "ingest_result",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
