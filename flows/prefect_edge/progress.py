"""Progress of the long steps (ingest, train, evaluate, export), reported by the flows to whoever
shows it: the CLI's console (`flows.prefect_edge.console`) listens; under a Prefect worker or a deployment
nobody does and a report costs one empty loop.

Tasks run in the process that called the flow, so a report reaches the listener directly; the
training epochs, which run in Ray workers, arrive through `flows.ray_edge.train_launch`'s watcher of the
epoch file rank 0 writes (`EPOCHS_FILE`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

EPOCHS_FILE = "epochs.jsonl"


@dataclass(frozen=True)
class Progress:
    """One step's state: `done` of `total` units (None: not known yet), a short note such as the
    loss, and whether the step has finished."""

    step: str
    done: float = 0
    total: float | None = None
    unit: str = ""
    note: str = ""
    finished: bool = False


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


def report(step: str, done: float, total: float | None = None, unit: str = "", note: str = "") -> None:
    _emit(Progress(step, done, total, unit, note))


def finish(step: str, note: str = "") -> None:
    _emit(Progress(step, note=note, finished=True))


def _emit(event: Progress) -> None:
    for listener in list(_listeners):
        listener(event)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
