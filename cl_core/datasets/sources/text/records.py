"""The rows a text source yields and the Parquet schema text versions are stored under."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TEXT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text1", pa.string(), nullable=False),
        pa.field("text2", pa.string(), nullable=True),  # None for single-sentence rows
        pa.field("score", pa.float64(), nullable=True),  # e.g. STS similarity; None if unscored
        pa.field("label", pa.int64(), nullable=True),  # e.g. NLI class; None if unlabeled
        pa.field("negatives", pa.list_(pa.string()), nullable=True),  # hard negatives; None if none
        pa.field("split", pa.string(), nullable=False),  # one of records.SPLITS
    ]
)


def _short(text: str | None, limit: int = 40) -> str:
    if not isinstance(text, str) or len(text) <= limit:
        return repr(text)
    return repr(text[: limit - 3] + "...")


def _count(negatives: object) -> str:
    if isinstance(negatives, (tuple, list)):
        return f"<{len(negatives)}>"
    return repr(negatives)  # a wrong type; the store reports it


@dataclass(frozen=True)
class TextPairRecord:
    """One sentence pair (or single sentence) read from a source, not yet validated.

    `text2` is None for single-sentence rows (an unlabeled sentence list, as SimCSE trains on);
    `negatives` are hard negatives for `text1`; `split` is None when the source does not say, and
    the store then assigns one by hashing `id`.
    """

    id: str
    text1: str
    text2: str | None = None
    score: float | None = None
    label: int | None = None
    negatives: tuple[str, ...] = ()
    split: str | None = None

    def __repr__(self) -> str:  # sentences can be long: show their starts only
        return (
            f"TextPairRecord(id={self.id!r}, text1={_short(self.text1)}, "
            f"text2={_short(self.text2)}, score={self.score!r}, label={self.label!r}, "
            f"negatives={_count(self.negatives)}, split={self.split!r})"
        )
