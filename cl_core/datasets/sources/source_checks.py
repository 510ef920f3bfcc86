"""Whether the source `ingest` would read exists, per modality (each record's "check_source"
part, `cl_core.modalities`): the CLI runs it before any service starts (`flows.preflight`), with
the same `IngestError` messages the ingest gives. Each takes the source and the config section
that says how it reads (the record's `source_section`; None for images). Light: the CLI's
start-up imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cl_core.datasets.errors import IngestError


def image(source: str, spec: Any = None) -> None:
    """The source exists ("digits" is built in)."""
    if source == "digits":
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"source {str(path)!r} does not exist (and is not 'digits')")


def text(source: str, spec: Any = None) -> None:
    """The file or folder of sentence pairs exists."""
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"text source {str(path)!r} does not exist")


def interactions(source: str, spec: Any) -> None:
    """The interactions source and its side tables (`spec`, the `data.interactions` section)
    exist; "ml-100k" needs the recbole wheel."""
    from cl_core.datasets.movielens import NAME as ML_100K
    from cl_core.datasets.movielens import movielens_files

    if source == ML_100K:
        movielens_files()
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"interactions source {str(path)!r} does not exist")
    for entity, table in spec.side_tables().items():
        side = Path(table.path).expanduser()
        if not side.is_file():
            raise IngestError(f"the {entity} side table {str(side)!r} (data.interactions.{entity}.path) is not a file")
