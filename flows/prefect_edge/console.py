"""What `clpipe` shows while a command runs: one line per step, with a progress bar while it runs;
everything else goes to the run's log file.

The process's own stdout and stderr (file descriptors 1 and 2, so Ray's forwarded worker output,
Prefect's task logs, MLflow's messages and the output of the processes they start alike) are
pointed at `workspace/logs/<flow run id>.log` for the duration of the command; the progress is
drawn on a copy of the terminal's stderr taken before. `--verbose` leaves every stream where it
is, as before, and draws no bars.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flows.prefect_edge import progress

STARTING = "start"


@dataclass
class RunLog:
    """The command's log file: named after its Prefect flow run once that is known."""

    folder: Path
    path: Path
    flow_run_id: str | None = None

    def name_after_flow_run(self) -> None:
        if self.flow_run_id:
            named = self.folder / f"{self.flow_run_id}.log"
            self.path.rename(named)
            self.path = named


@dataclass
class StepDisplay:
    """Turns progress reports into one line per step: a live bar on a terminal, a plain line
    when each step finishes otherwise (CI logs, pipes)."""

    stream: TextIO
    log: RunLog
    console: Console = field(init=False)
    bars: Progress | None = field(init=False, default=None)
    tasks: dict[str, TaskID] = field(init=False, default_factory=dict)
    started: dict[str, float] = field(init=False, default_factory=dict)
    starting: bool = field(init=False, default=True)  # Prefect's server and the first flow run

    def __post_init__(self) -> None:
        self.console = Console(file=self.stream, highlight=False)
        if self.console.is_terminal:
            self.bars = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description:<9}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]:<7}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=self.console,
            )

    def __enter__(self) -> StepDisplay:
        if self.bars is not None:
            self.bars.start()
        self._show(progress.Progress(STARTING, note="Prefect, the flow run"))
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def __call__(self, event: progress.Progress) -> None:
        if self.log.flow_run_id is None:
            self.log.flow_run_id = _root_flow_run_id()
        if self.starting:
            self.starting = False
            self._show(progress.Progress(STARTING, finished=True, note="ready"))
        self._show(event)

    def _show(self, event: progress.Progress) -> None:
        first = event.step not in self.started
        if first:
            self.started[event.step] = time.perf_counter()
        if self.bars is None:
            if event.finished and event.step != STARTING:
                seconds = time.perf_counter() - self.started[event.step]
                self.stream.write(f"{event.step:<9} done in {seconds:.1f} s  {event.note}\n")
            return
        if first:
            self.tasks[event.step] = self.bars.add_task(event.step, total=event.total, unit=event.unit, note=event.note)
        task = self.tasks.get(event.step)
        if task is None:
            return
        if event.finished:
            shown = self.bars.tasks[task]
            done = max(shown.total or shown.completed, 1)
            self.bars.update(task, total=done, completed=done, note=event.note)
            self.bars.stop_task(task)
            del self.tasks[event.step]
        else:
            self.bars.update(task, total=event.total, completed=event.done, unit=event.unit, note=event.note)


def _root_flow_run_id() -> str | None:
    """The id of the outermost flow run of this command, when a flow is running."""
    try:
        from prefect.runtime import flow_run

        return flow_run.get_root_flow_run_id()
    except Exception:  # noqa: BLE001 - the log keeps its provisional name
        return None


@contextmanager
def streams_to(path: Path) -> Iterator[TextIO]:
    """Point this process's stdout and stderr at `path`; yield the terminal's stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8")
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        terminal.close()


@contextmanager
def quiet_run(logs: Path, command: str) -> Iterator[RunLog]:
    """Run the body with its output in a new log file under `logs` and progress on the console."""
    logs.mkdir(parents=True, exist_ok=True)
    log = RunLog(logs, logs / f"clpipe-{command}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log")
    try:
        with streams_to(log.path) as terminal:
            with StepDisplay(terminal, log) as display, progress.listening(display):
                yield log
            _stop_temporary_prefect_server()
    finally:
        log.name_after_flow_run()


def _stop_temporary_prefect_server() -> None:
    """Stop Prefect's temporary server now, so that its goodbye goes to the log (it would
    otherwise stop at exit, after the console has its streams back)."""
    server = sys.modules.get("prefect.server.api.server")
    if server is not None:
        # The temporary server is the one instance Prefect makes without a port; the constructor
        # returns that instance (or a new one that was never started), and stop() is a no-op on
        # a server that is not running.
        server.SubprocessASGIServer().stop()
