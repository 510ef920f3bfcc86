"""Errors raised by dataset ingest and lookup.

They live apart from `store.py` so that the source readers can raise them without importing the
store (which imports the readers).
"""

from __future__ import annotations


class IngestError(Exception):
    """An ingest that cannot produce a dataset version: unreadable or empty source, too many bad
    records. Nothing visible in the store changed when it is raised."""


class DatasetNotFoundError(LookupError):
    """A dataset name or version that is not in the store; the message lists what exists."""
