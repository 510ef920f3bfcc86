"""The one error a damaged or missing embedding table raises."""

from __future__ import annotations


class EmbeddingTableError(RuntimeError):
    """The table is not in a state that can be read or extended: CURRENT names a missing
    snapshot, a manifest or part file is corrupt, there is no current snapshot. The message is
    one line and names the path."""
