"""Follow a table's CURRENT: hold the snapshot it names opened for search, and switch when it moves.

    follower = CurrentFollower(table, open_snapshot=SnapshotSearch)
    follower.refresh()            # call it every second or so; cheap when CURRENT has not moved
    served = follower.served      # what answers now: keep the reference for the whole query

A switch opens the new snapshot (and whatever `open_snapshot` loads with it: its index, its
model) completely before it replaces the served one in a single assignment, so a query that took
the old reference finishes on the old snapshot (`prune` keeps a superseded snapshot's files for
`snapshot_grace`) and the next one sees the new. A snapshot that fails to open (its index file
missing or corrupt, its model unloadable) is not served: the previous one keeps answering and
`last_error` says why until a later snapshot opens, and that snapshot is not tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.table import EmbeddingTable, Snapshot

Opened = TypeVar("Opened")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served(Generic[Opened]):
    snapshot_id: str
    opened: Opened
    since: float  # time.time() when it began to answer


class CurrentFollower(Generic[Opened]):
    def __init__(self, table: EmbeddingTable, open_snapshot: Callable[[Snapshot], Opened]) -> None:
        self.table, self.open_snapshot = table, open_snapshot
        self.served: Served[Opened] | None = None
        self.last_error: str | None = None
        self.failed_id: str | None = None  # a snapshot that did not open: not tried again
        self._lock = threading.Lock()  # one switch at a time; queries never take it

    def refresh(self) -> bool:
        """Open and serve the snapshot CURRENT names if it is not the served one; True when it
        switched. Never raises: a failure is logged and kept in `last_error`."""
        with self._lock:
            try:
                snapshot = self.table.current()
            except EmbeddingTableError as error:
                return self._failed(None, str(error))
            if snapshot is None or snapshot.id == self.failed_id or (self.served and self.served.snapshot_id == snapshot.id):
                return False
            current = snapshot.id
            try:
                opened = self.open_snapshot(snapshot)
            except Exception as error:  # noqa: BLE001 - any failure keeps the served snapshot
                return self._failed(current, f"snapshot {current} of {self.table.path} was not served: "
                                             f"{type(error).__name__}: {error}".replace("\n", " "))
            previous = self.served.snapshot_id if self.served else None
            self.served = Served(current, opened, time.time())
            self.last_error, self.failed_id = None, None
            log.info("serving snapshot %s of %s (was %s)", current, self.table.path, previous)
            return True

    def _failed(self, snapshot_id: str | None, message: str) -> bool:
        self.last_error = message
        if snapshot_id is not None:
            self.failed_id = snapshot_id
        log.error("%s; still serving %s", message, self.served.snapshot_id if self.served else "nothing")
        return False
