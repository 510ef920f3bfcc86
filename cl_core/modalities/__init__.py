"""The modalities the pipeline trains, embeds and evaluates: one module per kind of data
(`image`, `text`, `interactions`), each exporting one `Modality` record, gathered in
MODALITIES. Code that differs by kind of data asks `modality(kind)` for the record and reads its
fields or parts; it does not compare kind names (`tests/cl_core/test_modalities.py` checks).

Adding a modality: its module here with its record, the parts the record names, and one entry
in MODALITIES below."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.record import Modality, PrimaryMetric
from cl_core.modalities.text import TEXT

MODALITIES: Mapping[str, Modality] = MappingProxyType({record.name: record for record in (IMAGE, TEXT, INTERACTIONS)})


def modality(kind: str) -> Modality:
    """The record of `kind` ("image", "text", "interactions"); a clear error for any other."""
    try:
        return MODALITIES[kind]
    except KeyError:
        raise ValueError(f"unknown modality {kind!r} (known: {', '.join(MODALITIES)})") from None


__all__ = ["MODALITIES", "Modality", "PrimaryMetric", "modality"]
